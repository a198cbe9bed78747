"""Loading ledgers, principals and documents into the database, idempotently.

Loading the same files twice leaves the database as it was (rows are upserted on their keys); a changed
document gets a new version and is marked for re-indexing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from docket.db import Account, Document, Entity, LedgerBalance, Period, Principal, Tenant, upsert, utcnow
from docket.errors import DocketError

CLEARANCES = ["public", "internal", "confidential", "restricted"]
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
LEDGER_FILES = ("entities.csv", "accounts.csv", "periods.csv", "gl_balances.csv")


class IngestError(DocketError):
    type = "IngestError"


@dataclass
class IngestReport:
    """What a load did, per table."""

    rows: dict[str, int] = field(default_factory=dict)
    changed_documents: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{n} {name}" for name, n in self.rows.items()]
        return ", ".join(parts) or "nothing"


def _read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise IngestError(f"{path} not found", hint="a ledger folder needs " + ", ".join(LEDGER_FILES))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise IngestError(f"{path.name} lacks columns {sorted(missing)}", hint=f"expected {sorted(required)}")
        return [dict(row) for row in reader]


def load_ledger(engine: Engine, folder: Path) -> IngestReport:
    """Load entities, chart of accounts, periods and balances from a folder of CSV files.

    The chart of accounts and the period calendar carry no tenant column: they apply to every tenant named
    in entities.csv.
    """
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    entities = _read_csv(folder / "entities.csv", {"tenant", "entity", "name", "region", "country"})
    accounts = _read_csv(folder / "accounts.csv", {"account", "name", "parent", "kind", "sensitivity"})
    periods = _read_csv(folder / "periods.csv", {"period", "status"})
    balances = _read_csv(folder / "gl_balances.csv", {"tenant", "entity", "account", "period", "amount"})
    tenants = sorted({e["tenant"] for e in entities})
    known_entities = {(e["tenant"], e["entity"]) for e in entities}
    known_accounts = {a["account"] for a in accounts}
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for i, b in enumerate(balances, start=2):
        if (b["tenant"], b["entity"]) not in known_entities:
            raise IngestError(f"gl_balances.csv line {i}: unknown entity {b['tenant']}/{b['entity']}")
        if not PERIOD.fullmatch(b["period"]):
            raise IngestError(f"gl_balances.csv line {i}: period {b['period']!r} is not a YYYY-MM month")
        if b["account"] not in known_accounts:
            raise IngestError(f"gl_balances.csv line {i}: unknown account {b['account']}")
        try:
            amount = int(b["amount"])
        except ValueError as exc:
            raise IngestError(f"gl_balances.csv line {i}: amount {b['amount']!r} is not an integer") from exc
        key = (b["tenant"], b["entity"], b["account"], b["period"])
        if key in seen:
            # An upsert would silently keep only the last row; a ledger with two balances for one cell is wrong.
            raise IngestError(
                f"gl_balances.csv line {i}: duplicate balance for {'/'.join(key)} (first on line {seen[key]})"
            )
        seen[key] = i
        rows.append({**{k: b[k] for k in ("tenant", "entity", "account", "period")}, "amount": amount})
    report = IngestReport()
    with engine.begin() as conn:
        report.rows["tenants"] = upsert(conn, Tenant, [{"id": t, "name": t} for t in tenants])
        report.rows["entities"] = upsert(
            conn,
            Entity,
            [
                {
                    "tenant": e["tenant"],
                    "code": e["entity"],
                    "name": e["name"],
                    "region": e["region"],
                    "country": e["country"],
                }
                for e in entities
            ],
        )
        report.rows["accounts"] = upsert(
            conn,
            Account,
            [
                {
                    "tenant": t,
                    "code": a["account"],
                    "name": a["name"],
                    "parent": a["parent"] or None,
                    "kind": a["kind"],
                    "sensitivity": a["sensitivity"],
                }
                for t in tenants
                for a in accounts
            ],
        )
        report.rows["periods"] = upsert(
            conn,
            Period,
            [{"tenant": t, "period": p["period"], "status": p["status"]} for t in tenants for p in periods],
        )
        report.rows["ledger_balances"] = upsert(conn, LedgerBalance, rows)
    return report


def load_principals(engine: Engine, path: Path) -> IngestReport:
    """Load principals from a JSON list (id, name, tenant, roles, region, entities, clearance)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IngestError(f"cannot read principals from {path}: {exc}") from exc
    if not isinstance(data, list):
        raise IngestError(f"{path} must hold a JSON list of principals")
    rows: list[dict[str, Any]] = []
    for p in data:
        clearance = p.get("clearance", "public")
        if clearance not in CLEARANCES:
            raise IngestError(f"principal {p.get('id')}: clearance {clearance!r} is not one of {CLEARANCES}")
        rows.append(
            {
                "id": p["id"],
                "tenant": p["tenant"],
                "name": p.get("name", ""),
                "roles": list(p.get("roles", [])),
                "region": p.get("region"),
                "entities": list(p.get("entities", [])),
                "clearance": clearance,
            }
        )
    report = IngestReport()
    with engine.begin() as conn:
        report.rows["tenants"] = upsert(
            conn, Tenant, [{"id": t, "name": t} for t in sorted({r["tenant"] for r in rows})]
        )
        report.rows["principals"] = upsert(conn, Principal, rows)
    return report


