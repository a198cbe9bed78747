"""Admin-only: the tenant's policy versions, and activating one. Admins manage their own tenant only."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentPrincipal, State
from api.problems import Problem
from docket import policies
from docket.db import Principal

router = APIRouter(prefix="/v1/admin", tags=["admin"])
ADMIN_ROLES = {"admin", "policy_admin"}


class PolicyVersionView(BaseModel):
    version: int
    label: str
    active: bool
    note: str
    created_by: str
    created_at: datetime


def _require_admin(principal: Principal) -> None:
    if not ADMIN_ROLES & set(principal.roles):
        raise Problem(
            403,
            "admin-only",
            "Only administrators manage policies",
            detail=f"{principal.id} has roles {sorted(principal.roles)}",
            hint="ask an administrator (role admin or policy_admin)",
        )


def _views(state: State, tenant: str) -> list[PolicyVersionView]:
    current = policies.active(state.engine, tenant)
    return [
        PolicyVersionView(
            version=p.version,
            label=p.label,
            active=current is not None and current.version == p.version,
            note=p.note,
            created_by=p.created_by,
            created_at=p.created_at,
        )
        for p in policies.versions(state.engine, tenant)
    ]


@router.get("/policies", response_model=list[PolicyVersionView])
async def list_policies(state: State, principal: CurrentPrincipal) -> list[PolicyVersionView]:
    """The tenant's stored policy versions; the one in force has `active: true`."""
    _require_admin(principal)
    return await asyncio.to_thread(_views, state, principal.tenant)


@router.post(
    "/policies/{version}/activate",
    response_model=list[PolicyVersionView],
    responses={403: {"description": "not an admin"}, 404: {"description": "no such version"}},
)
async def activate_policy(version: int, state: State, principal: CurrentPrincipal) -> list[PolicyVersionView]:
    """Put a stored version in force (new versions are added with `docket policy activate FILE`)."""
    _require_admin(principal)
    try:
        await asyncio.to_thread(policies.activate, state.engine, principal.tenant, version, actor=principal.id)
    except policies.PolicyError as exc:
        raise Problem(404, "policy-version-not-found", exc.message, hint=exc.hint) from exc
    return await asyncio.to_thread(_views, state, principal.tenant)
