"""Diversity: maximal marginal relevance, and dropping near-duplicate passages, before generation.

A reranker scores each passage alone, so the top five can be five copies of one fact (the same
paragraph in two files, a page and its summary). The model then reads one fact five times and
misses the second fact the question needs. Two fixes, each on a list already ranked:

- `near_duplicates` / `dedupe_hits`: drop a passage whose cosine with a better-ranked kept passage
  is at least `threshold`, or whose text is the same. The best-ranked copy stays. The default 0.95
  is MiniLM's view of a copy: one sentence about rerankers with its words moved about scored 0.96-0.99
  against the original, a shorter paraphrase 0.86-0.87, a sentence about BM25 0.48 (tests check it).
- `mmr` / `mmr_hits` (maximal marginal relevance, Carbonell & Goldstein, SIGIR 1998): pick passages
  one at a time, each time the one with the best trade-off between relevance and novelty,

      next = argmax over unpicked i of  lambda * rel(i) - (1 - lambda) * max over picked j of cos(i, j)

  `lambda_ = 1` is the relevance order; `lambda_ = 0` picks, after the most relevant, the passage
  least like any picked so far. `rel` is the previous stage's score (a cosine, BM25, a reranker's
  logit) min-max scaled to [0, 1] over the candidates, so that lambda means the same whatever scored
  them: a cosine lives in [-1, 1] and a logit anywhere.

Two layers, as in `ragkit.hybrid`: arrays of row positions underneath (`mmr`, `near_duplicates`),
`Hit` lists on top (`mmr_hits`, `dedupe_hits`, re-ranked 1..k with the previous stage's scores kept).
The vectors are the candidates' unit rows, e.g. `hit_vectors(index, hits)`. Written by hand: the
formula is the lesson.

>>> vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])   # cos(0, 1) = 0.8, cos(1, 2) = 0.6
>>> near_duplicates(vectors, threshold=0.8)                      # 1 is a copy of 0: dropped
array([False,  True, False])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..hybrid import minmax
from ..index import VectorIndex
from ..types import Hit
from ..vectors import best_first

__all__ = ["dedupe_hits", "hit_vectors", "mmr", "mmr_hits", "near_duplicates"]


def _rows(vectors: np.ndarray, n: int | None = None) -> np.ndarray:
    """Return `vectors` as a float64 (n, d) array, or raise saying what shape was expected."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or (n is not None and v.shape[0] != n):
        want = f"({n}, d)" if n is not None else "(n, d)"
        raise ValueError(f"vectors must be a {want} array, one unit row per candidate; got shape {v.shape}")
    return v


def mmr(vectors: np.ndarray, relevance: np.ndarray, k: int | None = None, lambda_: float = 0.7) -> np.ndarray:
    """Return the row positions maximal marginal relevance picks, in the order it picks them (k of them).

    `vectors`: (n, d) unit rows of the candidates; `relevance`: (n,) their scores from the previous
    stage, any scale (min-max scaled to [0, 1] here; all equal counts as all 1). `k`: how many to pick
    (None or more than n: all n). The first pick is the most relevant, for every lambda; then

        score(i) = lambda * rel(i) - (1 - lambda) * max over picked j of cos(i, j)

    and ties go to the earlier row. There is no query argument: its part is in `relevance`; to rank by
    the query alone pass `relevance=vectors @ query_vector`.

    >>> vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])   # cos(0,1) = 0.8, cos(0,2) = 0, cos(1,2) = 0.6
    >>> relevance = np.array([0.9, 0.8, 0.5])                     # scaled: 1, 0.75, 0
    >>> mmr(vectors, relevance, lambda_=0.7)   # after 0, row 1: .7*.75 - .3*.8 = 0.285 beats row 2: .7*0 - .3*0 = 0
    array([0, 1, 2])
    >>> mmr(vectors, relevance, lambda_=0.5)   # row 1: .5*.75 - .5*.8 = -0.025 loses to row 2: 0
    array([0, 2, 1])
    """
    v = _rows(vectors)
    rel = np.asarray(relevance, dtype=np.float64).ravel()
    if rel.shape[0] != v.shape[0]:
        raise ValueError(f"{rel.shape[0]} relevance scores for {v.shape[0]} vectors; give one score per row")
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1] (1: relevance only, 0: novelty only), got {lambda_}")
    n = v.shape[0]
    k = n if k is None else min(int(k), n)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if n == 0 or k == 0:
        return np.empty(0, dtype=np.int64)
    rel = minmax(rel)[0]
    picked = [int(best_first(rel)[0])]
    closest = v @ v[picked[0]]          # max cosine of each row to the picked set, updated per pick
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < k:
        score = np.where(available, lambda_ * rel - (1.0 - lambda_) * closest, -np.inf)
        nxt = int(np.argmax(score))     # argmax takes the first of equal maxima: the earlier row
        picked.append(nxt)
        available[nxt] = False
        closest = np.maximum(closest, v @ v[nxt])
    return np.array(picked, dtype=np.int64)


