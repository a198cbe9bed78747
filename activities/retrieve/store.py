"""Where chunks live: one small interface over two Qdrant engines, with versioned collections behind an alias.

- `EdgeStore` (default, embedded): Qdrant Edge, the in-process Qdrant engine (`qdrant-edge-py`): real payload
  indexes, HNSW and sparse indexes, the query API with prefetch + RRF fusion. One shard directory per index
  version; the alias is a small JSON file replaced atomically. Only the worker opens it.
- `QdrantStore`: `qdrant-client`, against a Qdrant server (`QDRANT_URL`) or, with no URL, the client's own local
  mode (a brute-force Python re-implementation, fine for tests and tiny corpora: docs/retrieval.md has the
  numbers). Versions are collections, the alias is a Qdrant collection alias, switched atomically server-side.

Isolation is structural: every search, count, scroll and delete takes a `ChunkFilter`, which cannot be built
without a tenant, and both engines put the tenant condition first in every native filter. No other module talks
to a Qdrant client (tests/unit/test_retrieval_hybrid.py checks the call sites).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from docket.errors import DocketError, TenantFilterMissingError

ALIAS = "docket_chunks"
DENSE = "dense"
SPARSE = "lexical"
VERSION_NAME = re.compile(rf"^{ALIAS}_v(\d+)$")


class IndexVersionError(DocketError):
    """An index operation that cannot be done as asked (unknown version, nothing to roll back to)."""

    type = "IndexError"


@dataclass(frozen=True)
class ChunkFilter:
    """Which chunks a caller may touch. The tenant is mandatory; everything else narrows further."""

    tenant: str
    max_level: int | None = None
    # Chunks must be tagged with one of these entities.
    entities_any: Sequence[str] | None = None
    # Chunks tagged with one of these entities, or not tagged at all (policies apply to every entity).
    entities_or_untagged: Sequence[str] | None = None
    exclude_entities: Sequence[str] = ()
    doc_id: str | None = None

    def __post_init__(self) -> None:
        if not self.tenant or not self.tenant.strip():
            raise TenantFilterMissingError(
                "document index access without a tenant filter refused",
                hint="every search, count and delete must name the tenant it is for",
            )


@dataclass(frozen=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class ChunkPoint:
    id: str
    sparse: SparseVec
    payload: dict[str, Any]
    dense: list[float] | None = None


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class VersionInfo:
    """One index version: its name, what built it and how many chunks it holds."""

    name: str
    embedder: str = ""
    dim: int = 0
    created_at: str = ""
    points: int = 0
    active: bool = False

    @property
    def number(self) -> int:
        m = VERSION_NAME.match(self.name)
        return int(m.group(1)) if m else 0


def version_name(n: int) -> str:
    return f"{ALIAS}_v{n}"


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, with fsyncs: a reader (or a restart after a crash) sees the old file or the new one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VectorStore(Protocol):
    """The operations Docket needs from a vector engine. Every data access is tenant-scoped."""

    kind: str

    def versions(self) -> list[VersionInfo]: ...
    def active(self) -> str | None: ...
    def previous(self) -> str | None: ...
    def create_version(self, name: str, *, embedder: str, dim: int) -> VersionInfo: ...
    def drop_version(self, name: str) -> None: ...
    def switch(self, name: str) -> str | None: ...
    def upsert(self, version: str, points: Sequence[ChunkPoint]) -> None: ...
    def delete(self, version: str, flt: ChunkFilter) -> None: ...
    def count(self, version: str, flt: ChunkFilter) -> int: ...
    def scroll(self, version: str, flt: ChunkFilter, fields: Sequence[str]) -> Iterator[dict[str, Any]]: ...
    def search(
        self,
        version: str,
        flt: ChunkFilter,
        *,
        sparse: SparseVec | None,
        dense: list[float] | None,
        limit: int,
        prefetch: int,
    ) -> list[Hit]: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------- Qdrant Edge


class EdgeStore:
    """Embedded Qdrant Edge shards under one folder: `<root>/<version>/` plus `<root>/aliases.json`."""

    kind = "edge"

    def __init__(self, root: Path) -> None:
        import qdrant_edge as qe

        self.qe = qe
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}
        # Shard handles are opened lazily and shared between threads; opening and closing take this lock.
        self._lock = threading.RLock()
        # Only this process opens the folder, so the alias file is read once and kept in step on every switch
        # (every search asks for the active version; it must not read a file each time).
        self._alias_file = self.root / "aliases.json"
        try:
            self._aliases: dict[str, Any] = json.loads(self._alias_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._aliases = {}

    # aliases ------------------------------------------------------------------------------------------
    def active(self) -> str | None:
        value = self._aliases.get(ALIAS)
        return str(value) if value else None

    def previous(self) -> str | None:
        value = self._aliases.get("previous")
        return str(value) if value else None

    def switch(self, name: str) -> str | None:
        with self._lock:
            if not (self.root / name / "meta.json").is_file():
                raise IndexVersionError(f"index version {name} does not exist", hint="`docket index status` lists them")
            old = self.active()
            aliases = {ALIAS: name, "previous": old if old != name else self.previous()}
            _write_atomically(self._alias_file, aliases)
            self._aliases = aliases
            return old

    # versions -----------------------------------------------------------------------------------------
    def _meta(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / name / "meta.json").read_text(encoding="utf-8"))
        return data

    def versions(self) -> list[VersionInfo]:
        active = self.active()
        out = []
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and VERSION_NAME.match(path.name) and (path / "meta.json").is_file():
                meta = self._meta(path.name)
                out.append(
                    VersionInfo(
                        name=path.name,
                        embedder=str(meta.get("embedder", "")),
                        dim=int(meta.get("dim", 0)),
                        created_at=str(meta.get("created_at", "")),
                        points=self._shard(path.name).count(self.qe.CountRequest(exact=True)),
                        active=path.name == active,
                    )
                )
        return sorted(out, key=lambda v: v.number)

    def create_version(self, name: str, *, embedder: str, dim: int) -> VersionInfo:
        qe = self.qe
        with self._lock:
            path = self.root / name
            if path.exists() and not (path / "meta.json").exists():
                # A build that died before writing its metadata: never listed, never switched to, safe to drop.
                shutil.rmtree(path)
            if path.exists():
                raise IndexVersionError(f"index version {name} already exists")
            vectors = {DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)} if dim else {}
            config = qe.EdgeConfig(
                vectors=vectors,
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = qe.EdgeShard.create(str(path / "shard"), config)
            # Payload indexes: the tenant filter is on every query, so it must never be a scan.
            for key, schema in (
                ("tenant", qe.PayloadSchemaType.Keyword),
                ("doc_id", qe.PayloadSchemaType.Keyword),
                ("entities", qe.PayloadSchemaType.Keyword),
                ("classification_level", qe.PayloadSchemaType.Integer),
            ):
                shard.update(qe.UpdateOperation.create_field_index(key, schema))
            created = _now()
            meta = {"embedder": embedder, "dim": dim, "created_at": created}
            _write_atomically(path / "meta.json", meta)
            self._shards[name] = shard
            return VersionInfo(name=name, embedder=embedder, dim=dim, created_at=created)

    def drop_version(self, name: str) -> None:
        with self._lock:
            if name == self.active():
                raise IndexVersionError(f"{name} is the active index version", hint="switch to another version first")
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self.root / name, ignore_errors=True)

    def _shard(self, name: str) -> Any:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                path = self.root / name / "shard"
                if not path.is_dir():
                    raise IndexVersionError(f"index version {name} does not exist")
                shard = self.qe.EdgeShard.load(str(path))
                self._shards[name] = shard
            return shard

    # data ---------------------------------------------------------------------------------------------
    def _filter(self, flt: ChunkFilter) -> Any:
        qe = self.qe
        must: list[Any] = [qe.FieldCondition(key="tenant", match=qe.MatchValue(flt.tenant))]
        if flt.max_level is not None:
            must.append(qe.FieldCondition(key="classification_level", range=qe.RangeFloat(lte=float(flt.max_level))))
        if flt.doc_id is not None:
            must.append(qe.FieldCondition(key="doc_id", match=qe.MatchValue(flt.doc_id)))
        if flt.entities_any is not None:
            must.append(qe.FieldCondition(key="entities", match=qe.MatchAny(list(flt.entities_any) or ["\x00none"])))
        if flt.entities_or_untagged is not None:
            must.append(
                qe.Filter(
                    should=[
                        qe.FieldCondition(key="entities", match=qe.MatchAny(list(flt.entities_or_untagged))),
                        qe.IsEmptyCondition(key="entities"),
                    ]
                )
            )
        must_not = (
            [qe.FieldCondition(key="entities", match=qe.MatchAny(list(flt.exclude_entities)))]
            if flt.exclude_entities
            else None
        )
        return qe.Filter(must=must, must_not=must_not)

    def upsert(self, version: str, points: Sequence[ChunkPoint]) -> None:
        qe = self.qe
        if not points:
            return
        native = []
        for p in points:
            vector: dict[str, Any] = {SPARSE: qe.SparseVector(indices=p.sparse.indices, values=p.sparse.values)}
            if p.dense is not None:
                vector[DENSE] = p.dense
            native.append(qe.Point(id=p.id, vector=vector, payload=p.payload))
        shard = self._shard(version)
        shard.update(qe.UpdateOperation.upsert_points(native))
        shard.flush()

    def delete(self, version: str, flt: ChunkFilter) -> None:
        shard = self._shard(version)
        shard.update(self.qe.UpdateOperation.delete_points_by_filter(self._filter(flt)))
        shard.flush()

    def count(self, version: str, flt: ChunkFilter) -> int:
        return int(self._shard(version).count(self.qe.CountRequest(exact=True, filter=self._filter(flt))))

    def scroll(self, version: str, flt: ChunkFilter, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        shard = self._shard(version)
        offset: Any = None
        while True:
            records, offset = shard.scroll(
                self.qe.ScrollRequest(offset=offset, limit=256, filter=self._filter(flt), with_payload=True)
            )
            for r in records:
                payload = dict(r.payload or {})
                yield {k: payload.get(k) for k in fields}
            if offset is None:
                return

    def search(
        self,
        version: str,
        flt: ChunkFilter,
        *,
        sparse: SparseVec | None,
        dense: list[float] | None,
        limit: int,
        prefetch: int,
    ) -> list[Hit]:
        qe = self.qe
        native_filter = self._filter(flt)
        sparse_q = (
            qe.Query.Nearest(qe.SparseVector(indices=sparse.indices, values=sparse.values), using=SPARSE)
            if sparse is not None and sparse.indices
            else None
        )
        dense_q = qe.Query.Nearest(dense, using=DENSE) if dense is not None else None
        shard = self._shard(version)
        if sparse_q is not None and dense_q is not None:
            # Reciprocal rank fusion of both candidate lists, done by the engine (the query API).
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=prefetch, query=dense_q, filter=native_filter),
                    qe.Prefetch(limit=prefetch, query=sparse_q, filter=native_filter),
                ],
                query=qe.Fusion.Rrf(k=60),
                filter=native_filter,
                with_payload=True,
            )
        elif sparse_q is not None or dense_q is not None:
            request = qe.QueryRequest(limit=limit, query=sparse_q or dense_q, filter=native_filter, with_payload=True)
        else:
            return []
        return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in shard.query(request)]

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()


# --------------------------------------------------------------------------------------------- qdrant-client


class QdrantStore:
    """qdrant-client against a server (QDRANT_URL) or its local mode; versions are collections behind an alias."""

    kind = "qdrant"

    def __init__(self, *, url: str = "", api_key: str = "", path: str = "") -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.remote = bool(url)
        if url:
            self.client = QdrantClient(url=url, api_key=api_key or None)
        elif path:
            self.client = QdrantClient(path=path)
        else:
            self.client = QdrantClient(location=":memory:")
        # Local mode is not safe for concurrent use from several threads; a server is.
        self._lock = threading.RLock()
        self._meta_collection = f"{ALIAS}_meta"

    def _alias_target(self) -> str | None:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == ALIAS:
                return str(a.collection_name)
        return None

    def _meta(self) -> dict[str, Any]:
        # Version metadata lives in a tiny collection of its own, so a server keeps it with the data.
        if not self.client.collection_exists(self._meta_collection):
            self.client.create_collection(self._meta_collection, vectors_config={})
        points = self.client.retrieve(self._meta_collection, ids=[1], with_payload=True)
        data: dict[str, Any] = dict(points[0].payload or {}) if points else {}
        data.setdefault("versions", {})
        data.setdefault("previous", None)
        return data

    def _save_meta(self, data: dict[str, Any]) -> None:
        m = self.models
        self.client.upsert(self._meta_collection, points=[m.PointStruct(id=1, vector={}, payload=data)], wait=True)

    def active(self) -> str | None:
        with self._lock:
            return self._alias_target()

    def previous(self) -> str | None:
        with self._lock:
            value = self._meta().get("previous")
            return str(value) if value else None

    def versions(self) -> list[VersionInfo]:
        with self._lock:
            active = self._alias_target()
            meta = self._meta()["versions"]
            out = []
            for c in self.client.get_collections().collections:
                if not VERSION_NAME.match(c.name):
                    continue
                info = meta.get(c.name, {})
                out.append(
                    VersionInfo(
                        name=c.name,
                        embedder=str(info.get("embedder", "")),
                        dim=int(info.get("dim", 0)),
                        created_at=str(info.get("created_at", "")),
                        points=int(self.client.count(c.name, exact=True).count),
                        active=c.name == active,
                    )
                )
            return sorted(out, key=lambda v: v.number)

    def create_version(self, name: str, *, embedder: str, dim: int) -> VersionInfo:
        m = self.models
        with self._lock:
            if self.client.collection_exists(name):
                raise IndexVersionError(f"index version {name} already exists")
            self.client.create_collection(
                name,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)} if dim else {},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            if self.remote:
                # Local mode filters by brute force (and warns that indexes do nothing); a server needs them. The
                # tenant index is marked as such so the server co-locates each tenant's points.
                self.client.create_payload_index(
                    name,
                    "tenant",
                    m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
                )
                for key in ("doc_id", "entities"):
                    self.client.create_payload_index(name, key, m.PayloadSchemaType.KEYWORD)
                self.client.create_payload_index(name, "classification_level", m.PayloadSchemaType.INTEGER)
            meta = self._meta()
            created = _now()
            meta["versions"][name] = {"embedder": embedder, "dim": dim, "created_at": created}
            self._save_meta(meta)
            return VersionInfo(name=name, embedder=embedder, dim=dim, created_at=created)

    def drop_version(self, name: str) -> None:
        with self._lock:
            if name == self._alias_target():
                raise IndexVersionError(f"{name} is the active index version", hint="switch to another version first")
            self.client.delete_collection(name)
            meta = self._meta()
            meta["versions"].pop(name, None)
            self._save_meta(meta)

    def switch(self, name: str) -> str | None:
        m = self.models
        with self._lock:
            if not self.client.collection_exists(name):
                raise IndexVersionError(f"index version {name} does not exist", hint="`docket index status` lists them")
            old = self._alias_target()
            ops: list[Any] = []
            if old is not None:
                ops.append(m.DeleteAliasOperation(delete_alias=m.DeleteAlias(alias_name=ALIAS)))
            ops.append(m.CreateAliasOperation(create_alias=m.CreateAlias(collection_name=name, alias_name=ALIAS)))
            # One request: the server applies the delete and the create atomically.
            self.client.update_collection_aliases(change_aliases_operations=ops)
            meta = self._meta()
            if old != name:
                meta["previous"] = old
            self._save_meta(meta)
            return old

    def _filter(self, flt: ChunkFilter) -> Any:
        m = self.models
        must: list[Any] = [m.FieldCondition(key="tenant", match=m.MatchValue(value=flt.tenant))]
        if flt.max_level is not None:
            must.append(m.FieldCondition(key="classification_level", range=m.Range(lte=flt.max_level)))
        if flt.doc_id is not None:
            must.append(m.FieldCondition(key="doc_id", match=m.MatchValue(value=flt.doc_id)))
        if flt.entities_any is not None:
            must.append(m.FieldCondition(key="entities", match=m.MatchAny(any=list(flt.entities_any) or ["\x00none"])))
        if flt.entities_or_untagged is not None:
            must.append(
                m.Filter(
                    should=[
                        m.FieldCondition(key="entities", match=m.MatchAny(any=list(flt.entities_or_untagged))),
                        m.IsEmptyCondition(is_empty=m.PayloadField(key="entities")),
                    ]
                )
            )
        must_not = (
            [m.FieldCondition(key="entities", match=m.MatchAny(any=list(flt.exclude_entities)))]
            if flt.exclude_entities
            else None
        )
        return m.Filter(must=must, must_not=must_not)

    def upsert(self, version: str, points: Sequence[ChunkPoint]) -> None:
        m = self.models
        if not points:
            return
        native = []
        for p in points:
            vector: dict[str, Any] = {SPARSE: m.SparseVector(indices=p.sparse.indices, values=p.sparse.values)}
            if p.dense is not None:
                vector[DENSE] = p.dense
            native.append(m.PointStruct(id=p.id, vector=vector, payload=p.payload))
        with self._lock:
            self.client.upsert(version, points=native, wait=True)

    def delete(self, version: str, flt: ChunkFilter) -> None:
        m = self.models
        with self._lock:
            self.client.delete(version, points_selector=m.FilterSelector(filter=self._filter(flt)), wait=True)

    def count(self, version: str, flt: ChunkFilter) -> int:
        with self._lock:
            return int(self.client.count(version, count_filter=self._filter(flt), exact=True).count)

    def scroll(self, version: str, flt: ChunkFilter, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        offset: Any = None
        while True:
            with self._lock:
                records, offset = self.client.scroll(
                    version, scroll_filter=self._filter(flt), limit=256, offset=offset, with_payload=list(fields)
                )
            for r in records:
                payload = dict(r.payload or {})
                yield {k: payload.get(k) for k in fields}
            if offset is None:
                return

    def search(
        self,
        version: str,
        flt: ChunkFilter,
        *,
        sparse: SparseVec | None,
        dense: list[float] | None,
        limit: int,
        prefetch: int,
    ) -> list[Hit]:
        m = self.models
        native_filter = self._filter(flt)
        sparse_q = (
            m.SparseVector(indices=sparse.indices, values=sparse.values)
            if sparse is not None and sparse.indices
            else None
        )
        with self._lock:
            if sparse_q is not None and dense is not None:
                response = self.client.query_points(
                    version,
                    prefetch=[
                        m.Prefetch(query=dense, using=DENSE, filter=native_filter, limit=prefetch),
                        m.Prefetch(query=sparse_q, using=SPARSE, filter=native_filter, limit=prefetch),
                    ],
                    query=m.FusionQuery(fusion=m.Fusion.RRF),
                    query_filter=native_filter,
                    limit=limit,
                    with_payload=True,
                )
            elif sparse_q is not None:
                response = self.client.query_points(
                    version, query=sparse_q, using=SPARSE, query_filter=native_filter, limit=limit, with_payload=True
                )
            elif dense is not None:
                response = self.client.query_points(
                    version, query=dense, using=DENSE, query_filter=native_filter, limit=limit, with_payload=True
                )
            else:
                return []
        return [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in response.points]

    def close(self) -> None:
        self.client.close()
