"""The one place Docket connects to Temporal."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

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


async def connect() -> Client:
    """Connect with the pydantic data converter and the OpenTelemetry plugin, as every Docket process must."""
    setup_tracing()
    config = connect_config()
    return await Client.connect(
        **config,  # type: ignore[arg-type]
        data_converter=pydantic_data_converter,
        plugins=[OpenTelemetryPlugin()],
    )


def ui_link(ui_base: str, workflow_id: str, ns: str = "default") -> str:
    """Deep link to a workflow in the Temporal UI."""
    return f"{ui_base.rstrip('/')}/namespaces/{ns}/workflows/{workflow_id}"
