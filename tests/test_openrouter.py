"""OpenRouterBackend against a fault-injecting HTTP server on loopback: happy paths, every fault,
the retry policy (counting requests), and the API key never showing."""
from __future__ import annotations

import email.utils
import logging
import random
import socket
import time
import traceback

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from faultserver import DONE, FaultServer, Reply, chat_json, chunk, embeddings_json, error_json
from ragkit import config, weights
from ragkit import (
    APIError, AuthenticationError, Backend, BadRequest, BadResponse, ConnectionFailed, Forbidden,
    NotFound, PaymentRequired, RateLimited, ServerError, Usage,
)
from ragkit.backends.http import retry_after_seconds
from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.config import OPENROUTER_CHAT_MODEL, OPENROUTER_EMBEDDING_MODEL, OPENROUTER_RERANK_MODEL
from ragkit.types import ChatStream

KEY = "sk-or-v1-TESTKEY-0123456789abcdef"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fault():
    server = FaultServer().start()
    yield server
    server.shutdown()


def client(server, **options) -> OpenRouterBackend:
    settings = dict(api_key=KEY, embedding_model="test/embed", rerank_model="test/rerank",
                    chat_model="test/chat", timeout=2.0, backoff=0.01, max_backoff=0.02,
                    retry_budget=5.0)
    return OpenRouterBackend(server.url, **{**settings, **options})


def echo_embeddings(dim=4, order=reversed):
    """A reply function: one distinct vector per text, sent in `order` of indexes."""
    def reply(seen):
        texts = seen.json["input"]
        vectors = [[float(len(t)), 1.0] + [float(i + 1)] * (dim - 2) for i, t in enumerate(texts)]
        return Reply(200, embeddings_json(vectors, order=list(order(range(len(texts)))),
                                          usage={"prompt_tokens": len(texts), "cost": 0.001}))
    return reply


# -- embeddings -------------------------------------------------------------------------------

def test_embed_batches_reassembles_by_index_and_normalises(fault):
    fault.push(*[echo_embeddings()] * 3)
    b = client(fault, batch_size=2)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    emb = b.embed(texts)
    assert fault.paths() == ["/api/v1/embeddings"] * 3
    assert [r.json["input"] for r in fault.requests] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert all(r.json["model"] == "test/embed" for r in fault.requests)
    assert fault.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert emb.vectors.dtype == np.float32 and emb.vectors.shape == (5, 4)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, rtol=1e-6)
    # the server sent each batch in reverse order; row i must still belong to text i
    expected = np.array([[len(t), 1.0, i % 2 + 1, i % 2 + 1] for i, t in enumerate(texts)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.vectors, expected, rtol=1e-6)
    assert emb.model == "test/embed"
    assert emb.usage == Usage(3, 5, 0, pytest.approx(0.003))
    assert b.usage.requests == 3 and b.usage.cost == pytest.approx(0.003)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), batch=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_embed_any_order_any_batching(fault, n, batch, seed):
    """Property: whatever order each batch comes back in, row i is text i's vector."""
    rng = random.Random(seed)

    def shuffled(indexes):
        order = list(indexes)
        rng.shuffle(order)
        return order
    fault.default = echo_embeddings(dim=3, order=shuffled)
    texts = ["x" * (i + 1) for i in range(n)]
    emb = client(fault, batch_size=batch).embed(texts)
    got = emb.vectors[:, 0] / emb.vectors[:, 1]  # = len(text): undoes the normalisation
    np.testing.assert_allclose(got, np.arange(1, n + 1), rtol=1e-5)


def test_embed_model_the_server_names_wins(fault):
    fault.push(Reply(200, embeddings_json([[1.0, 0.0]], model="openai/text-embedding-3-small")))
    assert client(fault).embed(["a"]).model == "openai/text-embedding-3-small"


