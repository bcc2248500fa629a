"""`ragkit.backends.server` on loopback, driven by `OpenRouterBackend`: end to end with the real local models,
and the wire protocol's edges with a small stub backend (kept for fault injection)."""
from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import numpy as np
import pytest

from ragkit import config, weights
from ragkit import (
    BackendError, ChatStream, BadRequest, Completion, Embeddings, NotFound, Ranked, RerankResult, ServerError, Usage,
)
from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.backends.server import make_server

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


# -- end to end: the real local models ------------------------------------------------------------

@pytest.fixture(scope="module")
def local_server(local_backend):
    server = make_server(local_backend, port=0, quiet=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def remote(local_server):
    """A client with the defaults it picks for a non-OpenRouter server (the local model names)."""
    with OpenRouterBackend(local_server.base_url, backoff=0.01, max_backoff=0.02, retry_budget=60) as b:
        yield b


def test_e2e_embeddings_match_the_local_backend(remote, local_backend):
    texts = ["A reranker re-scores retrieved passages.", "Paris is the capital of France.",
             "Chunks overlap so sentences are not cut.", "BM25 counts words.", "Vectors have 384 numbers."]
    remote.batch_size = 2
    emb = remote.embed(texts)
    direct = local_backend.embed(texts)
    assert emb.model == direct.model == config.LOCAL_EMBEDDING_MODEL
    assert emb.vectors.shape == (5, 384) and emb.vectors.dtype == np.float32
    np.testing.assert_allclose(emb.vectors, direct.vectors, atol=1e-6)
    assert remote.usage.requests == 3


def test_e2e_rerank_matches_the_local_backend(remote, local_backend):
    docs = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Cats sleep a lot."]
    ranked = remote.rerank("What is the capital of France?", docs, top_n=2)
    direct = local_backend.rerank("What is the capital of France?", docs, top_n=2)
    assert [r.index for r in ranked.results] == [r.index for r in direct.results]
    assert [r.text for r in ranked.results] == [docs[r.index] for r in direct.results]
    np.testing.assert_allclose([r.relevance_score for r in ranked.results],
                               [r.relevance_score for r in direct.results], rtol=1e-6)
    assert ranked.model == direct.model


def test_e2e_chat(remote):
    c = remote.chat(QUESTION, max_tokens=8)
    assert isinstance(c, Completion) and c.text.strip()
    assert c.model == config.LOCAL_CHAT_MODEL and c.finish_reason in ("stop", "length")
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0


def test_e2e_chat_stream(remote):
    stream = remote.chat(QUESTION, stream=True, max_tokens=8)
    pieces = list(stream)
    assert pieces and "".join(pieces).strip() and stream.text == "".join(pieces)
    assert stream.model == config.LOCAL_CHAT_MODEL and remote.usage.requests == 1


def test_e2e_concurrent_clients(local_server, local_backend):
    texts = [f"sentence number {i} about retrieval" for i in range(6)]
    expected = local_backend.embed(texts).vectors
    results, errors = {}, []

    def work(k):
        try:
            with OpenRouterBackend(local_server.base_url, batch_size=2) as b:
                results[k] = b.embed(texts).vectors
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for vectors in results.values():
        np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_e2e_wrong_model_is_404_and_names_the_served_one(local_server):
    with OpenRouterBackend(local_server.base_url, embedding_model="openai/text-embedding-3-small") as b:
        with pytest.raises(NotFound, match=r"this server's embedding model is 'local/all-MiniLM-L6-v2-int8'") as info:
            b.embed(["a"])
    assert info.value.status == 404


# -- the protocol's edges, with a stub backend ----------------------------------------------------

class Stub:
    """A tiny deterministic backend whose failures a test can switch on."""

    name = "stub"
    embedding_model, rerank_model, chat_model = "stub/embed", "stub/rerank", "stub/chat"

    def __init__(self):
        self.usage = Usage()
        self.fail: Exception | None = None       # raised by the next call
        self.fail_after: int | None = None       # a stream raises after this many pieces
        self.closed = threading.Event()
        self.piece_delay = 0.0
        self.embed_delay = 0.0                   # seconds each embed call takes
        self.yielded = 0

    def describe(self) -> str:
        return "stub backend"

    def embed(self, texts):
        if self.fail:
            raise self.fail
        time.sleep(self.embed_delay)
        from ragkit.types import check_texts
        texts = check_texts(texts)
        v = np.array([[len(t), 1.0, t.count("a")] for t in texts], dtype=np.float32)
        return Embeddings(v / np.linalg.norm(v, axis=1, keepdims=True), self.embedding_model, Usage(1, 3))

    def rerank(self, query, documents, top_n=None):
        words = set(query.lower().split())
        scores = [len(words & set(d.lower().split())) / 10 for d in documents]
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[:top_n]
        return Ranked([RerankResult(i, scores[i], documents[i]) for i in order], self.rerank_model,
                      Usage(1, 5, 0, 0.001))

    def chat(self, messages, *, stream=False, max_tokens=256, temperature=0.0, json=False, stop=None):
        if self.fail:
            raise self.fail
        words = f"echo: {messages[-1]['content']}".split(" ")
        if not stream:
            return Completion(" ".join(words), self.chat_model, Usage(1, 4, len(words)), "stop")
        return ChatStream(self._stream(words), self.chat_model)

    def _stream(self, words):
        try:
            for i, w in enumerate(words):
                if self.fail_after is not None and i == self.fail_after:
                    raise BackendError("the stub model fell over")
                if self.piece_delay:
                    time.sleep(self.piece_delay)
                self.yielded += 1
                yield w if i == 0 else " " + w
        finally:
            self.closed.set()


@pytest.fixture
def stub():
    return Stub()


@pytest.fixture
def served(stub):
    log = io.StringIO()
    server = make_server(stub, port=0, log=log).start()
    server.log = log
    yield server
    server.shutdown()


@pytest.fixture
def http(served):
    with httpx.Client(base_url=served.url, timeout=5) as c:
        yield c


def client(served, **kw) -> OpenRouterBackend:
    return OpenRouterBackend(served.base_url, embedding_model="stub/embed", rerank_model="stub/rerank",
                             chat_model="stub/chat", backoff=0.01, max_backoff=0.02, **kw)


def test_stub_round_trip_through_the_client(served, stub):
    b = client(served)
    np.testing.assert_allclose(b.embed(["ab", "a"]).vectors, stub.embed(["ab", "a"]).vectors, atol=1e-7)
    ranked = b.rerank("capital of france", ["berlin germany", "paris capital of france"], top_n=1)
    assert [(r.index, r.text) for r in ranked.results] == [(1, "paris capital of france")]
    assert ranked.usage.cost == 0.001
    assert b.chat([{"role": "user", "content": "hi there"}]).text == "echo: hi there"
    assert "".join(b.chat([{"role": "user", "content": "hi there"}], stream=True)) == "echo: hi there"
    assert b.usage.requests == 4


def test_a_room_connecting_at_once_is_not_reset(served, stub):
    """A burst of new connections must queue, not be reset: socketserver's backlog of 5 reset
    dozens of 300 simultaneous connections here, and one of 30 learners in CI. Each gets an answer:
    200, or 429 from the per-client cap (all come from one address here), never a transport error."""
    stub.embed_delay = 0.2
    failures, statuses, start = [], [], threading.Barrier(300)

    def connect():
        start.wait()
        try:
            with httpx.Client(timeout=30) as c:
                statuses.append(c.post(served.base_url + "/embeddings",
                                       json={"model": "stub/embed", "input": ["a"]}).status_code)
        except httpx.HTTPError as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=connect) for _ in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(statuses) == 300
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 4


