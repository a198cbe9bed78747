"""The policy store: a tenant's Cedar policy sets as immutable, numbered versions, one of them active.

Versions are never edited or deleted; activating an older version is how a change is rolled back. The active
version's label (`<tenant>/v<N>-<sha8>`) is recorded in every decision, result and audit event.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import Session

from docket.db import PolicyActivation, PolicyVersion, table_of
from docket.errors import DocketError


class PolicyError(DocketError):
    type = "PolicyError"


@dataclass(frozen=True)
class StoredPolicy:
    tenant: str
    version: int
    sha256: str
    source: str
    note: str
    created_by: str
    created_at: datetime

    @property
    def label(self) -> str:
        return version_label(self.tenant, self.version, self.sha256)


def version_label(tenant: str, version: int, sha256: str) -> str:
    return f"{tenant}/v{version}-{sha256[:8]}"


def _stored(row: PolicyVersion) -> StoredPolicy:
    return StoredPolicy(row.tenant, row.version, row.sha256, row.source, row.note, row.created_by, row.created_at)


def sha(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def versions(engine: Engine, tenant: str) -> list[StoredPolicy]:
    pv = table_of(PolicyVersion).c
    with engine.connect() as conn:
        rows = conn.execute(select(table_of(PolicyVersion)).where(pv.tenant == tenant).order_by(pv.version)).all()
    return [StoredPolicy(r.tenant, r.version, r.sha256, r.source, r.note, r.created_by, r.created_at) for r in rows]


def get(engine: Engine, tenant: str, version: int) -> StoredPolicy:
    for p in versions(engine, tenant):
        if p.version == version:
            return p
    raise PolicyError(f"tenant {tenant!r} has no policy version {version}", hint="list them with `docket policy list`")


def active(engine: Engine, tenant: str) -> StoredPolicy | None:
    """The version in force: the most recent activation."""
    pa = table_of(PolicyActivation).c
    with engine.connect() as conn:
        latest = conn.execute(select(pa.version).where(pa.tenant == tenant).order_by(pa.id.desc()).limit(1)).scalar()
    return get(engine, tenant, int(latest)) if latest is not None else None


def create_version(engine: Engine, tenant: str, source: str, *, note: str = "", actor: str = "") -> StoredPolicy:
    """Store a new version (numbered after the last); storing the newest version's exact text again is a no-op."""
    digest = sha(source)
    existing = versions(engine, tenant)
    if existing and existing[-1].sha256 == digest:
        return existing[-1]
    number = (existing[-1].version if existing else 0) + 1
    with Session(engine) as s:
        row = PolicyVersion(tenant=tenant, version=number, sha256=digest, source=source, note=note, created_by=actor)
        s.add(row)
        s.commit()
        s.refresh(row)
        return _stored(row)


def activate(engine: Engine, tenant: str, version: int, *, actor: str = "") -> StoredPolicy:
    policy = get(engine, tenant, version)
    with Session(engine) as s:
        s.add(PolicyActivation(tenant=tenant, version=version, activated_by=actor))
        s.commit()
    return policy


def ensure_default(engine: Engine, tenant: str, source: str, *, actor: str = "system") -> StoredPolicy:
    """A tenant without any policy version gets `source` as v1, active. Existing tenants are left alone."""
    current = active(engine, tenant)
    if current is not None:
        return current
    stored = create_version(engine, tenant, source, note="built-in policy set", actor=actor)
    return activate(engine, tenant, stored.version, actor=actor)


def diff(a: StoredPolicy | None, b: StoredPolicy, *, a_source: str = "") -> str:
    old = a.source if a is not None else a_source
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            b.source.splitlines(keepends=True),
            fromfile=a.label if a is not None else "(none)",
            tofile=b.label,
        )
    )
