"""Loading ledgers, principals and documents into the database, idempotently.

Loading the same files twice leaves the database as it was (rows are upserted on their keys); a changed
document gets a new version and is marked for re-indexing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from docket.dataversion import refresh_data_version
from docket.db import (
    Account,
    Document,
    DocumentUpload,
    Entity,
    LedgerBalance,
    Period,
    Principal,
    Tenant,
    upsert,
    utcnow,
)
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
        # In the same transaction: no task can see the new balances under the old version.
        for t in tenants:
            refresh_data_version(conn, t)
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


DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt")
DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def parse_document_text(name: str, text: str) -> dict[str, Any]:
    """Parse a markdown/text document with a front matter block of `key: JSON value` lines."""
    if "\x00" in text:
        raise IngestError(f"{name}: not a text document (contains NUL bytes)", hint="upload markdown or plain text")
    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end == -1:
            raise IngestError(f"{name}: front matter is not closed with ---", hint="end the front matter with ---")
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
    doc_id = str(meta.get("id") or Path(name).stem)
    if not DOC_ID.match(doc_id):
        raise IngestError(f"{name}: document id {doc_id!r} is not valid", hint="letters, digits, '.', '_' and '-'")
    title = str(meta.get("title") or doc_id)
    tenant = meta.get("tenant")
    if not tenant:
        raise IngestError(f"{name}: front matter has no tenant", hint='add `tenant: "<tenant id>"`')
    classification = str(meta.get("classification", "internal"))
    if classification not in CLEARANCES:
        raise IngestError(f"{name}: classification {classification!r} is not one of {CLEARANCES}")
    for key in ("entities", "accounts"):
        if not isinstance(meta.get(key) or [], list):
            raise IngestError(f"{name}: {key} must be a JSON list", hint=f'e.g. {key}: ["..."]')
    if not body.strip():
        raise IngestError(f"{name}: the document has no text after its front matter")
    return {
        "tenant": str(tenant),
        "doc_id": doc_id,
        "title": title,
        "classification": classification,
        "entities": [str(e) for e in meta.get("entities") or []],
        "accounts": [str(a) for a in meta.get("accounts") or []],
        "body": body,
    }


def parse_document(path: Path) -> dict[str, Any]:
    """Parse a document file (see parse_document_text)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text", hint="save the document as UTF-8 markdown or text") from exc
    return parse_document_text(str(path), text)


