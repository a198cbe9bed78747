"""Ingestion of a data pack into a real SQLite file: idempotence, document versions, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel

from docket import db, ingest
from docket.db import Account, Document, Entity, LedgerBalance, Period, Principal, Tenant, table_of
from docket.ingest import IngestError

TABLES: list[type[SQLModel]] = [Tenant, Entity, Account, Period, LedgerBalance, Principal, Document]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {m.__name__: conn.execute(select(func.count()).select_from(table_of(m))).scalar_one() for m in TABLES}


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def document(engine: Engine, tenant: str, doc_id: str) -> Document:
    with Session(engine) as s:
        row = s.get(Document, (tenant, doc_id))
        assert row is not None
        s.expunge(row)
        return row


def append_line(path: Path, line: str) -> int:
    """Append a CSV line; returns its line number (the header is line 1)."""
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + line + "\n", encoding="utf-8")
    return len((text + line).splitlines())


# ----------------------------------------------------------------- idempotence


def test_loading_twice_changes_nothing(empty_engine: Engine, pack_copy: Path) -> None:
    first = ingest.load_pack(empty_engine, pack_copy)
    after_first = counts(empty_engine)
    second = ingest.load_pack(empty_engine, pack_copy)
    assert counts(empty_engine) == after_first
    assert first.rows["documents"] == len(list((pack_copy / "documents").glob("*.md")))
    assert second.rows["documents"] == 0
    assert second.changed_documents == {}
    with Session(empty_engine) as s:
        assert {d.version for d in s.execute(select(Document)).scalars()} == {1}


def test_row_counts_match_the_files(empty_engine: Engine, pack_copy: Path) -> None:
    ingest.load_pack(empty_engine, pack_copy)
    entities = csv_rows(pack_copy / "entities.csv")
    tenants = {e["tenant"] for e in entities}
    assert counts(empty_engine) == {
        "Tenant": len(tenants),
        "Entity": len(entities),
        # The chart of accounts and the calendar apply to every tenant.
        "Account": len(csv_rows(pack_copy / "accounts.csv")) * len(tenants),
        "Period": len(csv_rows(pack_copy / "periods.csv")) * len(tenants),
        "LedgerBalance": len(csv_rows(pack_copy / "gl_balances.csv")),
        "Principal": 10,
        "Document": 13,
    }


def test_a_changed_amount_is_updated_not_duplicated(empty_engine: Engine, pack_copy: Path) -> None:
    ingest.load_pack(empty_engine, pack_copy)
    before = counts(empty_engine)
    path = pack_copy / "gl_balances.csv"
    text = path.read_text(encoding="utf-8")
    old = "meridian,MER-US,4.1,2024-01,6139937\n"
    assert old in text
    path.write_text(text.replace(old, "meridian,MER-US,4.1,2024-01,6139938\n"), encoding="utf-8")
    ingest.load_ledger(empty_engine, pack_copy)
    assert counts(empty_engine) == before
    with Session(empty_engine) as s:
        row = s.get(LedgerBalance, ("meridian", "MER-US", "4.1", "2024-01"))
        assert row is not None
        assert row.amount == 6139938


# ----------------------------------------------------------------- document versions


def test_a_changed_document_gets_a_new_version(empty_engine: Engine, pack_copy: Path) -> None:
    ingest.load_pack(empty_engine, pack_copy)
    before = document(empty_engine, "meridian", "doc-fx-policy")
    untouched = document(empty_engine, "meridian", "doc-rev-rec")
    path = pack_copy / "documents" / "doc-fx-policy.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nHedging uses quarterly forwards.\n", encoding="utf-8")
    report = ingest.load_documents(empty_engine, pack_copy / "documents")
    assert report.changed_documents == {"meridian": ["doc-fx-policy"]}
    assert report.rows["documents"] == 1
    after = document(empty_engine, "meridian", "doc-fx-policy")
    assert after.version == before.version + 1
    assert after.sha256 != before.sha256
    assert "quarterly forwards" in after.body
    # Not indexed yet: the index sees sha256 != indexed_sha256 and picks it up.
    assert after.indexed_sha256 != after.sha256
    assert document(empty_engine, "meridian", "doc-rev-rec").version == untouched.version
    again = ingest.load_documents(empty_engine, pack_copy / "documents")
    assert again.changed_documents == {}
    assert document(empty_engine, "meridian", "doc-fx-policy").version == after.version


def test_a_changed_classification_is_a_change(empty_engine: Engine, pack_copy: Path) -> None:
    ingest.load_pack(empty_engine, pack_copy)
    path = pack_copy / "documents" / "doc-travel-policy.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace('classification: "public"', 'classification: "internal"'),
        encoding="utf-8",
    )
    ingest.load_documents(empty_engine, path)
    doc = document(empty_engine, "meridian", "doc-travel-policy")
    assert (doc.classification, doc.version) == ("internal", 2)


def test_front_matter_is_parsed(pack_copy: Path) -> None:
    parsed = ingest.parse_document(pack_copy / "documents" / "doc-close-de-2026-03.md")
    assert parsed["tenant"] == "meridian"
    assert parsed["doc_id"] == "doc-close-de-2026-03"
    assert parsed["entities"] == ["MER-DE"]
    assert parsed["accounts"] == ["4", "5.2"]
    assert parsed["classification"] == "internal"
    assert parsed["body"].startswith("# MER-DE close commentary March 2026")
    assert "---" not in parsed["body"]


# ----------------------------------------------------------------- malformed inputs


def test_unknown_entity_in_balances(empty_engine: Engine, pack_copy: Path) -> None:
    line = append_line(pack_copy / "gl_balances.csv", "meridian,MER-XX,4.1,2026-10,100")
    with pytest.raises(IngestError) as err:
        ingest.load_ledger(empty_engine, pack_copy)
    assert err.value.message == f"gl_balances.csv line {line}: unknown entity meridian/MER-XX"
    # Validation happens before anything is written.
    assert counts(empty_engine)["LedgerBalance"] == 0


def test_entity_of_another_tenant_in_balances(empty_engine: Engine, pack_copy: Path) -> None:
    append_line(pack_copy / "gl_balances.csv", "globex,MER-US,4.1,2026-10,100")
    with pytest.raises(IngestError, match="unknown entity globex/MER-US"):
        ingest.load_ledger(empty_engine, pack_copy)


def test_unknown_account_in_balances(empty_engine: Engine, pack_copy: Path) -> None:
    line = append_line(pack_copy / "gl_balances.csv", "meridian,MER-US,9.9,2026-10,100")
    with pytest.raises(IngestError, match=f"line {line}: unknown account 9.9"):
        ingest.load_ledger(empty_engine, pack_copy)


@pytest.mark.parametrize("amount", ["12.5", "abc", "", "1e6"])
def test_non_integer_amount(empty_engine: Engine, pack_copy: Path, amount: str) -> None:
    line = append_line(pack_copy / "gl_balances.csv", f"meridian,MER-US,4.1,2026-10,{amount}")
    with pytest.raises(IngestError) as err:
        ingest.load_ledger(empty_engine, pack_copy)
    assert err.value.message == f"gl_balances.csv line {line}: amount {amount!r} is not an integer"


@pytest.mark.parametrize(
    ("file", "column"),
    [("gl_balances.csv", "amount"), ("accounts.csv", "parent"), ("entities.csv", "region"), ("periods.csv", "status")],
)
def test_missing_columns(empty_engine: Engine, pack_copy: Path, file: str, column: str) -> None:
    path = pack_copy / file
    rows = csv_rows(path)
    fields = [f for f in rows[0] if f != column]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(IngestError) as err:
        ingest.load_ledger(empty_engine, pack_copy)
    assert err.value.message == f"{file} lacks columns [{column!r}]"
    assert column in err.value.hint


def test_missing_file(empty_engine: Engine, pack_copy: Path) -> None:
    (pack_copy / "periods.csv").unlink()
    with pytest.raises(IngestError, match=r"periods\.csv not found") as err:
        ingest.load_ledger(empty_engine, pack_copy)
    assert "periods.csv" in err.value.hint


@pytest.mark.parametrize("period", ["2026-13", "Oct 2026"])
def test_malformed_period_in_balances(empty_engine: Engine, pack_copy: Path, period: str) -> None:
    append_line(pack_copy / "gl_balances.csv", f"meridian,MER-US,4.1,{period},100")
    with pytest.raises(IngestError, match="period"):
        ingest.load_ledger(empty_engine, pack_copy)


def test_bad_clearance_for_a_principal(empty_engine: Engine, pack_copy: Path) -> None:
    path = pack_copy / "principals.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"public"', '"top-secret"'), encoding="utf-8")
    with pytest.raises(IngestError) as err:
        ingest.load_principals(empty_engine, path)
    assert "heidi" in err.value.message
    assert "'top-secret'" in err.value.message
    assert counts(empty_engine)["Principal"] == 0


@pytest.mark.parametrize(("content", "needle"), [("{not json", "cannot read principals"), ('{"id": "x"}', "JSON list")])
def test_unreadable_principals(empty_engine: Engine, tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "principals.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(IngestError, match=needle):
        ingest.load_principals(empty_engine, path)


def test_bad_document_classification(empty_engine: Engine, pack_copy: Path) -> None:
    path = pack_copy / "documents" / "doc-fx-policy.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace('classification: "internal"', 'classification: "secret"'),
        encoding="utf-8",
    )
    with pytest.raises(IngestError, match="classification 'secret' is not one of"):
        ingest.load_documents(empty_engine, path)


def test_document_without_tenant(empty_engine: Engine, pack_copy: Path) -> None:
    path = pack_copy / "documents" / "doc-fx-policy.md"
    path.write_text(path.read_text(encoding="utf-8").replace('tenant: "meridian"\n', ""), encoding="utf-8")
    with pytest.raises(IngestError) as err:
        ingest.load_documents(empty_engine, pack_copy / "documents")
    assert "no tenant" in err.value.message
    assert "doc-fx-policy.md" in err.value.message
    assert "tenant:" in err.value.hint
    # One bad file stops the batch: no document of the folder is half-loaded.
    assert counts(empty_engine)["Document"] == 0


def test_document_without_front_matter_has_no_tenant(empty_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "plain.md"
    path.write_text("# Just text\n\nNo front matter here.\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no tenant"):
        ingest.load_documents(empty_engine, path)


def test_unclosed_front_matter(empty_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    path.write_text('---\ntenant: "meridian"\ntitle: "x"\n\nbody without closing marker\n', encoding="utf-8")
    with pytest.raises(IngestError, match="not closed"):
        ingest.load_documents(empty_engine, path)


def test_empty_document_folder(empty_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"no \.md or \.txt documents"):
        ingest.load_documents(empty_engine, tmp_path)


# ----------------------------------------------------------------- migrations


def test_migrate_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'data' / 'docket.db'}"
    db.migrate(url)
    assert (tmp_path / "new" / "data" / "docket.db").is_file()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docket.db'}"
    db.migrate(url)
    db.migrate(url)
    engine = db.make_engine(url)
    try:
        assert counts(engine) == dict.fromkeys([m.__name__ for m in TABLES], 0)
    finally:
        engine.dispose()