def test_health_models_and_the_api_prefix(http):
    health = http.get("/health").json()
    assert health["status"] == "ok" and health["backend"] == "stub backend" and health["unavailable"] == {}
    assert health["queues"]["chat"] == {"running": 0, "waiting": 0, "queue": 64, "workers": 1}
    ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert ids == ["stub/embed", "stub/rerank", "stub/chat"]
    assert http.get("/api/v1/models").json()["data"][0]["id"] == "stub/embed"
    r = http.post("/api/v1/embeddings", json={"input": "one text"})
    assert r.status_code == 200 and len(r.json()["data"]) == 1


def test_rerank_accepts_local_default_and_document_objects(http):
    r = http.post("/v1/rerank", json={"model": "local/default", "query": "a b",
                                      "documents": [{"text": "c"}, "a b"]})
    assert r.status_code == 200
    assert [x["index"] for x in r.json()["results"]] == [1, 0]
    assert r.json()["results"][0]["document"] == {"text": "a b"}


def test_base64_embeddings_for_the_official_openai_client(http, stub):
    r = http.post("/v1/embeddings", json={"input": ["abc"], "encoding_format": "base64"}).json()
    vec = np.frombuffer(base64.b64decode(r["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, stub.embed(["abc"]).vectors[0])


@pytest.mark.parametrize("path, body, words", [
    ("/v1/embeddings", {"input": [{"a": 1}]}, "`input` must be a string or a list of strings"),
    ("/v1/embeddings", {"input": ["a", " "]}, "input[1] is empty"),
    ("/v1/embeddings", {"input": ["a"], "encoding_format": "int8"}, "encoding_format 'int8' is not supported"),
    ("/v1/embeddings", {"input": ["a"], "dimensions": 64}, "`dimensions` is not supported"),
    ("/v1/rerank", {"documents": ["a"]}, "`query` must be a string"),
    ("/v1/rerank", {"query": "q", "documents": "a"}, "`documents` must be a list"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, "`top_n` must be a whole number"),
    ("/v1/chat/completions", {}, "`messages` must be a non-empty list"),
    ("/v1/chat/completions", {"messages": [{"content": "x"}]}, "messages[0] must be an object with a string `role`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "`max_tokens`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "`max_tokens`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "`stream`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                              "response_format": {"type": "xml"}}, "response_format"),
])
def test_bad_requests_get_400_in_openai_shape(http, path, body, words):
    r = http.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert words in error["message"] and error["type"] == "invalid_request_error" and error["code"] == 400


@pytest.mark.parametrize("path, body, words", [
    ("/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": ["a"]},
     "model 'openai/text-embedding-3-small' is not served here: this server's embedding model is 'stub/embed'"),
    ("/v1/rerank", {"model": "cohere/rerank-5-fast", "query": "q", "documents": ["a"]},
     "this server's rerank model is 'stub/rerank' (or 'local/default')"),
    ("/v1/chat/completions", {"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]},
     "this server's chat model is 'stub/chat'"),
])
def test_unknown_models_get_404_model_not_found(http, path, body, words):
    r = http.post(path, json=body)
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert words in error["message"] and error["type"] == "model_not_found" and error["param"] == "model"


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"), ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"seed": 1}, "seed"), ({"top_p": 0.5}, "top_p"), ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"top_p": 7}, "top_p"), ({"reasoning": {"effort": "high"}}, "reasoning"),
])
def test_chat_parameters_the_backend_does_not_honour_get_400_naming_them(http, extra, param):
    """The stub honours no sampling parameter: each is refused by name, never dropped silently."""
    r = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and f"`{param}`" in r.json()["error"]["message"]


