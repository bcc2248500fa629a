"""On-disk caches: each text is embedded once, ever, by each backend; each (reranker, query, passage)
pair is scored once.

SQLite in WAL mode: every batch is committed atomically as soon as it is computed, so an interrupted
build keeps what it already paid for, and the next run computes only what is missing. A cache is
never worth a crash, nor a wrong answer:

- a corrupt file is set aside with a warning and a fresh one started;
- a file or folder that cannot be written is used read-only (or not at all), with one line saying so;
- a vector is keyed by where it came from (`Backend.origin`: the local models, or a server's URL) as
  well as its model and text, so another server's vectors are never served as the local model's;
- every vector read is checked (its checksum, finite values, unit length, the same dimension as the
  rest) and a bad one is embedded again, with one warning for the lot.

- `EmbeddingCache`: (origin, model, text) -> float32 unit vector, and `embed(backend, texts)` that fills it.
- `PairCache`: (reranker, query, passage) -> the reranker's per-pair numbers (`rerankers.cached`).
- `ChatCache`: (origin, model, prompt) -> what a chat model wrote at temperature 0 and the tokens it
  took (`techniques`: query rewrites, chunk contexts), so a measurement is paid for once.

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
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

import numpy as np

from . import config
from .errors import BackendError
from .files import set_aside
from .progress import progress_bar
from .types import Backend, Usage, check_texts

__all__ = ["CachedEmbeddings", "ChatCache", "EmbeddingCache", "PairCache", "backend_origin", "open_sqlite", "text_key"]

LEGACY_SAMPLE = 32  # vectors an older cache holds, re-embedded to check it before it is trusted


def open_sqlite(path: Path, schema: str, what: str) -> tuple[sqlite3.Connection | None, bool]:
    """Return (a connection to the SQLite file at `path`, whether it can be written).

    WAL mode, `schema` created if missing. A file SQLite cannot read is set aside (`files.set_aside`)
    with a warning naming `what` it held, and an empty one is started in its place. A file or folder
    that cannot be written is opened read-only (connection, False), or not at all (None, False) when
    there is nothing to read, with one warning.
    """
    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
        db.execute("PRAGMA quick_check").fetchone()
        return db

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _unwritable(path, what, f"its folder cannot be made: {exc.strerror or exc}")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return _unwritable(path, what, "permission denied")
    try:
        return connect(), True
    except sqlite3.OperationalError as exc:  # locked, disk full, not allowed: not damage
        return _unwritable(path, what, str(exc))
    except sqlite3.DatabaseError as exc:
        try:
            aside = set_aside(path, ("-wal", "-shm"))
        except OSError as move:
            warnings.warn(f"{what} cache {path} is unreadable ({exc}) and cannot be moved aside ({move}); "
                          f"going on without it", stacklevel=4)
            return None, False
        warnings.warn(f"{what} cache {path} is unreadable ({exc}); moved it to {aside} and started an empty "
                      f"cache: {'texts will be embedded' if what == 'embedding' else 'pairs will be scored'} "
                      f"again", stacklevel=4)
        return connect(), True


def _unwritable(path: Path, what: str, why: str) -> tuple[sqlite3.Connection | None, bool]:
    """Open a cache that cannot be written read-only, saying so once; (None, False) if nothing is there."""
    db = None
    # Read-only first; immutable if even that needs a file SQLite cannot make (-shm in a read-only folder).
    for mode in ("ro", "ro&immutable=1") if path.is_file() and os.access(path, os.R_OK) else ():
        try:
            db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode={mode}", uri=True, check_same_thread=False)
            db.execute("PRAGMA quick_check").fetchone()
            break
        except sqlite3.DatabaseError:
            db = None
    done = "using what it holds and saving nothing new" if db else "going on without it: nothing is saved"
    warnings.warn(f"{what} cache {path} cannot be written ({why}); {done}", stacklevel=5)
    return db, False


class _SQLiteCache:
    """What both caches share: one connection, a lock, and writes that fail without a traceback."""

    table = ""

    def _open(self, path: Path, schema: str, what: str) -> None:
        self.path, self.what = path, what
        self._lock = threading.Lock()
        self._db, self.writable = open_sqlite(path, schema, what)

    def _rows(self, sql: str, keys: list) -> list[tuple]:
        """Return the rows of `sql` (a SELECT ... WHERE key IN ({})) for the keys, 500 at a time."""
        rows: list[tuple] = []
        if self._db is None:
            return rows
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                try:
                    rows += self._db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
                except sqlite3.DatabaseError:  # no such table (an older ragkit's file), or damaged since
                    return rows  # opened: what is not read is a miss, embedded again
        return rows

    def _write(self, sql: str, rows: list[tuple]) -> None:
        """Run `sql` for the rows in one transaction; if the file cannot take them, say so once."""
        if not self.writable or not rows:
            return
        try:
            with self._lock, self._db:
                self._db.executemany(sql, rows)
        except sqlite3.DatabaseError as exc:  # disk full, permissions changed, locked too long, damaged
            self.writable = False
            warnings.warn(f"{self.what} cache {self.path} cannot be written ({exc}); going on without "
                          f"saving to it", stacklevel=4)

    def __len__(self) -> int:
        if self._db is None:
            return 0
        with self._lock:
            try:
                return self._db.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]
            except sqlite3.DatabaseError:
                return 0

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()


def backend_origin(backend) -> str:
    """Return where a backend's vectors come from (`Backend.origin`; for an object without one, its class).

    >>> class Mine: pass
    >>> backend_origin(Mine())
    'ragkit.cache.Mine'
    """
    return getattr(backend, "origin", None) or f"{type(backend).__module__}.{type(backend).__qualname__}"


def text_key(model: str, text: str, origin: str | None = None) -> str:
    """Return the cache key of `text` embedded by `model` at `origin` (sha256 of them; without an origin,
    the key an older ragkit used).

    >>> text_key("m", "t") != text_key("m", "t", "local") != text_key("m", "t", "http://host/v1")
    True
    """
    where = "" if origin is None else f"{origin}\x00"
    return hashlib.sha256(f"{where}{model}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _checksum(key: str, blob: bytes) -> bytes:
    return hashlib.sha256(key.encode() + blob).digest()[:8]


def row_problem(key: str, dim: int, blob: bytes, checksum: bytes | None) -> str | None:
    """Return what is wrong with a cached vector's row, or None: it must match its checksum (when it has
    one), be `dim` float32 numbers, finite, of unit length.

    >>> v = np.array([0.6, 0.8], dtype=np.float32).tobytes()
    >>> row_problem("k", 2, v, _checksum("k", v)), row_problem("k", 2, v, b"12345678"), row_problem("k", 3, v, None)
    (None, 'changed since it was written', 'the wrong length')
    """
    if checksum is not None and checksum != _checksum(key, blob):
        return "changed since it was written"
    if dim < 1 or len(blob) != 4 * dim:
        return "the wrong length"
    vector = np.frombuffer(blob, dtype=np.float32)
    if not np.isfinite(vector).all():
        return "not finite"
    if abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3:
        return "not of unit length"
    return None


@dataclass(frozen=True)
class CachedEmbeddings:
    """Vectors for every text asked for, and how many came from the cache vs the backend."""

    vectors: np.ndarray
    model: str
    cached: int
    embedded: int
    usage: Usage


# `vectors` is the table an older ragkit wrote (keyed by model and text only); it is read to migrate.
EMBEDDINGS_SCHEMA = ("CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, origin TEXT NOT NULL, "
                     "model TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, checksum BLOB NOT NULL)")


class EmbeddingCache(_SQLiteCache):
    """A SQLite file mapping (origin, model, text) to a float32 unit vector, each row checksummed."""

    table = "embeddings"

    def __init__(self, path: str | Path | None = None):
        self._open(Path(path) if path else config.settings().cache_dir / "embeddings.sqlite", EMBEDDINGS_SCHEMA,
                   "embedding")

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r}, {len(self)} vectors{'' if self.writable else ', read-only'})"

    def get(self, model: str, texts: Sequence[str], *, origin: str) -> list[np.ndarray | None]:
        """Return the cached vector of each text embedded by `model` at `origin`, or None where it is
        not cached or its row fails the checks (`row_problem`)."""
        found, _ = self._lookup(origin, model, list(texts))
        return [found.get(t) for t in texts]

    def _lookup(self, origin: str, model: str, texts: list[str]) -> tuple[dict[str, np.ndarray], Counter]:
        keys = {text_key(model, t, origin): t for t in texts}
        found: dict[str, np.ndarray] = {}
        problems: Counter = Counter()
        for key, dim, blob, checksum in self._rows(
                "SELECT key, dim, vector, checksum FROM embeddings WHERE key IN ({})", list(keys)):
            problem = row_problem(key, dim, blob, checksum)
            if problem:
                problems[problem] += 1
            else:
                found[keys[key]] = np.frombuffer(blob, dtype=np.float32)
        return found, problems

    def put(self, model: str, texts: Sequence[str], vectors: Sequence[np.ndarray], *, origin: str) -> None:
        """Store vectors for texts (embedded by `model` at `origin`) in one transaction."""
        rows = []
        for text, vector in zip(texts, vectors):
            key, blob = text_key(model, text, origin), np.ascontiguousarray(vector, np.float32).tobytes()
            rows.append((key, origin, model, int(vector.shape[0]), blob, _checksum(key, blob)))
        self._write("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?)", rows)

    def embed(self, backend: Backend, texts: Sequence[str], batch_size: int = 64,
              progress: bool | Callable = True) -> CachedEmbeddings:
        """Return vectors for all texts, embedding only those not cached yet, batch by batch.

        Each batch is written to the cache as soon as it comes back, so an error or an interrupt
        loses at most the batch in flight. A cached vector that fails its checks, or whose dimension
        is not the backend's, is embedded again (one warning says how many and why). `progress`
        shows a tqdm bar when there is work to do.
        """
        texts = check_texts(texts)
        fresh = _Fresh(self, backend, backend.embedding_model, backend_origin(backend), batch_size)
        unique = list(dict.fromkeys(texts))
        vectors, problems = self._lookup(fresh.origin, fresh.model, unique)
        vectors.update(self._migrate(fresh, [t for t in unique if t not in vectors]))
        fresh.run(vectors, [t for t in unique if t not in vectors], problems, progress)
        if problems:
            warnings.warn(f"{sum(problems.values())} cached vectors could not be used "
                          f"({', '.join(f'{n} {why}' for why, n in problems.items())}); embedded them again",
                          stacklevel=2)
        return CachedEmbeddings(np.vstack([vectors[t] for t in texts]).astype(np.float32), fresh.model,
                                cached=sum(1 for t in texts if t not in fresh.done), embedded=len(fresh.done),
                                usage=fresh.usage)

    def _migrate(self, fresh: "_Fresh", texts: list[str]) -> dict[str, np.ndarray]:
        """Return the vectors an older ragkit cached for these texts (keyed by model and text only, with
        no word of where they came from), once LEGACY_SAMPLE of them embedded again by the backend match;
        they are then stored under its origin. If any differs they came from elsewhere: all of that
        model's old vectors are dropped, with a warning.
        """
        keys = {text_key(fresh.model, t): t for t in texts}
        old = {keys[k]: np.frombuffer(b, dtype=np.float32) for k, d, b in self._rows(
            "SELECT key, dim, vector FROM vectors WHERE key IN ({})", list(keys)) if row_problem(k, d, b, None) is None}
        if not old:
            return {}
        sample = sorted(old)[:LEGACY_SAMPLE]
        same = [v.shape == old[t].shape and float(v @ old[t]) > 0.999 for t, v in zip(sample, fresh.embed(sample))]
        if all(same):
            self.put(fresh.model, list(old), list(old.values()), origin=fresh.origin)
            self._write("DELETE FROM vectors WHERE key = ?", [(text_key(fresh.model, t),) for t in old])
            return old
        self._write("DELETE FROM vectors WHERE model = ?", [(fresh.model,)])
        warnings.warn(f"{len(old)} vectors an older ragkit cached for {fresh.model!r} did not come from "
                      f"{fresh.origin} ({same.count(False)} of the {len(sample)} checked differ); they are not "
                      f"used and are embedded again", stacklevel=3)
        return {}


class _Fresh:
    """The texts one `embed` call sends to the backend: batch by batch, each checked and cached."""

    def __init__(self, cache: EmbeddingCache, backend: Backend, model: str, origin: str, batch_size: int):
        self.cache, self.backend, self.model, self.origin, self.batch_size = cache, backend, model, origin, batch_size
        self.done: set[str] = set()  # texts embedded now (not those embedded only to check old vectors)
        self.usage = Usage()

    def run(self, vectors: dict[str, np.ndarray], todo: list[str], problems: Counter,
            progress: bool | Callable) -> None:
        """Embed `todo` into `vectors`; cached vectors of a dimension the backend does not answer go too."""
        dims = Counter(v.shape[0] for v in vectors.values())
        dim = dims.most_common(1)[0][0] if dims else None
        todo += self._drop(vectors, lambda v: v.shape[0] != dim, problems)
        with progress_bar(progress, len(todo), "embedding") as advance:
            while todo:
                batch, todo = todo[: self.batch_size], todo[self.batch_size :]
                block = self.embed(batch)
                if dim is None or (block.shape[1] != dim and not self.done):
                    todo += self._drop(vectors, lambda v: v.shape[0] != block.shape[1], problems)
                    dim = block.shape[1]
                elif block.shape[1] != dim:
                    raise BackendError(f"{self.origin} answered {dim}-d vectors for one batch and "
                                       f"{block.shape[1]}-d for another: its model changed mid-way; embed again "
                                       f"when it answers steadily (the batches so far are cached)")
                self.cache.put(self.model, batch, block, origin=self.origin)
                vectors.update(zip(batch, block))
                self.done.update(batch)
                advance(len(batch))

    @staticmethod
    def _drop(vectors: dict[str, np.ndarray], wrong: Callable, problems: Counter) -> list[str]:
        gone = [t for t, v in vectors.items() if wrong(v)]
        for t in gone:
            del vectors[t]
        if gone:
            problems["of another dimension than the backend's"] += len(gone)
        return gone

    def embed(self, batch: list[str]) -> np.ndarray:
        """Return the backend's unit vectors for a batch, or raise if they are not vectors for it."""
        result = self.backend.embed(batch)
        if result.model != self.model:  # the server used another model than asked: do not mix
            raise ValueError(f"asked {self.model!r} for embeddings but the backend answered with "
                             f"{result.model!r}; set RAGKIT_EMBEDDING_MODEL={result.model}")
        block = np.asarray(result.vectors, dtype=np.float32)
        norms = np.linalg.norm(block, axis=1) if block.ndim == 2 else None
        if norms is None or block.shape[0] != len(batch) or not np.isfinite(norms).all() or not norms.all():
            raise BackendError(f"{self.origin} answered {block.shape} for {len(batch)} texts, not one finite, "
                               f"non-zero vector each; nothing of this batch was cached")
        self.usage = self.usage + result.usage
        return block / norms[:, None]


