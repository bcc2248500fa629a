"""Query rewriting (`ragkit.techniques.rewriting`) with the real local chat model, in process and behind a
real `ragkit serve` on loopback driven by `OpenRouterBackend`: the same code runs offline and online."""
from __future__ import annotations

import numpy as np
import pytest

from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.backends.server import make_server
from ragkit.cache import ChatCache
from ragkit.techniques.rewriting import hyde_vectors, hypothetical_answer, multi_query_hits, paraphrases
from ragkit.types import Chunk, Hit

QUESTION = "How do I leave a loop early?"


@pytest.fixture(scope="module")
def served(local_backend):
    server = make_server(local_backend, port=0, quiet=True).start()
    yield server
    server.shutdown()


def test_rewrites_are_written_once_then_read_from_the_cache(local_backend, tmp_path):
    cache = ChatCache(tmp_path / "chats.sqlite")
    before = local_backend.usage
    first = paraphrases(QUESTION, local_backend, cache=cache)
    assert first.calls == 1 and (local_backend.usage - before).requests == 1
    assert first.usage.prompt_tokens > 0 and first.model == local_backend.chat_model
    assert all(t.strip() and t.lower() != QUESTION.lower() for t in first.texts) and len(first.texts) <= 3
    again = paraphrases(QUESTION, local_backend, cache=cache)
    assert again.calls == 0 and again.texts == first.texts and again.usage == first.usage
    assert (local_backend.usage - before).requests == 1  # the model was not asked again


def test_over_http_the_same_model_writes_the_same_rewrites_and_the_server_counts_them(local_backend, served, tmp_path):
    cache = ChatCache(tmp_path / "chats.sqlite")
    here = hypothetical_answer(QUESTION, local_backend, cache=cache)
    with OpenRouterBackend(served.base_url, backoff=0.01, max_backoff=0.02) as remote:
        there = hypothetical_answer(QUESTION, remote, cache=cache)  # another origin: not this process's entry
        assert there.calls == 1 and remote.usage.requests == 1
        assert there.usage.prompt_tokens == here.usage.prompt_tokens > 0  # the server's own count
        assert there.texts == here.texts and there.texts[0]  # temperature 0, one model, one answer
        words = paraphrases(QUESTION, remote, cache=cache)
        assert remote.usage.requests == 2 and words.usage.completion_tokens > 0
        assert hypothetical_answer(QUESTION, remote, cache=cache).calls == 0 and remote.usage.requests == 2
        question, passage = remote.embed([QUESTION]), remote.embed(list(there.texts))
    mean = hyde_vectors(question, passage).vectors[0]
    assert np.isclose(np.linalg.norm(mean), 1.0, atol=1e-5)
    # the HyDE vector lies between the two: closer to each than they are to each other
    assert mean @ question.vectors[0] > question.vectors[0] @ passage.vectors[0] < mean @ passage.vectors[0]


def test_multi_query_fuses_the_rankings_by_reciprocal_rank():
    chunks = [Chunk(f"d{i}#0", f"d{i}", "", t, 0, 0, 1) for i, t in enumerate("abc")]
    own = [Hit(chunks[0], 0.9, 1), Hit(chunks[1], 0.8, 2)]
    paraphrased = [Hit(chunks[1], 0.7, 1), Hit(chunks[2], 0.6, 2)]
    fused = multi_query_hits([own, paraphrased])
    assert [h.chunk.id for h in fused] == ["d1#0", "d0#0"]  # found by both first; as deep as the rankings
    assert [h.rank for h in fused] == [1, 2] and fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert [h.chunk.id for h in multi_query_hits([own, paraphrased], k=1)] == ["d1#0"]


def test_a_mismatched_passage_is_refused(local_backend):
    q = local_backend.embed([QUESTION])
    with pytest.raises(ValueError, match="same model"):
        hyde_vectors(q, local_backend.embed([QUESTION, QUESTION]))
