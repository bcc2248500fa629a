"""The local backend keeps the reranker's per-pair work on disk: asking again costs no model pass."""
from __future__ import annotations

import numpy as np

from ragkit.backends import LocalBackend
from ragkit.cache import PairCache

QUERY = "What does a reranker do?"
DOCS = ["A reranker reads the question with each candidate and scores the pair.",
        "Chunking cuts documents into passages.", "BM25 counts rare words more."]


def test_a_second_rerank_is_read_from_the_cache_and_scores_the_same(tmp_path, local_backend):
    backend = LocalBackend(embedder=local_backend.embedder, chat_engine=local_backend.chat_engine,
                           rerank_cache=PairCache(tmp_path / "pairs.sqlite"))
    first = backend.rerank(QUERY, DOCS)
    assert backend.scorer.computed == 3 and backend.scorer.reused == 0
    again = LocalBackend(embedder=local_backend.embedder, chat_engine=local_backend.chat_engine,
                         rerank_cache=PairCache(tmp_path / "pairs.sqlite"))  # a new process, the same file
    second = again.rerank(QUERY, DOCS[::-1])
    assert again.scorer.computed == 0 and again.scorer.reused == 3
    by_text = {r.text: r.relevance_score for r in first.results}
    assert all(abs(by_text[r.text] - r.relevance_score) < 1e-6 for r in second.results)
    direct = backend.reranker.score(QUERY, DOCS)
    np.testing.assert_allclose([by_text[d] for d in DOCS], direct, rtol=1e-5, atol=1e-7)
    assert [r.index for r in first.results] == list(np.argsort(-direct, kind="stable"))


def test_no_cache_file_when_the_cache_is_off(tmp_path, local_backend, monkeypatch):
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path))
    backend = LocalBackend(embedder=local_backend.embedder, chat_engine=local_backend.chat_engine, rerank_cache=False)
    backend.rerank(QUERY, DOCS)
    assert backend.scorer.cache is None and not list(tmp_path.glob("*.sqlite"))