def test_harmless_chat_fields_are_accepted(http):
    r = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a b"}], "n": 1,
                                                "user": "learner-3", "logprobs": False, "seed": None})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: a b"


def test_bad_json_and_bodies(http):
    as_json = {"Content-Type": "application/json"}
    r = http.post("/v1/embeddings", content=b"{nope", headers=as_json)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    assert "must be a JSON object" in http.post("/v1/embeddings", json=[1]).json()["error"]["message"]
    assert "has no body" in http.post("/v1/embeddings", headers=as_json).json()["error"]["message"]


def test_unknown_paths_and_methods(http):
    r = http.post("/v1/completions", json={"prompt": "x"})
    assert r.status_code == 404 and "POST /v1/chat/completions" in r.json()["error"]["message"]
    assert http.get("/v1/embeddings").status_code == 405
    # the unread body of the 404 must not poison the next request on a kept-alive connection
    assert http.get("/health").status_code == 200


def test_client_sees_server_errors_typed(served, stub):
    b = client(served, max_retries=1)
    with pytest.raises(NotFound):
        OpenRouterBackend(served.url + "/v2", max_retries=0).embed(["a"])
    stub.fail = BackendError("the stub model is not loaded")
    with pytest.raises(ServerError, match="the stub model is not loaded") as info:
        b.embed(["a"])
    assert info.value.status == 500
    stub.fail = RuntimeError("a bug")
    with pytest.raises(ServerError, match="internal error: RuntimeError: a bug"):
        b.chat([{"role": "user", "content": "x"}])
    assert "Traceback" in served.log.getvalue()
    assert "Authorization" not in served.log.getvalue()


