"""authorize_request: Cedar decision over the slices a request would read."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.authorize.engine import Authorizer, PolicySet, load_builtin_policies
from activities.errors import run_engine
from docket.catalog import load_catalog, load_principal
from docket.contracts import AuthorizeInput, AuthorizeResult
from docket.errors import UnknownPrincipalError


class AuthorizeActivities:
    def __init__(self, engine: Engine, policies: PolicySet | None = None) -> None:
        self.engine = engine
        self.authorizer = Authorizer(policies or load_builtin_policies())

    def _authorize(self, data: AuthorizeInput) -> AuthorizeResult:
        principal = load_principal(self.engine, data.principal_id)
        if principal is None:
            raise UnknownPrincipalError(
                f"principal {data.principal_id!r} is not known",
                hint="load principals with `docket ingest principals PATH`",
            )
        catalog = load_catalog(self.engine, data.tenant)
        return self.authorizer.decide(principal, catalog, data.action, data.classification)

    @activity.defn(name=names.AUTHORIZE)
    async def authorize_request(self, data: AuthorizeInput) -> AuthorizeResult:
        """Decide whether the principal may have this request answered, and what to mask."""
        return await run_engine(self._authorize, data)
