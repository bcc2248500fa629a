"""What every store shares: metadata filters, the model check, rows for a database, batches.

Each store (`memory`, `postgres`, `milvus`) builds on these, and on `StoreBase` for what does not
depend on the database (one query's search is the first row of a search of several).
"""
from __future__ import annotations

from operator import attrgetter
from typing import Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ..dates import DateRange, as_range
from ..errors import EmbeddingModelMismatch
from ..progress import progress_bar
from ..types import Chunk, Embeddings, Hit
from ..vectors import normalize

__all__ = ["CHUNK_FIELDS", "FILTER_FIELDS", "StoreBase", "batches", "check_model", "check_where", "chunk_rows",
           "dedupe", "reason", "redact"]

# Metadata a `where` filter may name: each maps to a list of allowed values (any of them matches),
# and "date" to a period or a range of days (`ragkit.dates.as_range`).
FILTER_FIELDS = ("id", "doc_id", "source", "title", "section", "date")



class StoreBase:
    """What every store does the same way: `search` of one query, and `with store:` closing it."""

    def search(self, query: Embeddings, k: int = 10, where: dict | None = None) -> list[Hit]:
        """Return the k chunks most similar to the (first) query vector, best first."""
        return self.search_all(query.first(), k, where)[0]

    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def reason(exc: Exception, url: str = "") -> str:
    """Return the first line of a database driver's error (its `message`, else its text), with the
    password of `url` (if it has one) taken out.

    >>> reason(RuntimeError("auth failed for pw s3cret\\nDETAIL: ..."), "postgresql://me:s3cret@db/rag")
    'auth failed for pw ***'
    """
    line = ((getattr(exc, "message", None) or str(exc)).strip().splitlines() or [type(exc).__name__])[0]
    password = urlsplit(url).password if url else None
    return line.replace(password, "***") if password else line


def check_where(where: dict | None) -> dict[str, list[str] | DateRange]:
    """Return a filter as {field: [allowed values]} (and "date": a `DateRange`), or raise for a field
    a store cannot filter on. Every condition must hold; a chunk without a date matches no date filter.

    >>> check_where({"doc_id": "faq", "source": ["a.md", "b.md"]})
    {'doc_id': ['faq'], 'source': ['a.md', 'b.md']}
    >>> check_where({"date": {"from": "2024-03", "to": "2024"}})
    {'date': DateRange(low='2024-03-01', high='2024-12-31')}
    """
    if not where:
        return {}
    if not isinstance(where, dict):
        raise TypeError(f"where= is a dict of field: values, e.g. {{'source': ['a.md']}}, not {type(where).__name__}")
    out = {}
    for name, value in where.items():
        if name not in FILTER_FIELDS:
            raise ValueError(f"cannot filter on {name!r}; filter on one of {', '.join(FILTER_FIELDS)}")
        if name == "date":
            out[name] = as_range(value)
            continue
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


CHUNK_FIELDS = ("id", "doc_id", "title", "text", "position", "start", "end", "section", "source", "n_tokens",
                "page", "date")


def chunk_rows(chunks: Iterable[Chunk]) -> list[tuple]:
    """Return each chunk's fields as a tuple, in `CHUNK_FIELDS` order (how the databases store them)."""
    return list(map(attrgetter(*CHUNK_FIELDS), chunks))


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
    with progress_bar(progress, n, desc) as advance:
        for start in range(0, n, size):
            stop = min(start + size, n)
            yield start, stop
            advance(stop - start)
