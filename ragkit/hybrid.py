"""Hybrid retrieval: fuse the rankings of several retrievers (e.g. dense and BM25) into one.

Dense retrieval and BM25 fail on different queries (meaning vs exact words), so a passage near the
top of both is a safer bet than the top of either. Their scores are not comparable (a cosine is at
most 1, a BM25 score has no upper bound), so fusion first puts them on one footing:

- `score_fusion` (normalised score fusion, ragkit's hybrid): each retriever's scores for a query are
  min-max scaled over its own top list (its best passage 1, its last 0), then averaged with equal
  weights; a passage missing from a list gets 0 from it. Score *gaps* survive: a retriever that is
  sure (one passage far ahead) counts for more than one that is not.
- `rrf` (reciprocal rank fusion, Cormack, Clarke & Buettcher, SIGIR 2009): a passage scores
  sum(1 / (k + rank)) over the lists it is in, with k = 60 from that paper. Only ranks count, so it
  needs no scaling at all, but it cannot tell a clear winner from a coin toss.

Nothing here is trained. Measured on SciFact (dense all-MiniLM-L6-v2 + BM25, top-100 lists, nDCG@10):
score fusion 0.731 on the train split and 0.728 on test; RRF (k=60) 0.715 and 0.715; on the workbook's
Python-reference questions score fusion beats dense alone. `benchmarks/scifact.py` has the figures.

Both take one array per retriever, rows = queries, best first, as `VectorIndex.search_vectors` and
`BM25Index.search_arrays` return them, and give back (indices, scores) of the fused ranking, as wide
as the widest input. Ties go to the lower index (the passage indexed first), as in `index.top_k`.

>>> dense = (np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.1]]))
>>> bm25 = (np.array([[2, 0, 3]]), np.array([[12.0, 6.0, 3.0]]))
>>> score_fusion([dense, bm25])
(array([[0, 2, 1]]), array([[0.66666667, 0.5       , 0.4375    ]]))
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .types import Hit

__all__ = ["RRF_K", "fuse_hits", "minmax", "rrf", "score_fusion"]

RRF_K = 60  # Cormack et al. (2009): robust across TREC collections; larger k flattens the rank curve


def minmax(scores: np.ndarray) -> np.ndarray:
    """Return each row scaled to [0, 1]: its highest score 1, its lowest 0 (all 1 if all equal).

    >>> minmax(np.array([[3.0, 2.0, 1.0], [5.0, 5.0, 5.0]]))
    array([[1. , 0.5, 0. ],
           [1. , 1. , 1. ]])
    """
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    low, high = s.min(axis=1, keepdims=True), s.max(axis=1, keepdims=True)
    span = high - low
    return np.divide(s - low, span, out=np.ones_like(s), where=span > 0)


def _fuse(indices: Sequence[np.ndarray], values: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sum each passage's values over the lists per query; return the top rows, best first."""
    if not indices:
        raise ValueError("nothing to fuse: give at least one ranking")
    idx = [np.atleast_2d(np.asarray(i, dtype=np.int64)) for i in indices]
    val = [np.atleast_2d(np.asarray(v, dtype=np.float64)) for v in values]
    n_queries = idx[0].shape[0]
    for i, v in zip(idx, val):
        if i.shape[0] != n_queries or i.shape != v.shape:
            raise ValueError(f"every ranking needs one row per query ({n_queries}) and a score per index; "
                             f"got indices {i.shape} and scores {v.shape}")
        if i.size and i.min() < 0:
            raise ValueError("indices must be >= 0 (passage positions); drop padding before fusing")
    width = max(i.shape[1] for i in idx)
    flat_i = np.concatenate([i.ravel() for i in idx])
    flat_v = np.concatenate([v.ravel() for v in val])
    rows = np.concatenate([np.repeat(np.arange(n_queries), i.shape[1]) for i in idx])
    n = int(flat_i.max()) + 1 if flat_i.size else 1
    keys, where = np.unique(rows * n + flat_i, return_inverse=True)  # one key per (query, passage)
    # Rounded so that sums of the same terms in another order tie exactly.
    fused = np.round(np.bincount(where, weights=flat_v, minlength=len(keys)), 12)
    key_row, key_idx = keys // n, keys % n
    if np.any(np.bincount(key_row, minlength=n_queries) < width):
        raise ValueError("a ranking lists a passage twice for one query; each row must hold distinct indices")
    order = np.lexsort((key_idx, -fused, key_row))  # per query: score descending, then lower index
    key_row, key_idx, fused = key_row[order], key_idx[order], fused[order]
    rank = np.arange(len(key_row)) - np.searchsorted(key_row, key_row)
    keep = rank < width  # each row holds at least `width` distinct passages: its widest input list
    out_i = np.zeros((n_queries, width), dtype=np.int64)
    out_s = np.zeros((n_queries, width))
    out_i[key_row[keep], rank[keep]] = key_idx[keep]
    out_s[key_row[keep], rank[keep]] = fused[keep]
    return out_i, out_s


