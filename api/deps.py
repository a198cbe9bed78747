"""Annotated dependencies: settings, database, Temporal client, the calling principal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from temporalio.client import Client

from api.problems import Problem
from docket import temporal, tokens
from docket.catalog import load_principal
from docket.db import Principal
from docket.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    client: Client | None = None
    lock: asyncio.Lock | None = None

    async def temporal(self) -> Client:
        """The Temporal client, connecting lazily so the API can start before Temporal is up."""
        if self.client is not None:
            return self.client
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            if self.client is None:
                try:
                    self.client = await temporal.connect()
                except Exception as exc:
                    raise Problem(
                        503,
                        "temporal-unavailable",
                        "Temporal is not reachable",
                        detail=f"{temporal.address()}: {exc}",
                        hint="start the stack with `docket up`, or set TEMPORAL_ADDRESS",
                    ) from exc
        return self.client


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.docket
    return state


State = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False)


def current_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise Problem(
            401,
            "unauthenticated",
            "A bearer token is required",
            hint="get one with `docket token PRINCIPAL` and send `Authorization: Bearer <token>`",
            headers=challenge,
        )
    try:
        claims = tokens.verify(state.settings.jwt_secret, credentials.credentials)
    except tokens.TokenError as exc:
        raise Problem(
            401,
            "invalid-token",
            "The bearer token is not valid",
            detail=str(exc),
            hint="mint a fresh one with `docket token PRINCIPAL`",
            headers=challenge,
        ) from exc
    principal = load_principal(state.engine, str(claims["sub"]))
    if principal is None or principal.tenant != claims.get("tenant"):
        raise Problem(
            403,
            "unknown-principal",
            "The token names a principal Docket does not know",
            detail=f"principal {claims['sub']!r} is not loaded for tenant {claims.get('tenant')!r}",
            hint="load principals with `docket ingest principals PATH`",
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
