"""The vector index: a float32 matrix of unit vectors, exact top-k by one matrix product.

The index remembers which embedding model made its vectors, and refuses a query embedded by
another model: cosine similarity between two models' vectors is a number, but a meaningless one.

>>> index = build_index(chunks, backend)                          # doctest: +SKIP
>>> hits = index.search(backend.embed(["What does a reranker do?"]), k=5)   # doctest: +SKIP
>>> hits[0].chunk.title, round(hits[0].score, 3)                  # doctest: +SKIP
('Reranking', 0.612)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .cache import EmbeddingCache
from .errors import EmbeddingModelMismatch
from .index_files import load_index, save_index
from .types import Backend, Chunk, Embeddings, Hit
from .vectors import normalize, top_k

__all__ = ["VectorIndex", "build_index", "embedding_text", "hits_frame", "similarities"]


def hits_frame(hits: Sequence[Hit]):
    """Return hits as a pandas DataFrame (rank, score, title, chunk id, text), for notebooks."""
    import pandas as pd

    return pd.DataFrame([{"rank": h.rank, "score": round(h.score, 4), "source": h.chunk.label,
                          "chunk": h.chunk.id, "text": h.chunk.text}
                         for h in hits])


# Below this many multiply-adds, a product runs in numpy's own single-threaded loop instead of BLAS.
# BLAS splits even one query over its threads, and on a busy machine waking them costs more than the
# product: one query over 5,183 vectors every 10 ms took p50 6 ms that way against 0.5 ms in one
# thread, on 2 shared cores (a query over 100,000 vectors is past the limit and keeps the threads).
SMALL_PRODUCT = 1 << 24


def similarities(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Return queries @ vectors.T (queries x n): the dot products, i.e. cosines of unit vectors.

    >>> similarities(np.array([[1.0, 0.0]], dtype=np.float32), np.eye(2, dtype=np.float32))
    array([[1., 0.]], dtype=float32)
    """
    if queries.shape[0] * vectors.size <= SMALL_PRODUCT:
        return np.einsum("qd,nd->qn", queries, vectors)
    return queries @ vectors.T


def embedding_text(chunk: Chunk) -> str:
    """Return what gets embedded for a chunk: its title and section above its text."""
    return f"{chunk.label}\n{chunk.prose()}"


@dataclass
class VectorIndex:
    """Chunks and their unit vectors (`vectors[i]` belongs to `chunks[i]`), from one model."""

    vectors: np.ndarray
    chunks: list[Chunk]
    model: str

    def __post_init__(self) -> None:
        self.vectors = normalize(self.vectors)
        if len(self.chunks) != self.vectors.shape[0]:
            raise ValueError(f"{len(self.chunks)} chunks but {self.vectors.shape[0]} vectors")

    def __len__(self) -> int:
        return len(self.chunks)

    def __repr__(self) -> str:
        return f"VectorIndex({len(self)} chunks, model={self.model!r}, dim={self.dim})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def check_query(self, query: Embeddings) -> np.ndarray:
        """Return the query vectors if they come from this index's model, else raise."""
        if not isinstance(query, Embeddings):
            raise TypeError("pass the query as backend.embed([question]) (an Embeddings), so the index "
                            "can check which model made it; for raw arrays use search_vectors()")
        if query.model != self.model or query.dim != self.dim:
            raise EmbeddingModelMismatch(
                f"index built with {self.model!r} ({self.dim}-d), query embedded with {query.model!r} "
                f"({query.dim}-d); rebuild the index with {query.model!r} or query with {self.model!r}")
        return query.vectors

    def search(self, query: Embeddings, k: int = 10) -> list[Hit]:
        """Return the k chunks most similar to the (first) query vector, best first."""
        self.check_query(query)
        return self.search_all(query.first(), k)[0]

    def search_all(self, queries: Embeddings, k: int = 10) -> list[list[Hit]]:
        """Return the top k hits for every query vector (one list per row), in one matrix product."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        indices, scores = self.search_vectors(self.check_query(queries), k)
        return [[Hit(self.chunks[i], float(s), r + 1) for r, (i, s) in enumerate(zip(row_i, row_s))]
                for row_i, row_s in zip(indices, scores)]

    def search_vectors(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Return (indices, scores), each (queries x k), for unit query vectors; no model check."""
        scores = similarities(np.atleast_2d(np.asarray(queries, dtype=np.float32)), self.vectors)
        indices = np.stack([top_k(row, k) for row in scores])
        return indices, np.take_along_axis(scores, indices, axis=1)

    def save(self, path: str | Path) -> Path:
        """Write the index to a folder (vectors.npy, chunks.jsonl, index.json; no pickle), all or nothing:
        until the new files are complete the old index stays (`ragkit.index_files`). Return the folder."""
        return save_index(path, self.vectors, self.chunks, self.model)

    @classmethod
    def load(cls, path: str | Path) -> "VectorIndex":
        """Read an index written by `save`, checking every file; raise IndexFileError if damaged."""
        vectors, chunks, model = load_index(path)
        return cls(vectors, chunks, model)


def build_index(chunks: Sequence[Chunk], backend: Backend, cache: EmbeddingCache | None = None,
                batch_size: int = 64, progress: bool | Callable = True) -> VectorIndex:
    """Embed chunks (through the cache: nothing is embedded twice) and return their index."""
    chunks = list(chunks)
    if not chunks:
        raise ValueError("no chunks to index: the corpus is empty (check the paths you gave)")
    cache = EmbeddingCache() if cache is None else cache  # an empty cache is falsy: test for None
    result = cache.embed(backend, [embedding_text(c) for c in chunks], batch_size=batch_size,
                         progress=progress)
    return VectorIndex(result.vectors, chunks, result.model)