@pytest.mark.parametrize("answer, words", [
    (embeddings_json([[1.0, 0.0]]), "sent 2 texts but got 1 vectors"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}]}, "index 0 comes twice and [1] never"),
    ({"data": [{"embedding": [1.0]}, {"index": 1, "embedding": [2.0]}]}, "data[0] has index None"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 5, "embedding": [2.0]}]}, "data[1] has index 5"),
    ({"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [2.0]}]}, "different or zero lengths"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": "nope!"}]}, "not a list of finite numbers"),
    ({"data": [{"index": 0, "embedding": [0.0]}, {"index": 1, "embedding": [1.0]}]}, "texts [0] are all zeros"),
    ({"object": "list"}, "expected a `data` list, got nothing"),
])
def test_embed_wrong_shapes_are_bad_responses(fault, answer, words):
    fault.push(Reply(200, answer))
    with pytest.raises(BadResponse) as info:
        client(fault).embed(["one", "two"])
    assert words in str(info.value) and "/api/v1/embeddings" in str(info.value)
    assert len(fault.requests) == 1  # a wrong answer is not retried


@pytest.mark.parametrize("body", ['{"choices": [{"index": 0, "mess', "<html>502 Bad Gateway</html>", ""])
def test_non_json_or_truncated_chat_body_is_bad_response(fault, body):
    fault.push(Reply(200, body=body))  # not retried: a chat answer is not safe to ask for twice
    with pytest.raises(BadResponse, match=r"POST /api/v1/chat/completions on 127\.0\.0\.1:\d+ .*not JSON"):
        client(fault).chat(HELLO)
    assert len(fault.requests) == 1


def test_embed_checks_texts_before_sending(fault):
    b = client(fault)
    with pytest.raises(TypeError, match="list of strings"):
        b.embed("just one string")
    with pytest.raises(ValueError, match="empty"):
        b.embed([])
    assert fault.requests == []


# -- retries ----------------------------------------------------------------------------------

def test_retries_429_and_5xx_then_succeeds(fault):
    fault.push(Reply(429, error_json(429, "rate limited"), headers={"Retry-After": "0"}),
               Reply(503, error_json(503, "no provider available")),
               Reply(502, body="<html>bad gateway</html>"),
               Reply(200, embeddings_json([[3.0, 4.0]])))
    b = client(fault)
    np.testing.assert_allclose(b.embed(["a"]).vectors, [[0.6, 0.8]], rtol=1e-6)
    assert len(fault.requests) == 4
    assert b.usage.requests == 1  # usage counts answered requests


def test_retry_after_seconds_is_honoured(fault):
    fault.push(Reply(429, error_json(429, "slow down"), headers={"Retry-After": "0.4"}),
               Reply(200, embeddings_json([[1.0, 0.0]])))
    started = time.monotonic()
    client(fault).embed(["a"])
    assert time.monotonic() - started >= 0.4
    assert len(fault.requests) == 2


def test_retry_after_http_date_is_honoured(fault):
    when = email.utils.formatdate(time.time() + 1.0, usegmt=True)  # whole seconds: waits 0-1 s
    fault.push(Reply(503, error_json(503, "busy"), headers={"Retry-After": when}),
               Reply(200, embeddings_json([[1.0, 0.0]])))
    client(fault, max_backoff=0.0).embed(["a"])
    assert len(fault.requests) == 2


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-2") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    for junk in (None, "", "soon", "nan", "inf"):
        assert retry_after_seconds(junk) is None


def test_gives_up_after_max_retries_with_the_servers_message(fault):
    fault.default = Reply(500, error_json(500, "provider exploded"))
    with pytest.raises(ServerError) as info:
        client(fault, max_retries=3).embed(["a"])
    assert len(fault.requests) == 4
    err = info.value
    assert err.status == 500 and err.server_message == "provider exploded"
    assert "provider exploded" in str(err) and "gave up after 4 attempts" in str(err)


def test_rate_limit_that_does_not_clear_is_rate_limited(fault):
    fault.default = Reply(429, error_json(429, "Rate limit exceeded: free-models-per-min"))
    with pytest.raises(RateLimited, match="free-models-per-min") as info:
        client(fault, max_retries=2).embed(["a"])
    assert info.value.status == 429 and len(fault.requests) == 3