def test_stream_is_sse_ending_with_done(http):
    with http.stream("POST", "/v1/chat/completions",
                     json={"messages": [{"role": "user", "content": "a b"}], "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "echo: a b"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1]  # not asked for
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "stub/chat" for c in chunks)
    assert all(c["system_fingerprint"] == "ragkit" for c in chunks)


def test_stream_failing_mid_way_reaches_the_client_as_an_error(served, stub):
    stub.fail_after = 2
    b = client(served)
    got = []
    with pytest.raises(ServerError, match="the stub model fell over"):
        for piece in b.chat([{"role": "user", "content": "one two three four"}], stream=True):
            got.append(piece)
    assert "".join(got) == "echo: one"
    stub.fail_after = None
    assert b.chat([{"role": "user", "content": "still up"}]).text == "echo: still up"


def test_stream_failing_at_once_is_an_http_error(served, stub):
    stub.fail_after = 0
    with pytest.raises(ServerError, match="fell over") as info:
        list(client(served, max_retries=0).chat([{"role": "user", "content": "x"}], stream=True))
    assert info.value.status == 500


def test_client_hanging_up_mid_stream_stops_the_backend(served, stub, http):
    stub.piece_delay = 0.01  # 300 pieces: 3 s if nobody stopped it
    with http.stream("POST", "/v1/chat/completions",
                     json={"messages": [{"role": "user", "content": " ".join(["w"] * 299)}],
                           "stream": True}) as r:
        next(r.iter_lines())
    assert stub.closed.wait(2) and stub.yielded < 300
    assert http.get("/health").status_code == 200


def test_one_log_line_per_request_without_headers(served, http):
    http.post("/v1/embeddings", json={"input": ["a"]}, headers={"Authorization": "Bearer sk-secret-123"})
    http.post("/v1/embeddings", json={"model": "nope", "input": ["a"]})
    lines = served.log.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("ragkit serve: POST /v1/embeddings 200 ") and lines[0].endswith(" ms")
    assert lines[1].startswith("ragkit serve: POST /v1/embeddings 404 ")
    assert "sk-secret" not in served.log.getvalue() and "Authorization" not in served.log.getvalue()


def test_shutdown_and_url(stub):
    server = make_server(stub, port=0, quiet=True)
    assert server.url.startswith("http://127.0.0.1:") and server.base_url == server.url + "/v1"
    server.start()
    assert httpx.get(server.url + "/health").status_code == 200
    server.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health", timeout=1)


def test_e2e_json_schema_is_enforced_through_the_wire(remote):
    from ragkit.generate import ANSWER_SCHEMA

    reply = remote.chat([{"role": "user", "content": "Sources:\n[1] Cats: Cats sleep sixteen hours a day.\n\n"
                                                     "Question: How long do cats sleep?"}],
                        json=ANSWER_SCHEMA, max_tokens=120)
    data = json.loads(reply.text)
    assert set(data) == {"answer", "sources"} and isinstance(data["answer"], str)
    assert all(isinstance(n, int) and n >= 1 for n in data["sources"])


def test_e2e_stop_sequences_reach_the_model(remote):
    reply = remote.chat([{"role": "user", "content": "Write the numbers one to ten, one per line."}],
                        max_tokens=60, stop=["\n"])
    assert "\n" not in reply.text.strip()


def test_e2e_pipeline_over_http_keeps_the_same_sources(remote, local_backend, demo_index):
    from ragkit.pipeline import ask

    over_http = ask("How big should chunks be?", demo_index, remote, answer=False)
    in_process = ask("How big should chunks be?", demo_index, local_backend, answer=False)
    assert remote.reranked_by == local_backend.rerank_model
    assert over_http.threshold == in_process.threshold == local_backend.rerank_threshold
    assert [h.chunk.id for h in over_http.kept] == [h.chunk.id for h in in_process.kept]


def test_e2e_a_text_the_served_model_cuts_is_warned_about_in_the_client(remote, local_server):
    """The served model reads 256 word pieces; the HTTP client says so, naming the server."""
    long_text = "retrieval " * 400
    host = local_server.base_url.split("//")[1].split("/")[0]
    with pytest.warns(UserWarning, match=rf"1 of 2 texts are longer than 256 word pieces; the embedding "
                                         rf"model at {host} saw only their first 256"):
        remote.embed(["a short one", long_text])
    # two batches: the counts add up
    with pytest.warns(UserWarning, match=rf"2 of 3 texts .* at {host}"):
        OpenRouterBackend(local_server.base_url, batch_size=2).embed([long_text, "short", long_text])


def test_no_truncation_warning_for_texts_that_fit(remote, recwarn):
    remote.embed(["a short one", "retrieval " * 200])
    assert not [w for w in recwarn if "word pieces" in str(w.message)]


def test_other_servers_answers_without_the_field_raise_no_warning(served, stub, recwarn):
    client(served).embed(["word " * 1000])  # the stub is not the local model: no field, no warning
    assert not [w for w in recwarn if "word pieces" in str(w.message)]
