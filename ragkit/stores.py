"""Where an index lives: in memory (saved to a folder), in PostgreSQL + pgvector, or in Milvus.

Every store answers the same calls, so `ragkit.ask(question, store, backend)` works on any of them:

- `upsert(chunks, embeddings)`: add chunks with their vectors, replacing any with the same chunk id
  (so writing the same chunks twice, or again after an interruption, never duplicates them)
- `delete(where)`: remove chunks by metadata, e.g. `{"doc_id": "faq"}` (a whole source document)
- `search(query, k, where=None)` / `search_all(...)`: the k nearest chunks as `Hit`s, optionally
  only among chunks matching `where`, e.g. `{"source": ["a.md", "b.md"]}`
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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from .backends import Backend, Embeddings
from .cache import EmbeddingCache, progress_bar
from .chunking import Chunk
from .index import EmbeddingModelMismatch, Hit, VectorIndex, embedding_text, normalize, top_k

# Metadata a `where` filter may name: each maps to a list of allowed values (any of them matches).
FILTER_FIELDS = ("id", "doc_id", "source", "title", "section")


class StoreError(RuntimeError):
    """The database refused an operation (its own message says why)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, wrong URL, wrong credentials)."""


class Store(Protocol):
    """What every store does; `MemoryStore`, `PostgresStore` and `MilvusStore` all do it."""

    model: str | None  # the embedding model of the stored vectors (None while empty)
    dim: int | None

    def __len__(self) -> int: ...
    def upsert(self, chunks: Sequence[Chunk], embeddings: Embeddings, *, batch_size: int = 500,
               progress: bool | Callable = False) -> int: ...
    def delete(self, where: dict) -> int: ...
    def search(self, query: Embeddings, k: int = 10, where: dict | None = None) -> list[Hit]: ...
    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]: ...
    def ids(self) -> set[str]: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


def redact(url: str) -> str:
    """Return a URL safe to print: no password, in the netloc or in the query.

    >>> redact("postgresql://alice:s3cret@db.example:5432/rag?sslmode=require&password=x")
    'postgresql://alice@db.example:5432/rag?sslmode=require&password=***'
    """
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, "***" if k.lower() in {"password", "token"} else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check_where(where: dict | None) -> dict[str, list[str]]:
    """Return a filter as {field: [allowed values]}, or raise for a field a store cannot filter on.

    >>> check_where({"doc_id": "faq", "source": ["a.md", "b.md"]})
    {'doc_id': ['faq'], 'source': ['a.md', 'b.md']}
    """
    if not where:
        return {}
    out = {}
    for name, value in where.items():
        if name not in FILTER_FIELDS:
            raise ValueError(f"cannot filter on {name!r}; filter on one of {', '.join(FILTER_FIELDS)}")
        values = [value] if isinstance(value, str) else list(value)
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"filter values for {name!r} must be strings, got {values!r}")
        out[name] = values
    return out


def check_model(where: str, model: str | None, dim: int | None, other: Embeddings, what: str) -> np.ndarray:
    """Return `other`'s vectors (unit length) if they come from the store's model, else raise."""
    if not isinstance(other, Embeddings):
        raise TypeError(f"pass {what} as an Embeddings (backend.embed([...])), so the store can check "
                        f"which model made them")
    if model is not None and (other.model != model or other.dim != dim):
        raise EmbeddingModelMismatch(
            f"{where} holds vectors from {model!r} ({dim}-d), {what} come from {other.model!r} "
            f"({other.dim}-d); use {model!r}, or another store (or clear this one) for {other.model!r}")
    return normalize(other.vectors)


CHUNK_FIELDS = ("id", "doc_id", "title", "text", "position", "start", "end", "section", "source", "n_tokens")


def chunk_rows(chunks: Iterable[Chunk]) -> list[tuple]:
    """Return each chunk's fields as a tuple, in `CHUNK_FIELDS` order (how the databases store them)."""
    return [(c.id, c.doc_id, c.title, c.text, c.position, c.start, c.end, c.section, c.source, c.n_tokens)
            for c in chunks]


def dedupe(chunks: Sequence[Chunk], vectors: np.ndarray) -> tuple[list[Chunk], np.ndarray]:
    """Return chunks (and their vectors) with one row per chunk id, the last one winning."""
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors: give one vector per chunk")
    last = {c.id: i for i, c in enumerate(chunks)}
    if len(last) == len(chunks):
        return list(chunks), vectors
    keep = sorted(last.values())
    return [chunks[i] for i in keep], vectors[keep]


def batches(n: int, size: int, progress: bool | Callable, desc: str):
    """Yield (start, stop) slices of range(n), ticking a progress bar per batch."""
    bar = progress_bar(progress, n, desc)
    try:
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield start, stop
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()


