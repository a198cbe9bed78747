"""A tenant's catalog (entities, chart of accounts, period calendar) read from the database."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlmodel import Session

from docket.db import Account, Entity, Period, Principal, table_of


@dataclass(frozen=True)
class AccountInfo:
    code: str
    name: str
    parent: str | None
    sensitivity: str


@dataclass(frozen=True)
class EntityInfo:
    code: str
    name: str
    region: str
    country: str


# Derived metrics and the accounts they are computed from, found by account name so a pack with other codes works:
# (minuend or numerator's base, subtrahend). docs/planner.md has the formulas.
DERIVED_OPERANDS: dict[str, tuple[str, str]] = {
    "gross_profit": ("revenue", "cost of goods sold"),
    "gross_margin_pct": ("revenue", "cost of goods sold"),
    "operating_income": ("revenue", "operating costs"),
}


@dataclass
class Catalog:
    """Everything the classifier, authorizer and planner need to know about a tenant's data."""

    tenant: str
    entities: dict[str, EntityInfo] = field(default_factory=dict)
    accounts: dict[str, AccountInfo] = field(default_factory=dict)
    periods: dict[str, str] = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return sorted({e.region for e in self.entities.values() if e.region})

    def subtree(self, code: str) -> list[str]:
        """The account and all its descendants."""
        out = [code]
        for child in sorted(c for c, a in self.accounts.items() if a.parent == code):
            out.extend(self.subtree(child))
        return out

    def accounts_in(self, code: str, exclude: list[str] | None = None) -> list[str]:
        """The account's subtree minus excluded subtrees: every account a figure for `code` adds up."""
        excluded = {c for x in exclude or [] for c in self.subtree(x)}
        return [c for c in self.subtree(code) if c not in excluded]

    def sensitive_descendants(self, code: str, sensitivity: str) -> list[str]:
        """Topmost accounts in code's subtree (code included) with the given sensitivity."""
        acc = self.accounts[code]
        if acc.sensitivity == sensitivity:
            return [code]
        out: list[str] = []
        for child in sorted(c for c, a in self.accounts.items() if a.parent == code):
            out.extend(self.sensitive_descendants(child, sensitivity))
        return out

    def is_sensitive(self, code: str, sensitivity: str) -> bool:
        """True when the account or any ancestor carries the sensitivity: "payroll (5.1 and below)"."""
        seen: set[str] = set()
        current: str | None = code
        while current is not None and current in self.accounts and current not in seen:
            if self.accounts[current].sensitivity == sensitivity:
                return True
            seen.add(current)
            current = self.accounts[current].parent
        return False

    def account_named(self, name: str) -> str | None:
        """The code of the account with this name (case-insensitive), or None."""
        wanted = name.lower()
        return next((c for c, a in sorted(self.accounts.items()) if a.name.lower() == wanted), None)

    def derived_accounts(self, key: str) -> list[str | None]:
        """The operand accounts of a derived metric (None where the chart lacks one)."""
        return [self.account_named(n) for n in DERIVED_OPERANDS.get(key, ())]

    def request_accounts(self, accounts: list[str], derived: list[str], shocked: list[str]) -> list[str]:
        """Every account a request reads: the ones it names, its derived metrics' operands, its scenario's shocks.

        The authorizer decides (and masks) on these, so a derived figure can never carry a part the asker may not
        see (operating income over a total that includes payroll).
        """
        out: list[str] = []
        for code in [*accounts, *(a for k in derived for a in self.derived_accounts(k) if a), *shocked]:
            if code in self.accounts and code not in out:
                out.append(code)
        return out

    def entities_in_region(self, region: str) -> list[str]:
        return sorted(c for c, e in self.entities.items() if e.region == region)


def load_catalog(engine: Engine, tenant: str) -> Catalog:
    """The tenant's catalog as it is now (read on every call: ingestion may change it at any time).

    Plain column reads, not ORM objects: classify, authorize and plan each load it once per request, and building
    ORM instances for every account was the larger part of that cost (docs/benchmarks.md).
    """
    e, a, p = table_of(Entity), table_of(Account), table_of(Period)
    with engine.connect() as conn:
        ents = conn.execute(select(e.c.code, e.c.name, e.c.region, e.c.country).where(e.c.tenant == tenant)).all()
        accs = conn.execute(select(a.c.code, a.c.name, a.c.parent, a.c.sensitivity).where(a.c.tenant == tenant)).all()
        pers = conn.execute(select(p.c.period, p.c.status).where(p.c.tenant == tenant)).all()
    return Catalog(
        tenant=tenant,
        entities={code: EntityInfo(code, name, region, country) for code, name, region, country in ents},
        accounts={code: AccountInfo(code, name, parent, sensitivity) for code, name, parent, sensitivity in accs},
        periods={period: status for period, status in pers},
    )


def load_principal(engine: Engine, principal_id: str) -> Principal | None:
    with Session(engine) as s:
        p = s.get(Principal, principal_id)
        if p is not None:
            s.expunge(p)
        return p
