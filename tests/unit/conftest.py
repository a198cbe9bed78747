"""Unit-test fixtures: the demo pack loaded into a real SQLite file, and the engines built over it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from activities.authorize.engine import Authorizer, load_builtin_policies
from activities.classify.rules import RuleClassifier
from docket import db, ingest
from docket.catalog import Catalog, load_catalog, load_principal
from docket.db import Principal
from tests.support.oracle import DEMO_PACK, LedgerOracle


def migrated_engine(folder: Path) -> Engine:
    """A migrated, empty SQLite file under folder."""
    # db.migrate does not create a missing folder (see test_ingest.py::test_migrate_creates_the_sqlite_folder).
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'docket.db'}"
    db.migrate(url)
    return db.make_engine(url)


@pytest.fixture(scope="session")
def oracle() -> LedgerOracle:
    return LedgerOracle(DEMO_PACK)


@pytest.fixture(scope="session")
def pack_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Read-only for tests: the demo pack in one SQLite file shared by the session."""
    engine = migrated_engine(tmp_path_factory.mktemp("pack"))
    ingest.load_pack(engine, DEMO_PACK)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh migrated database for tests that write."""
    engine = migrated_engine(tmp_path / "db")
    yield engine
    engine.dispose()


@pytest.fixture
def pack_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo pack, for tests that change or break its files."""
    return Path(shutil.copytree(DEMO_PACK, tmp_path / "pack"))


@pytest.fixture(scope="session")
def catalog(pack_engine: Engine) -> Catalog:
    return load_catalog(pack_engine, "meridian")


@pytest.fixture(scope="session")
def classifier(catalog: Catalog) -> RuleClassifier:
    return RuleClassifier(catalog)


@pytest.fixture(scope="session")
def authorizer() -> Authorizer:
    return Authorizer(load_builtin_policies())


@pytest.fixture(scope="session")
def principal(pack_engine: Engine) -> Callable[[str], Principal]:
    def get(principal_id: str) -> Principal:
        found = load_principal(pack_engine, principal_id)
        assert found is not None, f"principal {principal_id} not loaded from principals.json"
        return found

    return get