def near_duplicates(vectors: np.ndarray | None, threshold: float = 0.95,
                    texts: Sequence[str] | None = None) -> np.ndarray:
    """Return a boolean mask of the rows to drop: each is a copy of an earlier row that is kept.

    Row i is dropped when cos(i, j) >= `threshold` for some earlier kept row j, or (with `texts`) when
    its text equals j's (whitespace collapsed): rows are taken best first, so the best-ranked copy
    stays. Only kept rows count: in a chain a ~ b ~ c where a and c are not alike, b goes and c stays,
    so what is kept holds no pair at or above the threshold. `vectors=None` with `texts`: text alone.

    One matrix product finds every close pair; the walk down the rows is one vector step per row. The
    n x n matrix suits a ranked list (tens to hundreds of rows), not a whole corpus.

    >>> chain = np.array([[1.0, 0.0], [0.866, 0.5], [0.5, 0.866]])   # 0, 30 and 60 degrees: cos 0.866, 0.866, 0.5
    >>> near_duplicates(chain, threshold=0.85)                       # b goes with a; c is like b only: kept
    array([False,  True, False])
    >>> near_duplicates(None, texts=["Tea.", "Coffee.", " Tea. "])
    array([False, False,  True])
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine, in [-1, 1]; got {threshold} (0.95 drops reworded copies)")
    if vectors is None and texts is None:
        raise ValueError("give the candidates' vectors, their texts, or both")
    n = len(texts) if vectors is None else _rows(vectors).shape[0]
    close = np.zeros((n, n), dtype=bool)
    if vectors is not None:
        v = _rows(vectors)
        close |= v @ v.T >= threshold - 1e-9   # a hair of slack: a cosine computed as 0.9499999 is 0.95
    if texts is not None:
        if len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} vectors; give one text per row")
        _, group = np.unique([" ".join(t.split()) for t in texts], return_inverse=True)
        close |= group[:, None] == group[None, :]
    close &= np.tri(n, k=-1, dtype=bool)       # only earlier rows count (j < i)
    drop = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(close.any(axis=1)):
        drop[i] = bool(np.any(close[i] & ~drop))
    return drop


def hit_vectors(index: VectorIndex, hits: Sequence[Hit]) -> np.ndarray:
    """Return the index's unit vectors of the hits' chunks, one row per hit (found by chunk id).

    `VectorIndex` keeps `vectors[i]` for `chunks[i]`; a hit from elsewhere (a store, BM25 over other
    chunks) has no row there: embed its text instead, `backend.embed([embedding_text(h.chunk) ...]).vectors`.

    >>> from ragkit.types import Chunk
    >>> chunks = [Chunk(f"d#{i}", "d", "", t, i, 0, 1) for i, t in enumerate("ab")]
    >>> index = VectorIndex(np.eye(2, dtype=np.float32), chunks, "toy")
    >>> hit_vectors(index, [Hit(chunks[1], 0.9, 1)])
    array([[0., 1.]], dtype=float32)
    """
    row = {c.id: i for i, c in enumerate(index.chunks)}
    missing = [h.chunk.id for h in hits if h.chunk.id not in row]
    if missing:
        raise ValueError(f"{len(missing)} hits are not in this index (e.g. {missing[0]!r}); pass the index "
                         f"they were retrieved from, or embed their texts with the index's backend")
    return index.vectors[[row[h.chunk.id] for h in hits]].reshape(len(hits), index.dim)


def _check_hits(hits: Sequence[Hit], vectors: np.ndarray | None) -> list[Hit]:
    hits = list(hits)
    if vectors is not None and _rows(vectors).shape[0] != len(hits):
        raise ValueError(f"{_rows(vectors).shape[0]} vectors for {len(hits)} hits; give one row per hit, "
                         f"in the hits' order (hit_vectors(index, hits))")
    return hits


def mmr_hits(hits: Sequence[Hit], vectors: np.ndarray, k: int | None = None, lambda_: float = 0.7) -> list[Hit]:
    """Return `k` of the hits in maximal-marginal-relevance order (`mmr` on their scores), ranked 1..k.

    Each hit keeps its score from the previous stage; only the order and the ranks change.

    >>> from ragkit.types import Chunk
    >>> hits = [Hit(Chunk(f"d#{i}", "d", "", t, i, 0, 1), s, i + 1) for i, (t, s) in enumerate(zip("abc", [0.9, 0.8, 0.5]))]
    >>> [(h.chunk.text, h.score, h.rank) for h in mmr_hits(hits, np.array([[1, 0], [0.8, 0.6], [0, 1]]), lambda_=0.5)]
    [('a', 0.9, 1), ('c', 0.5, 2), ('b', 0.8, 3)]
    """
    hits = _check_hits(hits, vectors)
    if not hits:
        return []
    order = mmr(vectors, np.array([h.score for h in hits]), k, lambda_)
    return [Hit(hits[i].chunk, hits[i].score, rank) for rank, i in enumerate(order, start=1)]


def dedupe_hits(hits: Sequence[Hit], vectors: np.ndarray | None = None, threshold: float = 0.95) -> list[Hit]:
    """Return the hits without near-duplicates of better-ranked ones (`near_duplicates`), ranked 1..n again.

    A hit is a duplicate when its cosine with a kept, better-ranked hit is >= `threshold`, or when its
    chunk's text is the same (whitespace aside): the same passage under two titles embeds to two
    different vectors, and is still one passage to the reader. `vectors=None`: by text alone.

    >>> from ragkit.types import Chunk
    >>> hits = [Hit(Chunk(f"{d}#0", d, d, t, 0, 0, 1), s, r) for r, (d, t, s) in
    ...         enumerate([("a", "Tea.", 0.9), ("b", "Coffee.", 0.7), ("c", "Tea.", 0.6)], start=1)]
    >>> [(h.chunk.id, h.rank) for h in dedupe_hits(hits)]
    [('a#0', 1), ('b#0', 2)]
    """
    hits = _check_hits(hits, vectors)
    if not hits:
        return []
    drop = near_duplicates(vectors, threshold, texts=[h.chunk.text for h in hits])
    kept = [h for h, gone in zip(hits, drop) if not gone]
    return [Hit(h.chunk, h.score, rank) for rank, h in enumerate(kept, start=1)]
