"""A 200 whose body is cut short or is not JSON, on a request that is safe to repeat (embeddings,
rerank), is retried within the budget like a 502 (issue 14, finding 5); a chat request is not."""
from __future__ import annotations

import pytest

from faultserver import Reply, chat_json, embeddings_json
from test_openrouter import HELLO, client, fault  # noqa: F401  (fault is a fixture)
from ragkit import BadResponse

CUT = [b'{"object": "list", "data": [{"index": 0, "embedd',  # valid HTTP, Content-Length matches
       b"<html><body>502 Bad Gateway</body></html>", b""]
RERANKED = {"model": "test/rerank", "results": [{"index": 1, "relevance_score": 0.9},
                                                {"index": 0, "relevance_score": 0.1}]}


@pytest.mark.parametrize("body", CUT)
def test_a_cut_embeddings_body_is_retried_and_the_build_goes_on(fault, body):
    fault.push(Reply(200, body=body), Reply(200, embeddings_json([[1.0, 0.0]])))
    result = client(fault).embed(["one"])
    assert result.vectors.tolist() == [[1.0, 0.0]] and len(fault.requests) == 2


@pytest.mark.parametrize("body", CUT)
def test_a_cut_rerank_body_is_retried(fault, body):
    fault.push(Reply(200, body=body), Reply(200, RERANKED))
    ranked = client(fault).rerank("q", ["a", "b"])
    assert [r.index for r in ranked.results] == [1, 0] and len(fault.requests) == 2


def test_cut_bodies_spend_the_same_retry_budget_and_then_say_so(fault):
    fault.default = Reply(200, body=CUT[0])
    with pytest.raises(BadResponse, match=r"not JSON .*gave up after 3 attempts"):
        client(fault, max_retries=2).embed(["one"])
    assert len(fault.requests) == 3


def test_a_cut_chat_body_is_not_asked_for_again(fault):
    fault.push(Reply(200, body=b'{"choices": [{"message": {"content": "Hel'), Reply(200, chat_json("Hello")))
    with pytest.raises(BadResponse, match="not JSON"):
        client(fault).chat(HELLO)
    assert len(fault.requests) == 1
