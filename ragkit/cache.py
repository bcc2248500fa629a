"""An on-disk embedding cache: each (model, text) pair is embedded once, ever.

SQLite in WAL mode: every batch is committed atomically as soon as it is embedded, so an interrupted
build keeps what it already paid for, and the next run embeds only what is missing. A corrupt cache
file is set aside with a warning and a fresh one started: a cache is never worth a crash.

>>> cache = EmbeddingCache(tmp_path / "emb.sqlite")               # doctest: +SKIP
>>> result = cache.embed(backend, ["some text"])                    # doctest: +SKIP
>>> result.cached, result.embedded                                  # doctest: +SKIP
(0, 1)
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .backends import Backend, Usage, check_texts


def default_cache_dir() -> Path:
    """Return `$RAGKIT_CACHE_DIR`, or `~/.cache/ragkit`."""
    return Path(os.environ.get("RAGKIT_CACHE_DIR") or Path.home() / ".cache" / "ragkit")


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
        self.path = Path(path) if path else default_cache_dir() / "embeddings.sqlite"
        self._lock = threading.Lock()
        self._db = self._open()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, {len(self)} vectors)"

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            warnings.warn(f"embedding cache {self.path} is unreadable ({exc}); moved it to {aside} "
                          f"and started an empty cache: texts will be embedded again", stacklevel=3)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                   "dim INTEGER NOT NULL, vector BLOB NOT NULL)")
        db.execute("PRAGMA quick_check").fetchone()
        return db

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
        bar = progress_bar(progress, len(missing_texts), "embedding")
        try:
            for start in range(0, len(missing_texts), batch_size):
                batch = missing_texts[start : start + batch_size]
                result = backend.embed(batch)
                if result.model != model:  # the server used another model than asked: do not mix
                    raise ValueError(f"asked {model!r} for embeddings but the backend answered with "
                                     f"{result.model!r}; set RAGKIT_EMBEDDING_MODEL={result.model}")
                self.put(model, batch, result.vectors)
                usage = usage + result.usage
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        if missing_texts:
            vectors = self.get(model, texts)
        was_missing = set(missing_texts)
        cached = sum(1 for t in texts if t not in was_missing)
        return CachedEmbeddings(np.vstack(vectors).astype(np.float32), model, cached=cached,
                                embedded=len(missing_texts), usage=usage)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def progress_bar(progress: bool | Callable, total: int | None, desc: str, unit: str = "chunk", **options):
    """Return a tqdm bar (or what a callable `progress(total=...)` makes), or None: off, or nothing to do.

    >>> progress_bar(False, 10, "embedding") is None and progress_bar(True, 0, "embedding") is None
    True
    """
    if not progress or total == 0:
        return None
    if callable(progress):
        return progress(total=total)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, **options)
