"""On-disk caches: each (model, text) pair is embedded once, ever; each (reranker, query, passage)
pair is scored once.

SQLite in WAL mode: every batch is committed atomically as soon as it is computed, so an interrupted
build keeps what it already paid for, and the next run computes only what is missing. A corrupt cache
file is set aside with a warning and a fresh one started: a cache is never worth a crash.

- `EmbeddingCache`: (model, text) -> float32 vector, and `embed(backend, texts)` that fills it.
- `PairCache`: (reranker, query, passage) -> the reranker's per-pair numbers (`rerankers.cached`).

>>> cache = EmbeddingCache(tmp_path / "emb.sqlite")               # doctest: +SKIP
>>> result = cache.embed(backend, ["some text"])                    # doctest: +SKIP
>>> result.cached, result.embedded                                  # doctest: +SKIP
(0, 1)
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import config
from .files import set_aside
from .progress import progress_bar
from .types import Backend, Usage, check_texts

__all__ = ["CachedEmbeddings", "EmbeddingCache", "PairCache", "open_sqlite", "text_key"]


def open_sqlite(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """Return a connection to the SQLite file at `path` (WAL mode, `schema` created if missing).

    A file SQLite cannot read is set aside (`files.set_aside`) with a warning naming `what` it held,
    and an empty one is started in its place.
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(schema)
        db.execute("PRAGMA quick_check").fetchone()
        return db

    try:
        return connect()
    except sqlite3.DatabaseError as exc:
        aside = set_aside(path, ("-wal", "-shm"))
        warnings.warn(f"{what} cache {path} is unreadable ({exc}); moved it to {aside} and started an empty "
                      f"cache: {'texts will be embedded' if what == 'embedding' else 'pairs will be scored'} "
                      f"again", stacklevel=4)
        return connect()


def text_key(model: str, text: str) -> str:
    """Return the cache key of `text` embedded by `model` (sha256 of both)."""
    return hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CachedEmbeddings:
    """Vectors for every text asked for, and how many came from the cache vs the backend."""

    vectors: np.ndarray
    model: str
    cached: int
    embedded: int
    usage: Usage


class EmbeddingCache:
    """A SQLite file mapping (model, text) to a float32 vector."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else config.settings().cache_dir / "embeddings.sqlite"
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, model TEXT "
                                          "NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL)", "embedding")

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, {len(self)} vectors)"

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def get(self, model: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Return the cached vector of each text, or None where it is not cached (or unreadable)."""
        keys = [text_key(model, t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, dim, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})",
                    part).fetchall()
                for key, dim, blob in rows:
                    if len(blob) == 4 * dim:  # a damaged row is just a miss
                        found[key] = np.frombuffer(blob, dtype=np.float32)
        return [found.get(k) for k in keys]

    def put(self, model: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors for texts in one transaction."""
        rows = [(text_key(model, t), model, int(v.shape[0]), np.ascontiguousarray(v, np.float32).tobytes())
                for t, v in zip(texts, vectors)]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def embed(self, backend: Backend, texts: Sequence[str], batch_size: int = 64,
              progress: bool | Callable = True) -> CachedEmbeddings:
        """Return vectors for all texts, embedding only those not cached yet, batch by batch.

        Each batch is written to the cache as soon as it comes back, so an error or an interrupt
        loses at most the batch in flight. `progress` shows a tqdm bar when there is work to do.
        """
        texts = check_texts(texts)
        model = backend.embedding_model
        vectors = self.get(model, texts)
        missing_texts = list(dict.fromkeys(t for t, v in zip(texts, vectors) if v is None))
        usage = Usage()
        with progress_bar(progress, len(missing_texts), "embedding") as advance:
            for start in range(0, len(missing_texts), batch_size):
                batch = missing_texts[start : start + batch_size]
                result = backend.embed(batch)
                if result.model != model:  # the server used another model than asked: do not mix
                    raise ValueError(f"asked {model!r} for embeddings but the backend answered with "
                                     f"{result.model!r}; set RAGKIT_EMBEDDING_MODEL={result.model}")
                self.put(model, batch, result.vectors)
                usage = usage + result.usage
                advance(len(batch))
        if missing_texts:
            vectors = self.get(model, texts)
        was_missing = set(missing_texts)
        cached = sum(1 for t in texts if t not in was_missing)
        return CachedEmbeddings(np.vstack(vectors).astype(np.float32), model, cached=cached,
                                embedded=len(missing_texts), usage=usage)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PairCache:
    """A SQLite file mapping (model, query, passage) to a few float64 numbers a reranker computed.

    The key is the first 16 bytes of sha256(model, query, passage); a row is about 45 bytes on disk.
    A damaged file is set aside with a warning and a new one started.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else config.settings().cache_dir / "rerank-pairs.sqlite"
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, "CREATE TABLE IF NOT EXISTS pairs (key BLOB PRIMARY KEY, value BLOB "
                                          "NOT NULL) WITHOUT ROWID", "reranker")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]

    @staticmethod
    def key(model: str, query: str, passage: str) -> bytes:
        return hashlib.sha256(f"{model}\x00{query}\x00{passage}".encode("utf-8", "surrogatepass")).digest()[:16]

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Return the cached values of the keys that are cached."""
        found = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                rows = self._db.execute(f"SELECT key, value FROM pairs WHERE key IN ({','.join('?' * len(part))})",
                                        part).fetchall()
                found.update((k, np.frombuffer(v, dtype=np.float64)) for k, v in rows if len(v) % 8 == 0)
        return found

    def put(self, items: dict[bytes, np.ndarray]) -> None:
        """Store values in one transaction."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO pairs VALUES (?, ?)",
                                 [(k, np.asarray(v, dtype=np.float64).tobytes()) for k, v in items.items()])

    def close(self) -> None:
        with self._lock:
            self._db.close()
