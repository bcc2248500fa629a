"""A reranker whose per-pair work is kept on disk: score the same (query, passage) pairs again for free.

A reranker's score comes in two steps (`Reranker.pair_values`, then `from_pair_values`): the first
costs a model pass per pair and depends on nothing else, so it can be cached; the second depends on
the whole candidate set (the offline reranker compares each candidate with the best one) and costs
milliseconds, so it is recomputed. `CachedReranker` keeps the first in a `PairCache`.

>>> scorer = CachedReranker(LocalReranker(), PairCache())             # doctest: +SKIP
>>> scorer.prepare([("what is BM25?", passage) for passage in candidates])   # doctest: +SKIP
>>> scorer.score("what is BM25?", candidates)                         # doctest: +SKIP
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..cache import PairCache


class CachedReranker:
    """Scores candidates exactly as `reranker.score(query, docs)` does, with the per-pair work cached.

    Call `prepare(pairs)` once with every (query, passage) pair to be scored: missing pairs are
    computed (by the reranker's `pair_values`, which shares what it can across pairs) and stored;
    `score` then only assembles. A reranker without `pair_values` is called directly, uncached.
    """

    def __init__(self, reranker, cache: PairCache | None):
        self.reranker, self.cache = reranker, cache
        self.cacheable = hasattr(reranker, "pair_values")
        self.model = reranker.pair_key if self.cacheable else reranker.name
        self.values: dict[bytes, np.ndarray] = {}
        self.computed = self.reused = 0

    def prepare(self, pairs: Sequence[tuple[str, str]], progress: bool = True) -> None:
        """Make sure every pair's values are at hand: from the cache, else computed now (and stored)."""
        if self.cacheable:
            self.values.update(self._values(pairs, progress))

    def score_now(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return what `reranker.score(query, docs)` returns, reading and filling the cache on the way
        (nothing is kept in memory: a server can call this for ever)."""
        docs = list(docs)
        if not self.cacheable or not docs or self.cache is None:
            return np.asarray(self.reranker.score(query, docs), dtype=np.float64)
        found = self._values([(query, d) for d in dict.fromkeys(docs)], progress=False)
        values = np.stack([found[PairCache.key(self.model, query, d)] for d in docs])
        return self.reranker.from_pair_values(values, query, docs)

    def _values(self, pairs: Sequence[tuple[str, str]], progress: bool) -> dict[bytes, np.ndarray]:
        """Return {key: values} for the pairs: read from the cache, the missing ones computed and stored."""
        keys = {PairCache.key(self.model, q, d): (q, d) for q, d in pairs}
        found = self.cache.get(list(keys)) if self.cache is not None else {}
        missing = [pair for key, pair in keys.items() if key not in found]
        self.reused += len(keys) - len(missing)
        for batch in self.reranker.pair_values(missing, progress) if missing else ():
            keyed = {PairCache.key(self.model, q, d): v for (q, d), v in batch.items()}
            found.update(keyed)
            self.computed += len(keyed)
            if self.cache is not None:
                self.cache.put(keyed)
        return found

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return each doc's reranker score for `query` (pairs must have been prepared)."""
        docs = list(docs)
        if not self.cacheable or not docs:
            return np.asarray(self.reranker.score(query, docs), dtype=np.float64)
        values = np.stack([self.values[PairCache.key(self.model, query, d)] for d in docs])
        return self.reranker.from_pair_values(values, query, docs)
