"""Where an index lives: in memory (saved to a folder), in PostgreSQL + pgvector, or in Milvus.

Every store answers the same calls, so `ragkit.ask(question, store, backend)` works on any of them:

- `upsert(chunks, embeddings)`: add chunks with their vectors, replacing any with the same chunk id
  (so writing the same chunks twice, or again after an interruption, never duplicates them)
- `delete(where)`: remove chunks by metadata, e.g. `{"doc_id": "faq"}` (a whole source document)
- `search(query, k, where=None)` / `search_all(...)`: the k nearest chunks as `Hit`s, optionally
  only among chunks matching `where`, e.g. `{"source": ["a.md", "b.md"]}` or, by the documents'
  dates, `{"date": "2024"}` and `{"date": {"from": "2024-03", "to": "2024-06-15"}}` (`check_where`)
- `len(store)`, `store.model`, `store.dim`: the store remembers which embedding model made its
  vectors and refuses vectors or queries from another, like `VectorIndex` does.

Pick one with a string, as `RAGKIT_STORE` and `ragkit --store` do:

>>> store = open_store(".ragkit/index")                      # a folder: the in-memory index  # doctest: +SKIP
>>> store = open_store("postgresql://me@db.example/rag")     # PostgreSQL with pgvector     # doctest: +SKIP
>>> store = open_store("milvus://rag.db")                    # Milvus Lite, a local file    # doctest: +SKIP
>>> store = open_store("http://milvus.example:19530")        # a Milvus server or cluster   # doctest: +SKIP
>>> sync(store, chunks, backend)          # embed (through the cache) and write, in batches  # doctest: +SKIP
>>> ragkit.ask("What does a reranker do?", store, backend)                                 # doctest: +SKIP
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import config
from ..cache import EmbeddingCache
from ..errors import ConfigError, StoreError, StoreUnavailable
from ..index import VectorIndex, embedding_text
from ..index_files import folder_state
from ..types import Backend, Chunk, Embeddings, Store
from .base import FILTER_FIELDS, check_where, redact
from .memory import MemoryStore
from .milvus import MilvusStore
from .postgres import PostgresStore

def default_store() -> str:
    """Return `$RAGKIT_STORE`, else `$RAGKIT_INDEX`, else `.ragkit/index` (a folder)."""
    return config.settings().store_spec


def open_store(spec: str | Path | None = None, *, existing: bool = False, **options) -> Store:
    """Return the store a string names (default `$RAGKIT_STORE`, else `$RAGKIT_INDEX`); `options` go to its class.

    - a folder path: the in-memory exact index, loaded from / saved to that folder
    - `postgresql://user:password@host:5432/db` (or `postgres://`): PostgreSQL with pgvector
    - `milvus://path/to/file.db`: Milvus Lite in a local file (exact search); `http(s)://host:19530`: a Milvus server

    `existing=True` (what `RAGKIT_STORE` and `--store` get, since they name databases) accepts a folder
    only if it holds an index: anything else is a `ConfigError` naming the fix. A store that is
    already open is returned as it is.

    >>> open_store("garbage", existing=True)
    Traceback (most recent call last):
    ragkit.errors.ConfigError: the store 'garbage' (--store or RAGKIT_STORE) is neither a database URL (postgresql://..., milvus://file.db, http://host:19530) nor a folder holding an index; for a new index in a folder use --index garbage or RAGKIT_INDEX=garbage, e.g. ragkit index YOUR_DOCS --index garbage
    """
    if spec is not None and not isinstance(spec, (str, Path)):
        return spec
    if spec is None:
        s = config.settings()
        spec, existing = (s.store, True) if s.store else (s.index, existing)
    spec = str(spec)
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme not in ("", "postgresql", "postgres", "milvus", "http", "https"):
        raise ConfigError(f"unknown store {redact(spec)!r}: use a folder path, postgresql://..., "
                          f"milvus://file.db or http://milvus-host:19530")
    if not scheme:
        if existing and folder_state(spec) != "index":
            quoted = shlex.quote(spec)
            raise ConfigError(f"the store {spec!r} (--store or RAGKIT_STORE) is neither a database URL "
                              f"(postgresql://..., milvus://file.db, http://host:19530) nor a folder holding an "
                              f"index; for a new index in a folder use --index {quoted} or RAGKIT_INDEX={quoted}, "
                              f"e.g. ragkit index YOUR_DOCS --index {quoted}")
        return MemoryStore(spec, **options)
    extra = "postgres" if scheme.startswith("postgres") else "milvus"
    try:  # each store imports its database's client when it is made
        if extra == "postgres":
            return PostgresStore(spec, **options)
        if scheme == "milvus":
            path = spec.split("://", 1)[1]
            return MilvusStore(path if path.endswith(".db") else f"{path}.db", **options)
        return MilvusStore(spec, **options)
    except ImportError as exc:
        raise StoreError(f"{redact(spec)} needs ragkit's {extra} extra ({exc.name} is missing): "
                         f"pip install 'ragkit[{extra}]'") from None


def describe(store) -> str:
    """Return where a store lives, for messages (never with a password)."""
    return redact(getattr(store, "url", None) or str(getattr(store, "path", None) or "memory"))


@dataclass(frozen=True)
class SyncResult:
    """What `sync` did: chunks written, of which embedded now vs found in the cache, stale ones removed."""

    written: int
    embedded: int
    cached: int
    removed: int


def sync(store: Store, chunks: Sequence[Chunk], backend: Backend | None = None,
         cache: EmbeddingCache | None = None, *, vectors: Embeddings | None = None, prune: bool = True,
         batch_size: int = 500, progress: bool | Callable = True) -> SyncResult:
    """Make the store hold these chunks: embed them through the cache, upsert in batches, prune the rest.

    Pass `vectors` (e.g. an index's) instead of a backend to move an index without embedding anything.
    Safe to run again after an interruption: upserts are keyed by chunk id, and the cache keeps what
    was already embedded. `prune=False` keeps chunks that are not in `chunks` (adding documents).
    A `MemoryStore` with `prune=True` is simply rebuilt (and saved to its folder, if it has one).
    """
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no chunks to store: the corpus is empty (check the paths you gave)")
    embedded = 0
    if vectors is None:
        if backend is None:
            raise TypeError("sync needs a backend to embed the chunks, or their vectors=")
        cache = EmbeddingCache() if cache is None else cache  # an empty cache is falsy: test for None
        result = cache.embed(backend, [embedding_text(c) for c in chunks], progress=progress)
        vectors, embedded = Embeddings(result.vectors, result.model), result.embedded
    removed = 0
    if prune and isinstance(store, MemoryStore):
        removed = len(store.ids() - {c.id for c in chunks})
        store.clear()
    written = store.upsert(chunks, vectors, batch_size=batch_size, progress=progress)
    if prune and not isinstance(store, MemoryStore):
        stale = sorted(store.ids() - {c.id for c in chunks})
        for start in range(0, len(stale), 1000):
            removed += store.delete({"id": stale[start : start + 1000]})
    if isinstance(store, MemoryStore):
        store.save()
    return SyncResult(written, embedded, len(chunks) - embedded, removed)


def write_index(store: Store, index: VectorIndex, *, prune: bool = True, batch_size: int = 500,
                progress: bool | Callable = False) -> SyncResult:
    """Copy an in-memory index into a store (no embedding call: its vectors move as they are)."""
    return sync(store, index.chunks, vectors=Embeddings(index.vectors, index.model), prune=prune,
                batch_size=batch_size, progress=progress)


__all__ = ["FILTER_FIELDS", "MemoryStore", "MilvusStore", "PostgresStore", "Store", "StoreError",
           "StoreUnavailable", "SyncResult", "check_where", "default_store", "describe", "open_store", "redact",
           "sync", "write_index"]
