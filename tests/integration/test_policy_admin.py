"""The admin API over the policy store: list versions, activate one; the decision follows the active version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activities.authorize.engine import BUILTIN_POLICIES
from docket import ingest, policies
from tests.conftest import Stack

pytestmark = pytest.mark.integration
BUILTIN = BUILTIN_POLICIES.read_text(encoding="utf-8")
# A trial version in which the regional rule is switched off: only the entitlement rule then denies dave MER-JP.
TRIAL = BUILTIN.replace('@id("POL-003")', '@id("POL-003-off")').replace(
    'principal.roles.contains("regional_manager") && resource.region != principal.region', "false"
)


async def test_admins_list_and_activate_policy_versions(stack: Stack, tmp_path: Path) -> None:
    people = tmp_path / "admins.json"
    people.write_text(
        json.dumps(
            [
                {
                    "id": "olga",
                    "name": "Olga Admin",
                    "tenant": "meridian",
                    "roles": ["admin"],
                    "region": None,
                    "entities": [],
                    "clearance": "internal",
                }
            ]
        )
    )
    ingest.load_principals(stack.engine, people)
    v1 = policies.ensure_default(stack.engine, "meridian", BUILTIN)
    v2 = policies.create_version(stack.engine, "meridian", TRIAL, note="trial without POL-003", actor="olga")
    try:
        listed = await stack.http.get("/v1/admin/policies", headers=stack.auth("olga"))
        assert listed.status_code == 200
        assert [(v["version"], v["active"]) for v in listed.json()] == [(1, True), (2, False)]
        denied = await stack.http.get("/v1/admin/policies", headers=stack.auth("alice"))
        assert denied.status_code == 403 and denied.json()["type"].endswith("/admin-only")
        missing = await stack.http.post("/v1/admin/policies/99/activate", headers=stack.auth("olga"))
        assert missing.status_code == 404

        activated = await stack.http.post(f"/v1/admin/policies/{v2.version}/activate", headers=stack.auth("olga"))
        assert [(v["version"], v["active"]) for v in activated.json()] == [(1, False), (2, True)]
        resp = await stack.http.post(
            "/v1/requests",
            params={"wait": 30},
            headers=stack.auth("dave"),
            json={"question": "What was revenue for MER-JP last month?", "as_of": "2026-11-21"},
        )
        body = resp.json()
        assert body["outcome"] == "denied"
        assert body["authorization"]["policies"] == ["POL-005"]
        assert body["authorization"]["policy_version"] == v2.label
    finally:
        policies.activate(stack.engine, "meridian", v1.version, actor="test")
    again = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        headers=stack.auth("dave"),
        json={"question": "What was revenue for MER-JP last month?", "as_of": "2026-11-21"},
    )
    assert again.json()["authorization"]["policies"][0] == "POL-003"
    assert again.json()["authorization"]["policy_version"] == v1.label