def document_files(path: Path) -> list[Path]:
    """A document file, or the documents of a folder (*.md, *.markdown, *.txt)."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix in DOCUMENT_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise IngestError(f"no .md or .txt documents in {path}")
    return files


def _doc_sha(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def stage_uploads(engine: Engine, tenant: str, principal_id: str, files: list[tuple[str, str]]) -> list[str]:
    """Validate documents and stage them for IngestWorkflow; all or nothing. Returns the upload ids.

    Every document must parse and belong to `tenant`; the workflow decides whether the principal may add it.
    """
    parsed = [parse_document_text(name, text) for name, text in files]
    for (name, _), doc in zip(files, parsed, strict=True):
        if doc["tenant"] != tenant:
            raise IngestError(
                f"{name}: front matter names tenant {doc['tenant']!r}, the upload is for {tenant!r}",
                hint="documents are added to the uploader's own tenant",
            )
    seen: dict[str, str] = {}
    for (name, _), doc in zip(files, parsed, strict=True):
        if doc["doc_id"] in seen:
            raise IngestError(f"{name}: document id {doc['doc_id']} also in {seen[doc['doc_id']]}")
        seen[doc["doc_id"]] = name
    ids: list[str] = []
    with Session(engine) as session:
        for (name, text), doc in zip(files, parsed, strict=True):
            upload = DocumentUpload(
                id=uuid.uuid4().hex,
                tenant=tenant,
                principal_id=principal_id,
                filename=Path(name).name[:300],
                content=text,
                sha256=hashlib.sha256(text.encode()).hexdigest(),
                doc_id=doc["doc_id"],
            )
            session.add(upload)
            ids.append(upload.id)
        session.commit()
    return ids


def staged_documents(engine: Engine, tenant: str, upload_ids: list[str]) -> list[dict[str, Any]]:
    """The parsed documents behind upload ids (of this tenant), for authorization."""
    with Session(engine) as session:
        out = []
        for uid in upload_ids:
            row = session.get(DocumentUpload, uid)
            if row is None or row.tenant != tenant or row.status == "rejected":
                raise IngestError(f"upload {uid} not found for tenant {tenant}")
            out.append(parse_document_text(row.filename, row.content))
        return out


def discard_uploads(engine: Engine, upload_ids: list[str]) -> None:
    """Remove staged uploads whose workflow never started: nothing half-done is left behind."""
    with Session(engine) as session:
        for uid in upload_ids:
            row = session.get(DocumentUpload, uid)
            if row is not None and row.status == "staged":
                session.delete(row)
        session.commit()


def reject_uploads(engine: Engine, tenant: str, upload_ids: list[str]) -> None:
    """Mark refused uploads rejected and drop their text; the row remains as the record that they were refused."""
    with Session(engine) as session:
        for uid in upload_ids:
            row = session.get(DocumentUpload, uid)
            if row is not None and row.tenant == tenant and row.status == "staged":
                row.status = "rejected"
                row.content = ""
        session.commit()


@dataclass
class StoreReport:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _store(session: Session, doc: dict[str, Any]) -> bool:
    """Insert or update one parsed document; True when it is new or changed (a new version)."""
    sha = _doc_sha(doc)
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
        return False
    return True


class DocumentChangedError(IngestError):
    """The stored document changed between the authorization and the write: authorize again."""

    type = "DocumentChanged"


def _check_version(
    session: Session, tenant: str, doc_id: str, expected: dict[str, int] | None, *, absent_ok: bool = False
) -> None:
    """Refuse to write when the document is not at the version the authorization saw (0: it did not exist).

    Two ingests of the same document can interleave; without this, one authorized against an `internal`
    version could overwrite a `restricted` version stored in between (DOC-002).
    """
    if expected is None or doc_id not in expected:
        return
    row = session.get(Document, (tenant, doc_id))
    if row is None and absent_ok:
        return
    if (row.version if row is not None else 0) != expected[doc_id]:
        raise DocumentChangedError(
            f"{doc_id} changed since this ingestion was authorized",
            hint="run the ingestion again: it is authorized against the current version",
        )


def authorized_versions(engine: Engine, tenant: str, doc_ids: list[str]) -> dict[str, int]:
    """The stored version of each document (0 when absent), as the authorization saw it."""
    with Session(engine) as session:
        out = {}
        for doc_id in doc_ids:
            row = session.get(Document, (tenant, doc_id))
            out[doc_id] = row.version if row is not None else 0
        return out


def store_uploads(
    engine: Engine, tenant: str, upload_ids: list[str], expected: dict[str, int] | None = None
) -> StoreReport:
    """Store staged uploads as documents (new version when changed); idempotent for a retried step.

    The upload's text is dropped once stored (the document row holds it); the outcome is kept on the row, so a
    retry after the commit reports what the first attempt did.
    """
    report = StoreReport()
    with Session(engine) as session:
        for uid in upload_ids:
            row = session.get(DocumentUpload, uid)
            if row is None or row.tenant != tenant or row.status == "rejected":
                raise IngestError(f"upload {uid} not found for tenant {tenant}")
            if row.status in ("changed", "unchanged"):
                (report.changed if row.status == "changed" else report.unchanged).append(row.doc_id)
                continue
            doc = parse_document_text(row.filename, row.content)
            _check_version(session, tenant, doc["doc_id"], expected)
            changed = _store(session, doc)
            (report.changed if changed else report.unchanged).append(doc["doc_id"])
            row.status = "changed" if changed else "unchanged"
            row.content = ""
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(id=tenant, name=tenant))
        session.commit()
    return report


def delete_documents(
    engine: Engine, tenant: str, doc_ids: list[str], expected: dict[str, int] | None = None
) -> StoreReport:
    """Delete stored documents of a tenant (and any staged text of them); deleting one already gone is a no-op."""
    report = StoreReport()
    with Session(engine) as session:
        for doc_id in doc_ids:
            # Already gone (a retry after the commit, or a concurrent delete) is fine; changed is not.
            _check_version(session, tenant, doc_id, expected, absent_ok=True)
            row = session.get(Document, (tenant, doc_id))
            if row is not None:
                session.delete(row)
                report.deleted.append(doc_id)
            stmt = select(DocumentUpload).where(
                DocumentUpload.tenant == tenant,  # type: ignore[arg-type]
                DocumentUpload.doc_id == doc_id,  # type: ignore[arg-type]
            )
            for upload in session.execute(stmt).scalars():
                upload.content = ""
                if upload.status == "staged":
                    upload.status = "rejected"
        session.commit()
    return report


def load_documents(engine: Engine, path: Path) -> IngestReport:
    """Store documents (a file or a folder of *.md/*.txt); only new or changed ones are marked for indexing."""
    parsed = [parse_document(f) for f in document_files(path)]
    report = IngestReport()
    written = 0
    with Session(engine) as session:
        for doc in parsed:
            if not _store(session, doc):
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
