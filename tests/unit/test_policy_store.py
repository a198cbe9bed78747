"""The policy store: immutable numbered versions, activation, the label recorded in decisions, and policy tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from activities.authorize.activity import AuthorizeActivities
from activities.authorize.engine import BUILTIN_POLICIES, validate_source
from activities.authorize.policy_tests import run_cases
from activities.classify.rules import RuleClassifier
from docket import ingest, policies
from docket.contracts import Action, AuthorizeInput
from tests.conftest import DEMO
from tests.unit.conftest import migrated_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh database per test: these tests write policy versions."""
    eng = migrated_engine(tmp_path)
    ingest.load_pack(eng, DEMO)
    yield eng
    eng.dispose()


BUILTIN = BUILTIN_POLICIES.read_text(encoding="utf-8")
CASES = (DEMO / "policy_tests.jsonl").read_text(encoding="utf-8")
WITHOUT_POL_003 = BUILTIN.replace('@id("POL-003")', '@id("POL-003-disabled")').replace(
    'principal.roles.contains("regional_manager") && resource.region != principal.region', "false"
)


def test_versions_are_numbered_immutable_and_activation_picks_one(engine: Engine) -> None:
    assert policies.active(engine, "meridian") is None
    v1 = policies.ensure_default(engine, "meridian", BUILTIN)
    assert (v1.version, v1.label) == (1, f"meridian/v1-{policies.sha(BUILTIN)[:8]}")
    assert policies.ensure_default(engine, "meridian", WITHOUT_POL_003).version == 1  # existing tenants untouched
    same = policies.create_version(engine, "meridian", BUILTIN)
    assert same.version == 1  # storing the newest text again is a no-op
    v2 = policies.create_version(engine, "meridian", WITHOUT_POL_003, note="trial", actor="olga")
    assert v2.version == 2 and policies.active(engine, "meridian") == v1
    policies.activate(engine, "meridian", 2, actor="olga")
    assert policies.active(engine, "meridian") == v2
    policies.activate(engine, "meridian", 1, actor="olga")  # roll back
    assert policies.active(engine, "meridian") == v1
    assert policies.diff(v1, v2).count("\n-") >= 1 and "meridian/v2-" in policies.diff(v1, v2)
    with pytest.raises(policies.PolicyError):
        policies.activate(engine, "meridian", 9)


def test_the_active_version_decides_and_is_recorded(engine: Engine, classifier: RuleClassifier) -> None:
    acts = AuthorizeActivities(engine)
    cls = classifier.classify("What was revenue for MER-JP last month?", date(2026, 11, 21))
    data = AuthorizeInput(tenant="meridian", principal_id="dave", action=Action.READ, classification=cls)
    builtin = acts.decide(data)
    assert builtin.policy_version.startswith("builtin-") and builtin.policies[0] == "POL-003"
    policies.ensure_default(engine, "meridian", BUILTIN)
    v2 = policies.create_version(engine, "meridian", WITHOUT_POL_003)
    policies.activate(engine, "meridian", v2.version)
    trial = acts.decide(data)
    assert trial.policy_version == v2.label
    assert trial.policies == ["POL-005"]  # POL-003 is switched off in v2; the entitlement rule still denies


def test_validation_names_the_problem() -> None:
    assert validate_source(BUILTIN) == []
    assert "without @id" in validate_source("permit(principal, action, resource);")[0]
    assert "cannot parse" in validate_source('@id("X")\npermit(principal, action, resource) when { x == };')[0]
    assert "no permit" in validate_source('@id("X")\nforbid(principal, action, resource);')[0]


def test_policy_tests_pass_for_the_builtin_set_and_catch_a_broken_one(engine: Engine) -> None:
    results = run_cases(engine, "meridian", BUILTIN, CASES)
    assert len(results) >= 15 and all(r.ok for r in results), [r for r in results if not r.ok]
    broken = run_cases(engine, "meridian", WITHOUT_POL_003, CASES)
    failed = [r.name for r in broken if not r.ok]
    assert failed == ["regional manager outside the region (POL-003)"]


def test_cli_policy_commands(tmp_path: Path, engine: Engine) -> None:
    del engine  # the CLI opens its own database from DOCKET_DATA_DIR
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {"DOCKET_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin"}

    def docket(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args], env=env, cwd=ROOT, text=True, capture_output=True, timeout=120
        )

    assert docket("ingest", "ledger", str(DEMO)).returncode == 0
    assert docket("ingest", "principals", str(DEMO / "principals.json")).returncode == 0
    assert "valid: 10 statements" in docket("policy", "validate", str(BUILTIN_POLICIES)).stdout
    tested = docket("policy", "test", str(BUILTIN_POLICIES))
    assert tested.returncode == 0 and "15 passed, 0 failed" in tested.stdout
    trial = tmp_path / "trial.cedar"
    trial.write_text(WITHOUT_POL_003, encoding="utf-8")
    assert docket("policy", "test", str(trial)).returncode == 1
    assert "active for meridian: meridian/v1-" in docket("policy", "activate", str(BUILTIN_POLICIES)).stdout
    assert "active for meridian: meridian/v2-" in docket("policy", "activate", str(trial), "--note", "t").stdout
    assert "POL-003-disabled" in docket("policy", "diff", "1", "2").stdout
    assert "* v1" in docket("policy", "activate", "1").stdout + docket("policy", "list").stdout
    bad = tmp_path / "bad.cedar"
    bad.write_text("permit(principal, action, resource);", encoding="utf-8")
    assert docket("policy", "activate", str(bad)).returncode == 1


def test_document_clearance_is_a_cedar_decision(engine: Engine) -> None:
    from activities.authorize.engine import Authorizer, parse_policies
    from docket.catalog import load_principal

    builtin = Authorizer(parse_policies(BUILTIN))
    seen = {}
    for who in ("alice", "bob", "carol", "heidi", "ken"):
        principal = load_principal(engine, who)
        assert principal is not None
        seen[who] = builtin.readable_clearance(principal, principal.tenant)
    assert seen == {
        "alice": "restricted",
        "bob": "confidential",
        "carol": "internal",
        "heidi": "public",
        "ken": "internal",
    }
    carol = load_principal(engine, "carol")
    assert carol is not None
    assert builtin.readable_clearance(carol, "globex") == "none"  # another tenant: no document at all (POL-006)
    without = BUILTIN.replace("unless { principal.clearance >= resource.level }", "when { false }")
    assert Authorizer(parse_policies(without)).readable_clearance(carol, "meridian") == "restricted"
