"""Prometheus metrics: the series each process exposes on /metrics (docs/operations.md lists them).

Request series are counted by the worker when a request's result is first recorded (record_result writes it
exactly once per request, so a retried or replayed record never counts twice); HTTP series by the API; budget
usage by whichever process is scraped (read from the usage ledger at scrape time, so it is right in both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from docket.contracts import Outcome, RequestResult

# Docket's own series, in one registry per process (tests build apps and workers repeatedly: a module-level
# registry is registered once).
REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "docket_requests",
    "Requests finished, by outcome, intent, complexity and tenant.",
    ["outcome", "intent", "complexity", "tenant"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "docket_stage_duration_seconds",
    "Time a request spent in each stage of RequestWorkflow.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
DENIALS = Counter(
    "docket_denials", "Requests denied, by the policy that decided.", ["policy", "tenant"], registry=REGISTRY
)
MODEL_TOKENS = Counter(
    "docket_model_tokens",
    "Model tokens spent by finished requests, by kind (prompt, completion) and model.",
    ["kind", "model", "tenant"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "docket_model_cost_usd", "Model cost of finished requests in USD, by model.", ["model", "tenant"], registry=REGISTRY
)
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Gateway HTTP requests by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)


def observe_result(result: RequestResult) -> None:
    """Count one finished request (call once per request: when its result is first written)."""
    intent = result.classification.intent.value if result.classification else ""
    complexity = result.classification.complexity.value if result.classification else ""
    REQUESTS.labels(result.outcome.value, intent, complexity, result.tenant).inc()
    for stage, ms in result.timings.items():
        if stage != "total":
            STAGE_SECONDS.labels(stage).observe(ms / 1000)
    if result.outcome == Outcome.DENIED and result.authorization is not None:
        for policy in result.authorization.policies or ["POL-DEFAULT-DENY"]:
            DENIALS.labels(policy, result.tenant).inc()
    if result.usage.prompt_tokens or result.usage.completion_tokens:
        MODEL_TOKENS.labels("prompt", result.model, result.tenant).inc(result.usage.prompt_tokens)
        MODEL_TOKENS.labels("completion", result.model, result.tenant).inc(result.usage.completion_tokens)
        MODEL_COST.labels(result.model, result.tenant).inc(result.usage.cost_usd)


# Budget use is read from the database at scrape time; every scraped process would repeat the queries, so one read
# serves the scrapes of this many seconds.
BUDGET_TTL = 15.0


def cached(
    key: object, read: Callable[[datetime], Iterable[tuple[str, str, str, float]]]
) -> Callable[[datetime], Iterable[tuple[str, str, str, float]]]:
    """`read`, answered from its last result under `key` (the database it reads) while younger than BUDGET_TTL."""

    def wrapper(now: datetime) -> Iterable[tuple[str, str, str, float]]:
        hit = _CACHE.get(key)
        if hit is not None and (now - hit[0]).total_seconds() < BUDGET_TTL:
            return hit[1]
        rows = list(read(now))
        _CACHE[key] = (now, rows)
        return rows

    return wrapper


_CACHE: dict[object, tuple[datetime, list[tuple[str, str, str, float]]]] = {}


class BudgetCollector(Collector):
    """docket_budget_used_ratio{tenant,scope,limit}: today's use over each bounded daily limit, read at scrape time."""

    def __init__(self, read: Callable[[datetime], Iterable[tuple[str, str, str, float]]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "docket_budget_used_ratio",
            "Share of today's model budget used (1 = exhausted), by tenant, scope and limit (tokens, cost).",
            labels=["tenant", "scope", "limit"],
        )
        for tenant, scope, limit, ratio in self.read(datetime.now(UTC)):
            family.add_metric([tenant, scope, limit], ratio)
        yield family