def parse_document(path: Path) -> dict[str, Any]:
    """Parse a markdown/text document with a front matter block of `key: JSON value` lines."""
    text = Path(path).read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end == -1:
            raise IngestError(f"{path}: front matter is not closed with ---")
        for line in text[3:end].strip().splitlines():
            if not line.strip():
                continue
            key, _, raw = line.partition(":")
            raw = raw.strip()
            try:
                meta[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                meta[key.strip()] = raw.strip("'\"")
        body = text[end + 4 :].lstrip("\n")
    doc_id = str(meta.get("id") or Path(path).stem)
    title = str(meta.get("title") or doc_id)
    tenant = meta.get("tenant")
    if not tenant:
        raise IngestError(f"{path}: front matter has no tenant", hint='add `tenant: "<tenant id>"`')
    classification = str(meta.get("classification", "internal"))
    if classification not in CLEARANCES:
        raise IngestError(f"{path}: classification {classification!r} is not one of {CLEARANCES}")
    return {
        "tenant": str(tenant),
        "doc_id": doc_id,
        "title": title,
        "classification": classification,
        "entities": [str(e) for e in meta.get("entities") or []],
        "accounts": [str(a) for a in meta.get("accounts") or []],
        "body": body,
    }


def load_documents(engine: Engine, path: Path) -> IngestReport:
    """Store documents (a file or a folder of *.md/*.txt); only new or changed ones are marked for indexing."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix in {".md", ".txt"}) if path.is_dir() else [path]
    if not files:
        raise IngestError(f"no .md or .txt documents in {path}")
    parsed = [parse_document(f) for f in files]
    report = IngestReport()
    written = 0
    with Session(engine) as session:
        for doc in parsed:
            sha = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
            row = session.get(Document, (doc["tenant"], doc["doc_id"]))
            if row is None:
                session.add(Document(**doc, sha256=sha, version=1))
            elif row.sha256 != sha:
                for key, value in doc.items():
                    setattr(row, key, value)
                row.sha256 = sha
                row.version += 1
                row.updated_at = utcnow()
            else:
                continue
            written += 1
            report.changed_documents.setdefault(doc["tenant"], []).append(doc["doc_id"])
        for tenant in report.changed_documents:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, name=tenant))
        session.commit()
    report.rows["documents"] = written
    return report


def load_pack(engine: Engine, folder: Path) -> IngestReport:
    """Load a whole data pack folder: ledger CSVs, principals.json and documents/."""
    folder = Path(folder)
    report = IngestReport()
    for part in (load_ledger(engine, folder), load_principals(engine, folder / "principals.json")):
        report.rows.update(part.rows)
    docs = load_documents(engine, folder / "documents")
    report.rows.update(docs.rows)
    report.changed_documents = docs.changed_documents
    return report
