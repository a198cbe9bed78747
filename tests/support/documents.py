"""Helpers for tests that add documents and read the index back."""

from __future__ import annotations

import json

from activities.retrieve.store import ChunkFilter
from tests.conftest import Stack


def document(
    doc_id: str, body: str, *, tenant: str = "meridian", classification: str = "internal", title: str = ""
) -> str:
    """A markdown document with front matter, as a user would upload it."""
    head = {"id": doc_id, "title": title or doc_id, "tenant": tenant, "entities": ["MER-US"]}
    head["classification"] = classification
    return "---\n" + "".join(f"{k}: {json.dumps(v)}\n" for k, v in head.items()) + "---\n\n" + body


def chunk_ids(s: Stack, doc_id: str, version: str | None = None) -> list[str]:
    """What an index version holds for a document, read from the store itself."""
    rows = s.index.store.scroll(
        version or s.index.ensure_active(), ChunkFilter("meridian", doc_id=doc_id), ["chunk_id"]
    )
    return sorted(str(r["chunk_id"]) for r in rows)