PAIRS_SCHEMA = "CREATE TABLE IF NOT EXISTS pairs (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"


class PairCache(_SQLiteCache):
    """A SQLite file mapping (model, query, passage) to a few float64 numbers a reranker computed.

    The key is the first 16 bytes of sha256(model, query, passage); a row is about 45 bytes on disk.
    A damaged file is set aside with a warning and a new one started.
    """

    table = "pairs"

    def __init__(self, path: str | Path | None = None):
        self._open(Path(path) if path else config.settings().cache_dir / "rerank-pairs.sqlite", PAIRS_SCHEMA,
                   "reranker")

    @staticmethod
    def key(model: str, query: str, passage: str) -> bytes:
        return hashlib.sha256(f"{model}\x00{query}\x00{passage}".encode("utf-8", "surrogatepass")).digest()[:16]

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """Return the cached values of the keys that are cached (and readable)."""
        rows = self._rows("SELECT key, value FROM pairs WHERE key IN ({})", list(keys))
        return {k: np.frombuffer(v, dtype=np.float64) for k, v in rows
                if len(v) % 8 == 0 and np.isfinite(np.frombuffer(v, dtype=np.float64)).all()}

    def put(self, items: dict[bytes, np.ndarray]) -> None:
        """Store values in one transaction."""
        self._write("INSERT OR REPLACE INTO pairs VALUES (?, ?)",
                    [(k, np.asarray(v, dtype=np.float64).tobytes()) for k, v in items.items()])


