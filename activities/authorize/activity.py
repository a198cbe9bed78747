"""authorize_request: Cedar decision over the slices a request would read, with the tenant's active policy set."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.authorize.engine import Authorizer, PolicySet, load_builtin_policies, parse_policies
from activities.errors import run_engine
from activities.trace import annotate
from docket import policies
from docket.catalog import Catalog, load_catalog, load_principal
from docket.contracts import AuthorizeInput, AuthorizeResult
from docket.errors import UnknownPrincipalError


class AuthorizeActivities:
    def __init__(self, engine: Engine, fixed: PolicySet | None = None) -> None:
        self.engine = engine
        # A fixed policy set (tests, benchmarks) bypasses the store; otherwise each tenant's active version.
        self.fixed = Authorizer(fixed) if fixed is not None else None
        self.builtin = Authorizer(load_builtin_policies())
        self._by_sha: dict[str, Authorizer] = {}

    def authorizer_for(self, tenant: str) -> Authorizer:
        if self.fixed is not None:
            return self.fixed
        stored = policies.active(self.engine, tenant)
        if stored is None:
            # A tenant loaded after the worker started has no stored version yet: the built-in set applies, and
            # its label says so ("builtin-…").
            return self.builtin
        # Parsed once per policy text; activation of another version is picked up on the next request.
        if stored.sha256 not in self._by_sha:
            self._by_sha[stored.sha256] = Authorizer(parse_policies(stored.source, version=stored.label))
        return self._by_sha[stored.sha256]

    def decide(self, data: AuthorizeInput, catalog: Catalog | None = None) -> AuthorizeResult:
        """The decision (blocking: database reads), on a catalog already read (understand_request) if given."""
        principal = load_principal(self.engine, data.principal_id)
        if principal is None:
            raise UnknownPrincipalError(
                f"principal {data.principal_id!r} is not known",
                hint="load principals with `docket ingest principals PATH`",
            )
        catalog = catalog or load_catalog(self.engine, data.tenant)
        result = self.authorizer_for(data.tenant).decide(principal, catalog, data.action, data.classification)
        annotate(
            **{
                "docket.policy_version": result.policy_version,
                "docket.decision": "allowed" if result.allowed else "denied",
                "docket.action": data.action.value,
                "docket.policies": result.policies,
                "docket.masked_count": len(result.masked),
                "docket.decisions": result.decisions,
            }
        )
        return result

    @activity.defn(name=names.AUTHORIZE)
    async def authorize_request(self, data: AuthorizeInput) -> AuthorizeResult:
        """Decide whether the principal may have this request answered, and what to mask."""
        return await run_engine(self.decide, data)