def rrf(rankings: Sequence[np.ndarray], k: int = RRF_K) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, scores) of reciprocal rank fusion: each passage scores sum(1 / (k + rank)).

    `rankings`: one (queries x depth) array of passage indices per retriever, best first (rank 1).
    A passage found by one list only gets that list's term.

    >>> rrf([np.array([[0, 1, 2]]), np.array([[2, 0, 3]])], k=60)[0]   # 0: 1/61 + 1/62, 2: 1/63 + 1/61
    array([[0, 2, 1]])
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    rankings = [np.atleast_2d(np.asarray(r, dtype=np.int64)) for r in rankings]
    values = [np.broadcast_to(1.0 / (k + np.arange(1, r.shape[1] + 1)), r.shape) for r in rankings]
    return _fuse(rankings, values)


def score_fusion(results: Sequence[tuple[np.ndarray, np.ndarray]],
                 weights: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, scores) of normalised score fusion: the weighted mean of min-max scaled scores.

    `results`: one (indices, scores) pair per retriever, each (queries x depth), best first.
    `weights` default to equal (the mean), so fused scores lie in [0, 1]; a passage absent from a
    list gets 0 from it.

    >>> score_fusion([(np.array([[0, 1]]), np.array([[0.9, 0.5]])), (np.array([[1, 2]]), np.array([[7.0, 1.0]]))])
    (array([[0, 1]]), array([[0.5, 0.5]]))

    (0 and 1 each top one list and score 0 in the other: a tie, which the lower index wins.)
    """
    if weights is None:
        weights = [1.0 / len(results)] * len(results)
    if len(weights) != len(results):
        raise ValueError(f"{len(weights)} weights for {len(results)} retrievers; give one weight each")
    return _fuse([i for i, _ in results], [w * minmax(s) for (_, s), w in zip(results, weights)])


def fuse_hits(hit_lists: Sequence[Sequence[Hit]], method: str = "score", k: int = RRF_K,
              weights: Sequence[float] | None = None) -> list[Hit]:
    """Return one query's hits from several retrievers fused into one ranking (new scores and ranks).

    `method`: "score" (`score_fusion`, the default) or "rrf" (`rrf` with `k`). Chunks are matched by
    id; ties go to the chunk that appears first (in the first list, then the next). The fused list is
    as long as the longest list given: fusing two top-20 lists returns the fused top 20, and a chunk
    that only one list found, near its end, may fall below that cut.

    >>> hybrid = fuse_hits([index.search(q_vec, k=20), bm25.search(question, k=20)])   # doctest: +SKIP
    """
    if method not in ("score", "rrf"):
        raise ValueError(f"method must be 'score' or 'rrf', got {method!r}")
    hit_lists = [list(h) for h in hit_lists if len(h)]
    if not hit_lists:
        return []
    chunks = {}
    for hits in hit_lists:
        for h in hits:
            chunks.setdefault(h.chunk.id, h.chunk)
    position = {cid: i for i, cid in enumerate(chunks)}
    arrays = [(np.array([[position[h.chunk.id] for h in hits]]), np.array([[h.score for h in hits]]))
              for hits in hit_lists]
    if method == "rrf":
        idx, scores = rrf([i for i, _ in arrays], k)
    else:
        idx, scores = score_fusion(arrays, weights)
    ordered = list(chunks.values())
    return [Hit(ordered[i], float(s), r) for r, (i, s) in enumerate(zip(idx[0], scores[0]), start=1)]
