"""Expected-decision cases for a candidate policy set: what `docket policy test` runs before an activation."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine

from activities.authorize.engine import Authorizer, parse_policies
from docket.catalog import load_catalog, load_principal
from docket.contracts import Action, ClassifyResult, Complexity, Intent, Slots, period_from_label


@dataclass(frozen=True)
class CaseResult:
    name: str
    ok: bool
    detail: str


def run_cases(engine: Engine, tenant: str, source: str, cases_text: str) -> list[CaseResult]:
    """Each case: principal, entity, account, period, action, expect (allow | deny | mask), optional policy."""
    authorizer = Authorizer(parse_policies(source))
    catalog = load_catalog(engine, tenant)
    results: list[CaseResult] = []
    for n, line in enumerate(cases_text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        case = json.loads(line)
        name = case.get("name") or f"case {n}"
        principal = load_principal(engine, case["principal"])
        if principal is None:
            results.append(CaseResult(name, False, f"unknown principal {case['principal']!r}"))
            continue
        account = case["account"]
        cls = ClassifyResult(
            intent=Intent.METRIC_LOOKUP,
            complexity=Complexity.SIMPLE,
            confidence=float(case.get("confidence", 0.97)),
            slots=Slots(
                metrics=[catalog.accounts[account].name.lower() if account in catalog.accounts else account],
                accounts=[account],
                entities=[case["entity"]],
                entity_scope="explicit",
                periods=[period_from_label(case["period"])],
            ),
        )
        decision = authorizer.decide(principal, catalog, Action(case["action"]), cls)
        got = "deny" if not decision.allowed else "mask" if decision.masked else "allow"
        ok = got == case["expect"]
        if ok and case.get("policy"):
            ok = case["policy"] in decision.policies
        detail = f"expected {case['expect']}{' by ' + case['policy'] if case.get('policy') else ''}, got {got}"
        detail += f" ({', '.join(decision.policies)})" if decision.policies else ""
        results.append(CaseResult(name, ok, detail))
    return results
