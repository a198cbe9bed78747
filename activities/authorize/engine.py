"""Authorization with Cedar: one decision per (entity, account, month) slice the request would read.

Entities for Cedar are built from the database (principal roles, region, entitlements, clearance, tenant;
entity region; account sensitivity; period status). Cedar reports determining policies by position, so the
policy set is parsed into statements and positions are mapped back to their @id annotations.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from docket.catalog import Catalog
from docket.contracts import Action, AuthorizeResult, ClassifyResult, MaskedComponent
from docket.db import Principal
from docket.ingest import CLEARANCES
from docket.periods import months_read

BUILTIN_POLICIES = Path(__file__).with_name("policies.cedar")
# Order in which denials are explained: the most specific rule first, the catch-all entitlement rule last.
POLICY_PRIORITY = ["POL-006", "POL-001", "POL-002", "POL-004", "POL-003", "POL-005"]
PAYROLL = "payroll"


@dataclass(frozen=True)
class PolicyStatement:
    policy_id: str
    reason: str
    text: str
    # @confirm("true"): a denial by this statement alone is lifted by a person's confirmation (POL-002).
    confirmable: bool = False


@dataclass(frozen=True)
class PolicySet:
    statements: tuple[PolicyStatement, ...]
    version: str

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.statements)


def parse_policies(source: str, version: str | None = None) -> PolicySet:
    """Split Cedar source into statements, keeping each one's @id, @reason and @confirm."""
    body = "\n".join(line for line in source.splitlines() if not line.strip().startswith("//"))
    statements: list[PolicyStatement] = []
    for chunk in re.split(r";\s*(?:\n|$)", body):
        chunk = chunk.strip()
        if not chunk:
            continue
        pid = re.search(r'@id\("([^"]+)"\)', chunk)
        reason = re.search(r'@reason\("([^"]+)"\)', chunk)
        if not pid:
            raise ValueError(f"policy statement without @id: {chunk[:80]}")
        confirm = re.search(r'@confirm\("true"\)', chunk) is not None
        statements.append(PolicyStatement(pid.group(1), reason.group(1) if reason else "", chunk + ";", confirm))
    return PolicySet(tuple(statements), version or "builtin-" + hashlib.sha256(source.encode()).hexdigest()[:12])


def validate_source(source: str) -> list[str]:
    """Problems with a policy set, in words: unparsable Cedar, a statement without @id, no permit at all."""
    try:
        policy_set = parse_policies(source)
    except ValueError as exc:
        return [str(exc)]
    try:
        cedarpy.format_policies(policy_set.text)
    except ValueError as exc:
        return [f"Cedar cannot parse the policy set: {exc}"]
    problems = []
    if not any(re.search(r"^\s*permit\b", st.text, re.M) for st in policy_set.statements):
        problems.append("no permit statement: every request would be denied")
    return problems


def load_builtin_policies() -> PolicySet:
    return parse_policies(BUILTIN_POLICIES.read_text(encoding="utf-8"))


def _uid(kind: str, ident: str) -> dict[str, dict[str, str]]:
    return {"__entity": {"type": f"Docket::{kind}", "id": ident}}


