"""The in-memory store: a `VectorIndex` that upserts, deletes and filters, saved to a folder.

>>> store = MemoryStore(".ragkit/index")       # loads the folder's index, if there is one  # doctest: +SKIP

A folder that holds an index that cannot be read (damaged, or half there: index files without
index.json) is refused with `IndexFileError`, never taken for an empty one; `load=False` starts
empty whatever the folder holds (what `ragkit index` does, since it writes the whole index anew).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dates import DateRange
from ..errors import IndexFileError
from ..index import VectorIndex
from ..index_files import folder_state, remove_index
from ..types import Chunk, Embeddings, Hit
from ..vectors import top_k
from .base import StoreBase, check_model, check_where, dedupe

__all__ = ["MemoryStore"]


class MemoryStore(StoreBase):
    """The in-memory exact index (a `VectorIndex`), written to `path` by `save()` or `close()`."""

    def __init__(self, path: str | Path | None = None, index: VectorIndex | None = None, *, load: bool = True):
        self.path = Path(path) if path is not None else None
        self.index = index
        self._columns: dict[str, np.ndarray] = {}  # chunk fields as arrays, for filters (of _columns_of)
        self._columns_of: VectorIndex | None = None
        if self.path is not None and self.path.exists() and not self.path.is_dir():
            raise IndexFileError(f"{self.path} is a file, not an index folder")
        if index is None and load and self.path is not None and folder_state(self.path) in ("index", "partial"):
            self.index = VectorIndex.load(self.path)

    def __repr__(self) -> str:
        return f"MemoryStore({str(self.path) if self.path else None!r}, {len(self)} chunks, model={self.model!r})"

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

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

    def _column(self, name: str) -> np.ndarray:
        """Return one field of every chunk as a numpy array of strings, kept until the chunks change."""
        if self._columns_of is not self.index:
            self._columns, self._columns_of = {}, self.index
        if name not in self._columns:
            self._columns[name] = np.array([getattr(c, name) for c in self.chunks], dtype=str)
        return self._columns[name]

    def _mask(self, where: dict[str, list[str] | DateRange]) -> np.ndarray:
        mask = np.ones(len(self), dtype=bool)
        for name, values in where.items():
            column = self._column(name)
            mask &= values.mask(column) if isinstance(values, DateRange) else np.isin(column, values)
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
        vectors, q = self.index.vectors, np.atleast_2d(self.index.check_query(queries))
        # a few rows: score only those; many: score all (no copy of the matrix) and keep those
        scores = q @ vectors[rows].T if 4 * len(rows) < len(vectors) else (q @ vectors.T)[:, rows]
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
            remove_index(self.path)
            return self.path
        return self.index.save(self.path)

    def close(self) -> None:
        self.save()
