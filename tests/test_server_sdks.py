"""`ragkit serve` driven, unchanged, by the official SDKs (`openai`, `openrouter`) with the real local models,
over real HTTP on loopback, for every endpoint: embeddings, rerank, chat (plain, streamed with usage,
JSON schema), model listing and errors."""
from __future__ import annotations

import base64
import json

import numpy as np
import openai
import openrouter
import pytest
from openrouter import errors as or_errors

from ragkit import config
from ragkit.backends.server import make_server

TOKEN = "rk-test-token-0123456789"
SAY_OK = [{"role": "user", "content": "Say OK."}]


@pytest.fixture(scope="module")
def server(local_backend):
    srv = make_server(local_backend, port=0, quiet=True, token=TOKEN).start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.base_url, api_key=TOKEN, max_retries=0)


@pytest.fixture(scope="module")
def orc(server):
    return openrouter.OpenRouter(api_key=TOKEN, server_url=server.url + "/api/v1",
                                 retry_config=openrouter.utils.RetryConfig("backoff", openrouter.utils.BackoffStrategy(
                                     10, 50, 1.5, 200), False))


TEXTS = ["A reranker re-scores retrieved passages.", "Paris is the capital of France."]


def test_openai_embeddings_base64_float_string_and_list(oai, local_backend):
    direct = local_backend.embed(TEXTS).vectors
    default = oai.embeddings.create(model=config.LOCAL_EMBEDDING_MODEL, input=TEXTS)  # base64 on the wire
    np.testing.assert_allclose([d.embedding for d in default.data], direct, atol=1e-6)
    one = oai.embeddings.create(model=config.LOCAL_EMBEDDING_MODEL, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, direct[0], atol=1e-6)
    assert default.model == config.LOCAL_EMBEDDING_MODEL and default.object == "list"


def test_openai_token_ids_are_refused_naming_the_langchain_switch(oai):
    with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False") as info:
        oai.embeddings.create(model=config.LOCAL_EMBEDDING_MODEL, input=[[101, 7592, 102]])
    assert info.value.status_code == 400 and info.value.body["param"] == "input"


def test_openrouter_embeddings_and_their_model_listing(orc, local_backend):
    got = orc.embeddings.generate(model=config.LOCAL_EMBEDDING_MODEL, input=TEXTS)
    np.testing.assert_allclose([d.embedding for d in got.data], local_backend.embed(TEXTS).vectors, atol=1e-6)
    listed = orc.embeddings.list_models()
    assert [m.id for m in listed.result.data] == [config.LOCAL_EMBEDDING_MODEL]


def test_rerank_through_both_sdks(oai, orc, local_backend):
    docs = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Cats sleep a lot."]
    direct = local_backend.rerank("capital of France?", docs, top_n=2)
    by_or = orc.rerank.rerank(model=config.LOCAL_RERANK_ALIAS, query="capital of France?", documents=docs, top_n=2)
    assert [r.index for r in by_or.results] == [r.index for r in direct.results]
    by_oai = oai.post("/rerank", body={"model": config.LOCAL_RERANK_ALIAS, "query": "capital of France?",
                                       "documents": docs, "top_n": 2}, cast_to=object)  # openai has no rerank call
    assert [r["index"] for r in by_oai["results"]] == [r.index for r in direct.results]


def test_chat_plain_with_both_sdks(oai, orc):
    a = oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, max_tokens=3, seed=3, top_p=0.9)
    assert a.choices[0].message.content and a.choices[0].finish_reason == "length"
    assert a.system_fingerprint == "ragkit" and a.usage.completion_tokens == 3
    b = orc.chat.send(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, max_tokens=3)  # needs system_fingerprint
    assert b.choices[0].message.content and b.choices[0].finish_reason == "length"


def test_seed_reaches_llama_cpp(oai):
    ask = dict(model=config.LOCAL_CHAT_MODEL, messages=[{"role": "user", "content": "Tell a story."}],
               max_tokens=12, temperature=1.5)
    same = {oai.chat.completions.create(**ask, seed=11).choices[0].message.content for _ in range(2)}
    others = {oai.chat.completions.create(**ask, seed=s).choices[0].message.content for s in range(12, 16)}
    assert len(same) == 1 and len(others | same) > 1


def test_streams_end_with_the_true_finish_reason_and_a_usage_chunk(oai, orc):
    chunks = list(oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, max_tokens=3,
                                              stream=True, stream_options={"include_usage": True}))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length"  # cut by max_tokens, not "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    events = list(orc.chat.send(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, max_tokens=3, stream=True,
                                stream_options={"include_usage": True}))
    assert events[-1].usage.completion_tokens == 3
    assert [e.choices[0].finish_reason for e in events if e.choices][-1] == "length"


def test_json_schema_through_the_openai_sdk(oai):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    reply = oai.chat.completions.create(
        model=config.LOCAL_CHAT_MODEL, max_tokens=40,
        messages=[{"role": "user", "content": "Which city is the capital of France? Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}})
    assert set(json.loads(reply.choices[0].message.content)) == {"city"}


def test_model_listing_in_openrouter_shape_read_by_both(oai, orc, local_backend):
    ids = [local_backend.embedding_model, local_backend.rerank_model, local_backend.chat_model]
    assert [m.id for m in oai.models.list()] == ids
    listed = orc.models.list()  # validates architecture, canonical_slug, context_length, pricing, ...
    assert [m.id for m in listed.result.data] == ids
    chat = listed.result.data[2]
    assert chat.context_length == 4096 and "seed" in chat.supported_parameters
    assert chat.architecture.output_modalities == ["text"]


def test_errors_have_the_sdks_statuses_and_are_not_retried(server, oai, orc):
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="gpt-5", messages=SAY_OK)
    assert info.value.body["type"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="exceeds the available context size") as info:
        oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, max_tokens=3,
                                    messages=[{"role": "user", "content": "word " * 5000}])
    with pytest.raises(openai.BadRequestError, match="`n` must be 1"):
        oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, n=2)
    with pytest.raises(openai.BadRequestError, match="does not call tools"):
        oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, messages=SAY_OK, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}])
    with pytest.raises(openai.AuthenticationError, match="RAGKIT_API_KEY"):
        openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    with pytest.raises(or_errors.BadRequestResponseError):
        orc.chat.send(model=config.LOCAL_CHAT_MODEL, max_tokens=3, messages=[{"role": "user", "content": "w " * 5000}])


def test_a_streamed_prompt_over_the_context_is_a_400_not_an_empty_200(oai):
    with pytest.raises(openai.BadRequestError, match="exceeds the available context size"):
        list(oai.chat.completions.create(model=config.LOCAL_CHAT_MODEL, max_tokens=3, stream=True,
                                         messages=[{"role": "user", "content": "word " * 5000}]))


def test_base64_is_little_endian_float32_as_openai_sends(server):
    import httpx

    r = httpx.post(server.base_url + "/embeddings", headers={"Authorization": f"Bearer {TOKEN}"},
                   json={"model": config.LOCAL_EMBEDDING_MODEL, "input": "x", "encoding_format": "base64"}).json()
    assert np.frombuffer(base64.b64decode(r["data"][0]["embedding"]), dtype="<f4").shape == (384,)