class Authorizer:
    """Evaluates a policy set for one tenant's catalog."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._text = policies.text
        # Parsed once: re-parsing the policy text dominated every Cedar call (cedarpy.PolicySet is reusable).
        self._handle = cedarpy.PolicySet.from_str(self._text)
        self._readable: dict[tuple[object, ...], list[str]] = {}
        self._clearance: dict[tuple[str, ...], str] = {}

    def _principal_entity(self, p: Principal) -> dict[str, Any]:
        return {
            "uid": _uid("Principal", p.id),
            "attrs": {
                "tenant": p.tenant,
                "roles": list(p.roles),
                "region": p.region or "",
                "entities": [e for e in p.entities if e != "*"],
                "all_entities": "*" in p.entities,
                "clearance": CLEARANCES.index(p.clearance) if p.clearance in CLEARANCES else 0,
            },
            "parents": [],
        }

    def decide(
        self, principal: Principal, catalog: Catalog, action: Action, classification: ClassifyResult
    ) -> AuthorizeResult:
        slots = classification.slots
        # Every month the plan will read, comparison periods and trend windows included (docket/periods.py).
        months = months_read(classification)
        entities = [e for e in slots.entities if e in catalog.entities]
        accounts = catalog.request_accounts(slots.accounts, slots.derived, [s.account for s in slots.shocks])
        # Masking candidates: payroll parts inside a requested non-payroll total (POL-008).
        excluded = {c for x in slots.exclude_accounts if x in catalog.accounts for c in catalog.subtree(x)}
        payroll_parts = {
            a: [x for x in catalog.sensitive_descendants(a, PAYROLL) if x != a and x not in excluded]
            for a in accounts
            if not catalog.is_sensitive(a, PAYROLL)
        }
        cedar_entities: list[dict[str, Any]] = [self._principal_entity(principal)]
        requests: list[dict[str, Any]] = []
        keys: list[tuple[str, str, str, bool]] = []  # (entity, account, month, is_masking_probe)

        def add_slice(entity: str, account: str, month: str, probe: bool) -> None:
            info = catalog.entities[entity]
            sid = f"{entity}|{account}|{month}"
            cedar_entities.append(
                {
                    "uid": _uid("LedgerSlice", sid),
                    "attrs": {
                        "tenant": catalog.tenant,
                        "entity": entity,
                        "region": info.region,
                        "account": account,
                        "payroll": catalog.is_sensitive(account, PAYROLL),
                        "period": month,
                        "period_closed": catalog.periods.get(month) == "closed",
                    },
                    "parents": [],
                }
            )
            requests.append(
                {
                    "principal": f'Docket::Principal::"{principal.id}"',
                    "action": f'Docket::Action::"{action.value}"',
                    "resource": f'Docket::LedgerSlice::"{sid}"',
                    "context": {"classification_confidence": int(classification.confidence * 1000)},
                }
            )
            keys.append((entity, account, month, probe))

        for entity in entities:
            for month in months:
                for account in accounts:
                    add_slice(entity, account, month, False)
                    for part in payroll_parts.get(account, []):
                        add_slice(entity, part, month, True)

        readable = self._readable_entities(principal, catalog)
        if not requests:
            # Nothing from the ledger (e.g. a document question): the policy set still decides, over the tenant
            # itself, so default deny holds; retrieval then filters by tenant, clearance and readable entities.
            cedar_entities.append(
                {"uid": _uid("Tenant", catalog.tenant), "attrs": {"tenant": catalog.tenant}, "parents": []}
            )
            res = cedarpy.is_authorized(
                {
                    "principal": f'Docket::Principal::"{principal.id}"',
                    "action": f'Docket::Action::"{action.value}"',
                    "resource": f'Docket::Tenant::"{catalog.tenant}"',
                    "context": {"classification_confidence": int(classification.confidence * 1000)},
                },
                self._handle,
                cedar_entities,
            )
            ids = sorted(
                {self.policies.statements[int(r.removeprefix("policy"))].policy_id for r in res.diagnostics.reasons}
            )
            if res.allowed:
                return AuthorizeResult(
                    action=action.value,
                    allowed=True,
                    policies=ids,
                    allowed_entities=[],
                    clearance=self.readable_clearance(principal, catalog.tenant),
                    policy_version=self.policies.version,
                    decisions=1,
                    readable_entities=readable,
                )
            ids = ids or ["POL-DEFAULT-DENY"]
            return AuthorizeResult(
                action=action.value,
                allowed=False,
                policies=ids,
                reasons=[self._explain(pid, set(), principal, catalog, action) for pid in ids],
                clearance=self.readable_clearance(principal, catalog.tenant),
                policy_version=self.policies.version,
                decisions=1,
            )

        results = self._batch(requests, cedar_entities)
        denied_by: dict[str, set[tuple[str, str, str]]] = {}
        permitted_by: set[str] = set()
        masked: dict[str, MaskedComponent] = {}
        entity_ok = dict.fromkeys(entities, True)
        all_confirmable = True
        for (entity, account, month, probe), res in zip(keys, results, strict=True):
            positions = [int(r.removeprefix("policy")) for r in res.diagnostics.reasons]
            ids = [self.policies.statements[i].policy_id for i in positions]
            if res.allowed:
                permitted_by.update(ids)
                continue
            if probe:
                # A masking probe never denies on its own: the slice of the whole total carries every other rule.
                # It only decides whether the payroll part is left out (POL-008).
                if "POL-001" in ids:
                    name = catalog.accounts[account].name
                    masked[account] = MaskedComponent(
                        account=account,
                        label=name,
                        policy="POL-008",
                        reason=f"{name} ({account}) is left out of the total: POL-001 restricts payroll for your role.",
                    )
                continue
            if not ids:
                ids = ["POL-DEFAULT-DENY"]
            entity_ok[entity] = False
            # A denial a confirmation can lift must come from confirmable statements only (POL-002 has a role
            # statement too, which no confirmation lifts).
            all_confirmable = (
                all_confirmable and bool(positions) and all(self.policies.statements[i].confirmable for i in positions)
            )
            for pid in ids:
                denied_by.setdefault(pid, set()).add((entity, account, month))

        allowed_entities = [e for e, ok in entity_ok.items() if ok]
        if denied_by:
            ordered = sorted(denied_by, key=lambda p: POLICY_PRIORITY.index(p) if p in POLICY_PRIORITY else 99)
            reasons = [self._explain(pid, denied_by[pid], principal, catalog, action) for pid in ordered]
            if allowed_entities and len(allowed_entities) < len(entities):
                reasons.append("You may ask about " + ", ".join(allowed_entities) + " instead.")
            return AuthorizeResult(
                action=action.value,
                allowed=False,
                needs_confirmation=all_confirmable,
                policies=ordered,
                reasons=reasons,
                allowed_entities=allowed_entities,
                clearance=self.readable_clearance(principal, catalog.tenant),
                policy_version=self.policies.version,
                decisions=len(requests),
                readable_entities=readable,
            )
        policies = sorted(permitted_by) + (["POL-008"] if masked else [])
        reasons = [m.reason for m in masked.values()]
        return AuthorizeResult(
            action=action.value,
            allowed=True,
            policies=policies,
            reasons=reasons,
            masked=list(masked.values()),
            allowed_entities=allowed_entities,
            clearance=self.readable_clearance(principal, catalog.tenant),
            policy_version=self.policies.version,
            decisions=len(requests),
            readable_entities=readable,
        )

    def _batch(self, requests: list[dict[str, Any]], entities: list[dict[str, Any]]) -> list[Any]:
        # A pre-parsed entity handle from one JSON string is ~30 % faster than handing cedarpy a list of dicts.
        handle = cedarpy.Entities.from_json_str(json.dumps(entities))
        return list(cedarpy.is_authorized_batch(requests, self._handle, handle))

    def readable_clearance(self, principal: Principal, tenant: str) -> str:
        """The highest document classification the policy set lets the principal read (POL-007), by Cedar.

        Retrieval filters on it, so which documents a search may return is a policy decision, not a copy of the
        principal's attribute.
        """
        key = (principal.id, principal.tenant, principal.clearance, tenant)
        if key not in self._clearance:
            entities: list[dict[str, Any]] = [self._principal_entity(principal)]
            requests = []
            for level, name in enumerate(CLEARANCES):
                entities.append(
                    {
                        "uid": _uid("Document", f"level-{name}"),
                        "attrs": {"tenant": tenant, "level": level},
                        "parents": [],
                    }
                )
                requests.append(
                    {
                        "principal": f'Docket::Principal::"{principal.id}"',
                        "action": 'Docket::Action::"read"',
                        "resource": f'Docket::Document::"level-{name}"',
                        "context": {"classification_confidence": 0},
                    }
                )
            results = self._batch(requests, entities)
            allowed = [name for name, res in zip(CLEARANCES, results, strict=True) if res.allowed]
            # "none" when even public documents are off limits: the search then returns nothing.
            self._clearance[key] = allowed[-1] if allowed else "none"
        return self._clearance[key]

    def readable_entities(self, principal: Principal, catalog: Catalog) -> list[str]:
        """Entities of the tenant the principal may read at all (entitlements, region, tenant)."""
        return self._readable_entities(principal, catalog)

    def _readable_entities(self, principal: Principal, catalog: Catalog) -> list[str]:
        """Entities the principal may read at all, cached per (principal attributes, tenant's entities)."""
        key = (
            principal.id,
            principal.tenant,
            tuple(principal.roles),
            principal.region or "",
            tuple(principal.entities),
            catalog.tenant,
            tuple(sorted((c, e.region) for c, e in catalog.entities.items())),
        )
        cached = self._readable.get(key)
        if cached is None:
            if len(self._readable) > 4096:
                self._readable.clear()  # a bound, not an LRU: principals and catalogs change rarely
            cached = self._readable[key] = self._compute_readable(principal, catalog)
        return list(cached)

    def _compute_readable(self, principal: Principal, catalog: Catalog) -> list[str]:
        """One neutral slice per entity (closed period, no payroll): which entities may the principal read."""
        entities: list[dict[str, Any]] = [self._principal_entity(principal)]
        requests = []
        codes = sorted(catalog.entities)
        for code in codes:
            sid = f"{code}|*|*"
            entities.append(
                {
                    "uid": _uid("LedgerSlice", sid),
                    "attrs": {
                        "tenant": catalog.tenant,
                        "entity": code,
                        "region": catalog.entities[code].region,
                        "account": "*",
                        "payroll": False,
                        "period": "*",
                        "period_closed": True,
                    },
                    "parents": [],
                }
            )
            requests.append(
                {
                    "principal": f'Docket::Principal::"{principal.id}"',
                    "action": 'Docket::Action::"read"',
                    "resource": f'Docket::LedgerSlice::"{sid}"',
                    "context": {"classification_confidence": 0},
                }
            )
        if not requests:
            return []
        results = self._batch(requests, entities)
        return [code for code, res in zip(codes, results, strict=True) if res.allowed]

    def _explain(
        self,
        pid: str,
        cells: set[tuple[str, str, str]],
        principal: Principal,
        catalog: Catalog,
        action: Action,
    ) -> str:
        ents = sorted({c[0] for c in cells})
        accs = sorted({c[1] for c in cells})
        months = sorted({c[2] for c in cells})
        if pid == "POL-001":
            names = ", ".join(f"{catalog.accounts[a].name} ({a})" for a in accs)
            return f"POL-001: {names} is payroll data, which the {', '.join(principal.roles)} role may not read."
        if pid == "POL-002" and principal.roles and any(r in ("cfo", "finance_director") for r in principal.roles):
            return (
                "POL-002: consolidating across entities needs a reading of the question with confidence above "
                "0.95; confirm what Docket understood and it will proceed."
            )
        if pid == "POL-002":
            return (
                "POL-002: only the CFO and the finance director may consolidate figures across entities; "
                "ask about one entity at a time."
            )
        if pid == "POL-003":
            where = ", ".join(f"{e} is in {catalog.entities[e].region}" for e in ents)
            return f"POL-003: regional managers see only their own region ({principal.region}); {where}."
        if pid == "POL-004":
            if action == Action.SCENARIO:
                return "POL-004: auditors may not run scenarios or forecasts."
            open_months = [m for m in months if catalog.periods.get(m) != "closed"]
            closed = sorted(m for m, s in catalog.periods.items() if s == "closed")
            last = closed[-1] if closed else "none"
            return (
                f"POL-004: auditors may read only closed periods; {', '.join(open_months)} is still open "
                f"(the last closed period is {last})."
            )
        if pid == "POL-005":
            return (
                f"POL-005: your entitlements do not include {', '.join(ents)}; ask an administrator to add "
                f"{'it' if len(ents) == 1 else 'them'} to your entitlements."
            )
        if pid == "POL-006":
            return "POL-006: nobody sees data of another tenant."
        statement = next((s for s in self.policies.statements if s.policy_id == pid), None)
        return f"{pid}: {statement.reason if statement else 'no policy permits this request'}."