def test_retry_after_longer_than_the_budget_gives_up_at_once(fault):
    fault.default = Reply(429, error_json(429, "try tomorrow"), headers={"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(RateLimited, match=r"next wait \(3600\.0s\) would pass the 5s retry budget"):
        client(fault).embed(["a"])
    assert len(fault.requests) == 1 and time.monotonic() - started < 1


def test_read_timeout_is_retried(fault):
    fault.push(Reply(200, embeddings_json([[1.0, 0.0]]), delay=3.0),
               Reply(200, embeddings_json([[0.0, 1.0]])))
    emb = client(fault, timeout=0.3).embed(["a"])
    np.testing.assert_allclose(emb.vectors, [[0.0, 1.0]])
    assert len(fault.requests) == 2


def test_hanging_server_is_bounded_by_the_retry_budget(fault):
    fault.default = Reply(200, embeddings_json([[1.0]]), delay=10.0)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="no answer within 0.3s"):
        client(fault, timeout=0.3, retry_budget=1.0, max_retries=50).embed(["a"])
    assert time.monotonic() - started < 2.0
    assert 2 <= len(fault.requests) <= 5


def test_dropped_connection_is_retried(fault):
    fault.push(Reply(drop=True), Reply(200, embeddings_json([[1.0, 0.0]])))
    client(fault).embed(["a"])
    assert len(fault.requests) == 2


def test_connection_dropped_mid_body_is_retried(fault):
    fault.push(Reply(200, embeddings_json([[1.0, 0.0]]), cut_at=15),
               Reply(200, embeddings_json([[0.0, 1.0]])))
    np.testing.assert_allclose(client(fault).embed(["a"]).vectors, [[0.0, 1.0]])
    assert len(fault.requests) == 2


def test_nothing_listening_is_connection_failed():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenRouterBackend(f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.01, max_backoff=0.02)
    with pytest.raises(ConnectionFailed, match=rf"127\.0\.0\.1:{port}: could not connect .*ragkit serve"):
        b.embed(["a"])


@pytest.mark.parametrize("status, cls, words", [
    (400, BadRequest, "Check the model names"),
    (401, AuthenticationError, "RAGKIT_API_KEY"),
    (402, PaymentRequired, "Add credits"),
    (403, Forbidden, "moderation"),
    (404, NotFound, "Check base_url"),
    (422, BadRequest, "Check the model names"),
])
def test_client_errors_are_typed_and_not_retried(fault, status, cls, words):
    fault.default = Reply(status, error_json(status, f"the server says {status}"))
    with pytest.raises(cls) as info:
        client(fault).chat(HELLO)
    err = info.value
    assert len(fault.requests) == 1
    assert err.status == status and err.endpoint == "/api/v1/chat/completions"
    assert err.server_message == f"the server says {status}"
    assert f"HTTP {status}: the server says {status}" in str(err) and words in str(err)


def test_redirect_says_where_to(fault):
    fault.push(Reply(308, body="", headers={"Location": "/v2/embeddings"}))
    with pytest.raises(NotFound, match=r"redirected \(HTTP 308\) to http://127\.0\.0\.1:\d+/v2/embeddings"):
        client(fault).embed(["a"])
    assert len(fault.requests) == 1


def test_error_messages_in_other_shapes(fault):
    fault.push(Reply(400, {"object": "error", "message": "vLLM says no"}),   # vLLM
               Reply(404, {"detail": "Not Found"}),                          # FastAPI
               Reply(401, body="Unauthorized"))                              # plain text
    b = client(fault)
    with pytest.raises(BadRequest, match="vLLM says no"):
        b.chat(HELLO)
    with pytest.raises(NotFound, match="Not Found"):
        b.chat(HELLO)
    with pytest.raises(AuthenticationError, match="Unauthorized"):
        b.chat(HELLO)


def test_200_with_error_object_raises_the_matching_error(fault):
    fault.push(Reply(200, error_json(402, "Insufficient credits")))
    with pytest.raises(PaymentRequired, match="Insufficient credits") as info:
        client(fault).chat(HELLO)
    assert info.value.status == 402 and len(fault.requests) == 1


def test_200_with_retryable_error_object_is_retried(fault):
    fault.push(Reply(200, error_json(502, "upstream model is down")),
               Reply(200, chat_json("fine now")))
    assert client(fault).chat(HELLO).text == "fine now"
    assert len(fault.requests) == 2


def test_200_with_error_in_the_choice_is_an_error(fault):
    answer = chat_json("half an ans")
    answer["choices"][0].update(finish_reason="error", error={"code": 502, "message": "provider died"})
    fault.push(Reply(200, answer))
    with pytest.raises(ServerError, match="provider died"):
        client(fault).chat(HELLO)


# -- rerank -----------------------------------------------------------------------------------

def test_rerank_sorts_best_first_and_keeps_input_text(fault):
    fault.push(Reply(200, {
        "id": "gen-rerank-1", "model": "cohere/rerank-5-fast", "provider": "Cohere",
        "results": [{"index": 2, "relevance_score": 0.2, "document": {"text": "ignored"}},
                    {"index": 0, "relevance_score": 0.9},
                    {"index": 1, "relevance_score": 0.2}],
        "usage": {"search_units": 1, "total_tokens": 42, "cost": 0.002}}))
    b = client(fault)
    docs = ["Paris is in France.", "Berlin is in Germany.", "Rome is in Italy."]
    ranked = b.rerank("capital of France", docs, top_n=3)
    assert fault.requests[0].path == "/api/v1/rerank"
    assert fault.requests[0].json == {"model": "test/rerank", "query": "capital of France",
                                      "documents": docs, "top_n": 3}
    assert [(r.index, r.relevance_score) for r in ranked.results] == [(0, 0.9), (1, 0.2), (2, 0.2)]
    assert [r.text for r in ranked.results] == [docs[0], docs[1], docs[2]]
    assert ranked.model == "cohere/rerank-5-fast"
    assert ranked.usage == Usage(1, 42, 0, 0.002) and b.usage == Usage(1, 42, 0, 0.002)


def test_rerank_top_n_cuts_and_is_capped(fault):
    fault.push(Reply(200, {"results": [{"index": 1, "relevance_score": 0.7},
                                       {"index": 0, "relevance_score": 0.8}]}))
    ranked = client(fault).rerank("q", ["a", "b"], top_n=1)
    assert [r.index for r in ranked.results] == [0]
    assert fault.requests[0].json["top_n"] == 1
    fault.push(Reply(200, {"results": []}), Reply(200, {"results": []}))
    client(fault).rerank("q", ["a", "b"], top_n=10)
    assert fault.requests[1].json["top_n"] == 2
    client(fault).rerank("q", ["a", "b"])
    assert "top_n" not in fault.requests[2].json
    assert client(fault).rerank("q", ["a"], top_n=0).results == [] and len(fault.requests) == 3


@pytest.mark.parametrize("results, words", [
    ([{"index": 3, "relevance_score": 0.5}], "results[0] has index 3"),
    ([{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}], "results[1] has index 0"),
    ([{"index": 0, "relevance_score": "high"}], "relevance_score 'high'"),
    (None, "expected a `results` list"),
])
def test_rerank_wrong_shapes_are_bad_responses(fault, results, words):
    fault.push(Reply(200, {"results": results}))
    with pytest.raises(BadResponse, match="/api/v1/rerank") as info:
        client(fault).rerank("q", ["a", "b"])
    assert words in str(info.value)


# -- chat -------------------------------------------------------------------------------------

def test_chat_sends_the_request_and_returns_a_completion(fault):
    fault.push(Reply(200, chat_json('{"answer": 42}', model="google/gemini-2.5-flash-lite",
                                    usage={"prompt_tokens": 7, "completion_tokens": 5, "cost": 1.5e-6})))
    b = client(fault)
    c = b.chat(HELLO, max_tokens=50, temperature=0.3, json=True)
    sent = fault.requests[0].json
    assert fault.requests[0].path == "/api/v1/chat/completions"
    assert sent == {"model": "test/chat", "messages": HELLO, "max_tokens": 50, "temperature": 0.3,
                    "response_format": {"type": "json_object"}}
    assert c.text == '{"answer": 42}' and c.model == "google/gemini-2.5-flash-lite"
    assert c.finish_reason == "stop" and c.usage == Usage(1, 7, 5, 1.5e-6)
    assert b.usage == Usage(1, 7, 5, 1.5e-6)


def test_chat_sends_a_schema_and_stop_sequences(fault):
    fault.push(Reply(200, chat_json('{"answer": "x", "sources": [1]}')))
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    client(fault).chat(HELLO, json=schema, stop=["\n\n", "Question:"])
    sent = fault.requests[0].json
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    assert sent["stop"] == ["\n\n", "Question:"]


def test_chat_checks_messages_before_sending(fault):
    b = client(fault)
    for bad in ("hello", [], [{"content": "no role"}], {"role": "user", "content": "x"}):
        with pytest.raises(ValueError, match="role"):
            b.chat(bad)
    assert fault.requests == []


def test_chat_stream_yields_pieces_and_records_usage(fault):
    fault.push(Reply(200, events=[
        ": OPENROUTER PROCESSING\n\n",
        chunk("Hel"), chunk(""), chunk("lo"),
        "event: ping\ndata: " + '{"choices": [{"index": 0, "delta": {"content": "!"}}]}' + "\n\n",
        chunk(finish="stop"),
        chunk(usage={"prompt_tokens": 9, "completion_tokens": 3, "cost": 0.0001}) | {"choices": []},
        DONE]))
    b = client(fault)
    stream = b.chat(HELLO, stream=True)
    assert isinstance(stream, ChatStream) and fault.requests == []  # lazy: sent on first next()
    assert list(stream) == ["Hel", "lo", "!"]
    sent = fault.requests[0]
    assert sent.json["stream"] is True and sent.headers["accept"] == "text/event-stream"
    assert stream.text == "Hello!" and stream.finish_reason == "stop" and stream.model == "test/chat"
    assert stream.usage == Usage(1, 9, 3, 0.0001) and b.usage == Usage(1, 9, 3, 0.0001)


def test_chat_stream_error_before_streaming_is_retried(fault):
    fault.push(Reply(503, error_json(503, "no provider")),
               Reply(200, events=[chunk("ok"), DONE]))
    assert "".join(client(fault).chat(HELLO, stream=True)) == "ok"
    assert len(fault.requests) == 2


def test_chat_stream_error_mid_stream_raises_after_the_pieces(fault):
    fault.push(Reply(200, events=[
        chunk("The answer"), chunk(" is"),
        {"error": {"code": 502, "message": "Provider disconnected"},
         "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]},
        DONE]))
    got = []
    with pytest.raises(ServerError, match=r"Provider disconnected \(after 2 pieces") as info:
        for piece in client(fault).chat(HELLO, stream=True):
            got.append(piece)
    assert got == ["The answer", " is"] and info.value.status == 502
    assert len(fault.requests) == 1


def test_chat_stream_that_ends_without_done_is_bad_response(fault):
    fault.push(Reply(200, events=[chunk("The answer"), chunk(" is")]))
    got = []
    with pytest.raises(BadResponse, match=r"ended after 2 pieces without `data: \[DONE\]`"):
        got.extend(client(fault).chat(HELLO, stream=True))
    assert got == ["The answer", " is"]


def test_chat_stream_cut_mid_way_is_bad_response(fault):
    fault.push(Reply(200, events=[chunk("The answer"), chunk(" is")], cut=True))
    with pytest.raises(BadResponse, match="broke off after 2 pieces"):
        list(client(fault).chat(HELLO, stream=True))
    assert len(fault.requests) == 1


def test_chat_stream_with_garbage_event_is_bad_response(fault):
    fault.push(Reply(200, events=[chunk("a"), "data: {not json\n\n", DONE]))
    with pytest.raises(BadResponse, match="stream event 2 is not JSON"):
        list(client(fault).chat(HELLO, stream=True))


def test_chat_stream_from_a_server_that_ignores_stream(fault):
    fault.push(Reply(200, chat_json("all at once")))
    stream = client(fault).chat(HELLO, stream=True)
    assert list(stream) == ["all at once"] and stream.finish_reason == "stop"


def test_chat_stream_closed_early_hangs_up(fault):
    fault.push(Reply(200, events=[chunk("a"), chunk("b"), chunk("c"), DONE], event_delay=0.05))
    b = client(fault)
    stream = b.chat(HELLO, stream=True)
    assert next(stream) == "a"
    stream.close()
    assert b.usage.requests == 1


# -- configuration, and the key never showing -------------------------------------------------

def test_openrouter_without_a_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("RAGKIT_BASE_URL", raising=False)
    with pytest.raises(AuthenticationError, match="OPENROUTER_API_KEY"):
        OpenRouterBackend()
    with pytest.raises(AuthenticationError, match="OPENROUTER_API_KEY"):
        OpenRouterBackend.from_env()


def test_defaults_on_openrouter_and_elsewhere():
    b = OpenRouterBackend(api_key=KEY)
    assert (b.embedding_model, b.rerank_model, b.chat_model) == (
        OPENROUTER_EMBEDDING_MODEL, OPENROUTER_RERANK_MODEL, OPENROUTER_CHAT_MODEL)
    assert b.name == "openrouter" and b.describe().startswith("OpenRouter at openrouter.ai: ")
    local = OpenRouterBackend("http://127.0.0.1:8000/v1")
    assert (local.embedding_model, local.rerank_model, local.chat_model) == (
        config.LOCAL_EMBEDDING_MODEL, "local/default", config.LOCAL_CHAT_MODEL)
    assert isinstance(local, Backend)


def test_from_env(monkeypatch, fault):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("RAGKIT_EMBEDDING_MODEL", "my/embed")
    monkeypatch.setenv("RAGKIT_CHAT_MODEL", "my/chat")
    monkeypatch.delenv("RAGKIT_RERANK_MODEL", raising=False)
    monkeypatch.delenv("RAGKIT_BASE_URL", raising=False)
    monkeypatch.delenv("RAGKIT_API_KEY", raising=False)
    b = OpenRouterBackend.from_env()
    assert b.openrouter and (b.embedding_model, b.rerank_model, b.chat_model) == (
        "my/embed", OPENROUTER_RERANK_MODEL, "my/chat")
    # another server never gets the OpenRouter key, only RAGKIT_API_KEY
    monkeypatch.setenv("RAGKIT_BASE_URL", fault.url)
    fault.push(Reply(200, chat_json("hi")), Reply(200, chat_json("hi")))
    OpenRouterBackend.from_env().chat(HELLO)
    assert "authorization" not in fault.requests[0].headers
    monkeypatch.setenv("RAGKIT_API_KEY", "local-secret")
    OpenRouterBackend.from_env().chat(HELLO)
    assert fault.requests[1].headers["authorization"] == "Bearer local-secret"


def test_bad_base_url():
    with pytest.raises(ValueError, match="base_url must look like"):
        OpenRouterBackend("openrouter.ai/api/v1", api_key=KEY)


def test_the_key_never_shows(fault, caplog):
    secret_url = fault.url.replace("http://", "http://user:hunter2@") + "?token=abc"
    other = OpenRouterBackend(secret_url, api_key=KEY)
    b = OpenRouterBackend(fault.url, api_key=KEY, max_retries=1, backoff=0.01, timeout=0.3)
    texts = [repr(b), b.describe(), str(b._http.client.headers), repr(other), other.describe()]
    # a server that echoes the key back in its error message, on every kind of failure
    fault.push(Reply(401, error_json(401, f"Invalid key {KEY}")),
               Reply(500, error_json(500, f"boom {KEY}")), Reply(500, error_json(500, f"boom {KEY}")),
               Reply(200, body=f"garbage {KEY}"),
               Reply(200, events=[chunk("x"), error_json(500, f"mid {KEY}")]),
               Reply(delay=2), Reply(delay=2))
    with caplog.at_level(logging.DEBUG):
        for call in (lambda: b.chat(HELLO), lambda: b.chat(HELLO), lambda: b.chat(HELLO),
                     lambda: list(b.chat(HELLO, stream=True)), lambda: b.chat(HELLO)):
            with pytest.raises(APIError) as info:
                call()
            err = info.value
            texts += [str(err), repr(err), str(err.server_message),
                      "".join(traceback.format_exception(err))]
    texts.append(caplog.text)
    assert len(fault.requests) == 7 and fault.requests[0].headers["authorization"] == f"Bearer {KEY}"
    for text in texts:
        assert KEY not in text and "hunter2" not in text and "token=abc" not in text
    assert "[API key]" in texts[5]


def test_usage_is_thread_safe(fault):
    import threading
    fault.default = Reply(200, chat_json("hi", usage={"prompt_tokens": 1, "completion_tokens": 1}))
    b = client(fault)
    threads = [threading.Thread(target=lambda: [b.chat(HELLO) for _ in range(5)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.usage == Usage(20, 20, 20, None) and len(fault.requests) == 20


def test_mock_transport_works_too():
    """httpx's own MockTransport plugs in through `transport=` (used where no server is needed)."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_json(f"you said {request.url.path}"))
    b = OpenRouterBackend("http://testserver/v1", transport=httpx.MockTransport(handler))
    assert b.chat(HELLO).text == "you said /v1/chat/completions"