class MemoryStore:
    """The in-memory exact index (a `VectorIndex`), written to `path` by `save()` or `close()`."""

    def __init__(self, path: str | Path | None = None, index: VectorIndex | None = None):
        self.path = Path(path) if path is not None else None
        self.index = index
        if index is None and self.path is not None and (self.path / "index.json").exists():
            self.index = VectorIndex.load(self.path)

    def __repr__(self) -> str:
        return f"MemoryStore({str(self.path) if self.path else None!r}, {len(self)} chunks, model={self.model!r})"

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def model(self) -> str | None:
        return None if self.index is None else self.index.model

    @property
    def dim(self) -> int | None:
        return None if self.index is None else self.index.dim

    @property
    def chunks(self) -> list[Chunk]:
        return [] if self.index is None else self.index.chunks

    def upsert(self, chunks, embeddings, *, batch_size=500, progress=False) -> int:
        """Add chunks with their vectors, replacing those with the same id; return how many."""
        vectors = check_model(f"the index at {self.path or 'memory'}", self.model, self.dim, embeddings,
                              "these vectors")
        chunks, vectors = dedupe(list(chunks), vectors)
        if self.index is None:
            self.index = VectorIndex(vectors, chunks, embeddings.model)
            return len(chunks)
        position = {c.id: i for i, c in enumerate(self.index.chunks)}
        old = np.array([position.get(c.id, -1) for c in chunks], dtype=np.int64)  # -1: a new chunk
        all_vectors, all_chunks = self.index.vectors.copy(), list(self.index.chunks)
        all_vectors[old[old >= 0]] = vectors[old >= 0]
        for i in np.flatnonzero(old >= 0):
            all_chunks[old[i]] = chunks[i]
        new = np.flatnonzero(old < 0)
        self.index = VectorIndex(np.vstack([all_vectors, vectors[new]]),
                                 all_chunks + [chunks[i] for i in new], self.index.model)
        return len(chunks)

    def _mask(self, where: dict[str, list[str]]) -> np.ndarray:
        mask = np.ones(len(self), dtype=bool)
        for name, values in where.items():
            mask &= np.isin(np.array([getattr(c, name) for c in self.chunks], dtype=object), values)
        return mask

    def delete(self, where: dict) -> int:
        """Remove the chunks matching `where` (e.g. {"doc_id": "faq"}); return how many."""
        where = check_where(where)
        if not where:
            raise ValueError("delete needs a filter, e.g. {'doc_id': 'faq'}; use clear() to empty the store")
        if self.index is None:
            return 0
        gone = self._mask(where)
        if gone.all():
            self.index = None
        elif gone.any():
            self.index = VectorIndex(self.index.vectors[~gone], [c for c, g in zip(self.chunks, gone) if not g],
                                     self.index.model)
        return int(gone.sum())

    def search(self, query: Embeddings, k: int = 10, where: dict | None = None) -> list[Hit]:
        """Return the k chunks most similar to the (first) query vector, best first."""
        return self.search_all(Embeddings(query.vectors[:1], query.model, query.usage), k, where)[0]

    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """Return the top k hits for every query vector, exactly, among chunks matching `where`."""
        where = check_where(where)
        if self.index is None:
            check_model("the store", None, None, queries, "the query vectors")
            return [[] for _ in range(len(queries.vectors))]
        if not where:
            return self.index.search_all(queries, k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        rows = np.flatnonzero(self._mask(where))
        scores = np.atleast_2d(self.index.check_query(queries)) @ self.index.vectors[rows].T
        out = []
        for row in scores:
            best = top_k(row, k)
            out.append([Hit(self.chunks[rows[i]], float(row[i]), r + 1) for r, i in enumerate(best)])
        return out

    def ids(self) -> set[str]:
        return {c.id for c in self.chunks}

    def clear(self) -> None:
        """Remove every chunk (and forget the model)."""
        self.index = None

    def save(self) -> Path | None:
        """Write the index to `path` (vectors.npy, chunks.jsonl, index.json); return the folder.

        An empty store removes those files, so that opening the folder again finds it empty too.
        """
        if self.path is None:
            return None
        if self.index is None:
            for name in ("index.json", "vectors.npy", "chunks.jsonl"):
                (self.path / name).unlink(missing_ok=True)
            return self.path
        return self.index.save(self.path)

    def close(self) -> None:
        self.save()


def default_store() -> str:
    """Return `$RAGKIT_STORE`, else `$RAGKIT_INDEX`, else `.ragkit/index` (a folder)."""
    return os.environ.get("RAGKIT_STORE") or os.environ.get("RAGKIT_INDEX") or str(Path(".ragkit") / "index")


def open_store(spec: str | Path | None = None, **options) -> Store:
    """Return the store a string names (default `$RAGKIT_STORE`); `options` go to its class.

    - a folder path: the in-memory exact index, loaded from / saved to that folder
    - `postgresql://user:password@host:5432/db` (or `postgres://`): PostgreSQL with pgvector
    - `milvus://path/to/file.db`: Milvus Lite in a local file (exact search); `http(s)://host:19530`: a Milvus server

    A store that is already open is returned as it is.
    """
    if spec is not None and not isinstance(spec, (str, Path)):
        return spec
    spec = str(default_store() if spec is None else spec)
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme not in ("", "postgresql", "postgres", "milvus", "http", "https"):
        raise ValueError(f"unknown store {redact(spec)!r}: use a folder path, postgresql://..., "
                         f"milvus://file.db or http://milvus-host:19530")
    if not scheme:
        return MemoryStore(spec, **options)
    extra = "postgres" if scheme.startswith("postgres") else "milvus"
    try:
        if extra == "postgres":
            from .postgres import PostgresStore

            return PostgresStore(spec, **options)
        from .milvus import MilvusStore
    except ImportError as exc:
        raise StoreError(f"{redact(spec)} needs ragkit's {extra} extra ({exc.name} is missing): "
                         f"pip install 'ragkit[{extra}]'") from None
    if scheme == "milvus":
        path = spec.split("://", 1)[1]
        return MilvusStore(path if path.endswith(".db") else f"{path}.db", **options)
    return MilvusStore(spec, **options)


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


__all__ = ["FILTER_FIELDS", "MemoryStore", "Store", "StoreError", "StoreUnavailable", "SyncResult", "check_where",
           "default_store", "describe", "open_store", "redact", "sync", "write_index"]

