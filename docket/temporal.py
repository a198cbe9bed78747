"""The one place Docket connects to Temporal."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from docket.contracts import SEARCH_ATTRIBUTES
from docket.errors import DocketError
from docket.telemetry import setup_tracing

DEFAULT_ADDRESS = "localhost:7233"


def connect_config() -> dict[str, object]:
    """TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS… from env or the temporal config file."""
    config: dict[str, object] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    return config


def address() -> str:
    return str(connect_config()["target_host"])


def namespace() -> str:
    return str(connect_config().get("namespace") or "default")


def tracing_plugin() -> OpenTelemetryPlugin:
    """Temporal's OpenTelemetry plugin with its own spans (StartWorkflow, RunWorkflow, StartActivity,
    RunActivity…), so a request's trace shows the workflow and every activity between the HTTP call and the model
    call. Replay-safe: a replayed workflow task creates no span (tests/integration/test_observability.py)."""
    return OpenTelemetryPlugin(add_temporal_spans=True)


async def connect(runtime: Runtime | None = None) -> Client:
    """Connect with the pydantic data converter and the OpenTelemetry plugin, as every Docket process must."""
    setup_tracing()
    config = connect_config()
    return await Client.connect(
        **config,  # type: ignore[arg-type]
        data_converter=pydantic_data_converter,
        plugins=[tracing_plugin()],
        runtime=runtime,
    )


def metrics_runtime(port: int) -> Runtime:
    """A Temporal runtime whose SDK metrics (temporal_*: task slots, poll and schedule latencies, failures) are
    served for Prometheus on 127.0.0.1:port; the worker's /metrics includes them."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))


# Server settings Docket's latency depends on (docs/benchmarks.md, "The 45 ms hop"). The history service reads a
# shard's transfer queue (the tasks it hands to matching: every workflow task after the first, every activity
# task not run eagerly) at most history.transferProcessorMaxPollRPS times a second, 20 by default, through a token
# bucket holding one second of reads. A dev server has one shard, so under sustained traffic (a few sequential
# requests are enough) each hop through the task queue waited for the next read, up to 50 ms. 1000 reads a second
# make that wait about 1 ms. The limit is a ceiling, not a polling rate: an idle server reads no more often
# (bench/hop.py measured no idle cost). A self-hosted cluster takes the same key in its dynamic config
# (docs/operations.md).
DYNAMIC_CONFIG: dict[str, int] = {"history.transferProcessorMaxPollRPS": 1000}


def dynamic_config_args() -> list[str]:
    """`temporal server start-dev --dynamic-config-value` flags for DYNAMIC_CONFIG."""
    return [arg for key, value in DYNAMIC_CONFIG.items() for arg in ("--dynamic-config-value", f"{key}={value}")]


def dev_server_args() -> list[str]:
    """`temporal server start-dev` flags: Docket's search attributes and DYNAMIC_CONFIG."""
    attributes = [arg for key in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{key.name}=Keyword")]
    return attributes + dynamic_config_args()


class SearchAttributesMissingError(DocketError):
    type = "SearchAttributesMissing"


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register Docket's search attributes in the client's namespace if missing; the names it added.

    RequestWorkflow upserts them, and an upsert of an unregistered attribute fails the run's workflow tasks, so a
    worker must not start without them. Where the worker may not register them (Temporal Cloud: the namespace's
    admin does), it stops with the command that does.
    """
    ns = client.namespace
    missing = [k.name for k in SEARCH_ATTRIBUTES]
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=ns))
        present = set(listed.custom_attributes) | set(listed.system_attributes)
        missing = [name for name in missing if name not in present]
        if not missing:
            return []
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=ns,
                search_attributes=dict.fromkeys(missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
            )
        )
    except RPCError as exc:
        names = " ".join(f"--name {n}" for n in missing)
        raise SearchAttributesMissingError(
            f"search attributes {missing} may not be registered in namespace {ns!r}, and could not be checked or "
            f"added: {exc.message}",
            hint=f"temporal operator search-attribute create --namespace {ns} {names} --type Keyword "
            "(on Temporal Cloud: tcld namespace search-attributes add, or the Cloud UI)",
        ) from exc
    return missing


def ui_link(ui_base: str, workflow_id: str, ns: str = "default") -> str:
    """Deep link to a workflow in the Temporal UI."""
    return f"{ui_base.rstrip('/')}/namespaces/{ns}/workflows/{workflow_id}"
