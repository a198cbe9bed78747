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
    demo_data: Path = Path("examples/meridian")
    # Classification: below this confidence (or when a language model decided) a person confirms first.
    confirm_below: float = 0.80
    confirm_timeout_seconds: int = 900
    classifier_model: Path | None = None  # default: the artifact shipped in activities/classify/artifacts/
    # Audit log: every Nth event of a tenant's hash chain is also written to audit_anchors (docs/audit.md).
    audit_anchor_every: int = Field(default=100, ge=1)

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