CHAT_SCHEMA = ("CREATE TABLE IF NOT EXISTS chats (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
               "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL) WITHOUT ROWID")


class ChatCache(_SQLiteCache):
    """A SQLite file mapping (origin, model, prompt) to the text a chat model wrote and its token counts.

    Only for calls at temperature 0, where the same prompt should give the same text: the first answer
    is kept and served again, so a measurement repeated is the same measurement. The key is sha256 of
    the three (`text_key`); the prompt is any string the caller builds (e.g. the messages as JSON).

    >>> import tempfile
    >>> cache = ChatCache(tempfile.mkdtemp() + "/chat.sqlite")
    >>> cache.put("local", "smollm2", "Say OK.", "OK", 12, 2)
    >>> cache.get("local", "smollm2", "Say OK."), cache.get("local", "other-model", "Say OK.")
    (('OK', 12, 2), None)
    """

    table = "chats"

    def __init__(self, path: str | Path | None = None):
        self._open(Path(path) if path else config.settings().cache_dir / "chats.sqlite", CHAT_SCHEMA, "chat")

    def get(self, origin: str, model: str, prompt: str) -> tuple[str, int, int] | None:
        """Return (text, prompt tokens, completion tokens) written for this prompt, or None."""
        rows = self._rows("SELECT text, prompt_tokens, completion_tokens FROM chats WHERE key IN ({})",
                          [text_key(model, prompt, origin)])
        return (rows[0][0], int(rows[0][1]), int(rows[0][2])) if rows else None

    def put(self, origin: str, model: str, prompt: str, text: str, prompt_tokens: int = 0,
            completion_tokens: int = 0) -> None:
        """Store what the model wrote for this prompt (committed at once)."""
        self._write("INSERT OR REPLACE INTO chats VALUES (?, ?, ?, ?)",
                    [(text_key(model, prompt, origin), text, int(prompt_tokens), int(completion_tokens))])
