"""The arithmetic every stage shares: unit vectors, and putting scores in order, best first.

Two rules hold everywhere in ragkit, so that the same inputs always give the same ranking:

- vectors are compared as unit vectors (L2-normalised rows), so a dot product is a cosine;
- a ranking is best first, and ties go to the lower index (the item that came first).

>>> best_first(np.array([0.2, 0.9, 0.2]))
array([1, 0, 2])
"""
from __future__ import annotations

import numpy as np

__all__ = ["best_first", "normalize", "sigmoid", "top_k", "unit"]


def unit(x: np.ndarray) -> np.ndarray:
    """Return `x` scaled to unit length along its last axis (a zero vector stays zero).

    >>> unit(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Return rows scaled to unit length as float32 (zero rows stay zero); rows already of unit length
    keep their exact bits.

    >>> normalize(np.array([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.all(np.abs(norms - 1) < 1e-5):
        return vectors
    return vectors / np.where(norms == 0, 1, norms)


def best_first(scores: np.ndarray) -> np.ndarray:
    """Return the indices of `scores` from the highest to the lowest, ties broken by lower index.

    >>> best_first(np.array([0.5, 0.9, 0.5, 0.1]))
    array([1, 0, 2, 3])
    """
    scores = np.asarray(scores)
    return np.lexsort((np.arange(len(scores)), -scores))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the k largest scores, best first, ties broken by lower index.

    Finds the k best in linear time (`argpartition`), then sorts only those (and any tied at the cut).

    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 3)
    array([1, 3, 2])
    """
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
        candidates = np.flatnonzero(scores >= scores[part].min())  # keep every tie at the cut
    else:
        candidates = np.arange(n)
    return candidates[best_first(scores[candidates])[:k]]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Return 1 / (1 + e^-x), elementwise: a logit as a probability (clipped so it never overflows).

    >>> sigmoid(np.array([0.0, 100.0])).tolist()
    [0.5, 1.0]
    """
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))
