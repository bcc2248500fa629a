"""The OpenAI / OpenRouter wire format, in both directions: the one definition of what goes over HTTP.

ragkit's HTTP client (`openrouter.py`) writes requests and reads answers with it; `ragkit serve`
(`server.py`) reads requests and writes answers with it; the local backend speaks it to llama.cpp.
Field names follow OpenAI's API reference and OpenRouter's (openrouter.ai/docs/api-reference):

| endpoint | request | answer |
|---|---|---|
| `POST /embeddings` | `model`, `input` (a string or a list), `encoding_format` (`float` / `base64`) | `data: [{index, embedding}]`, `model`, `usage` |
| `POST /rerank` | `model`, `query`, `documents`, `top_n` | `results: [{index, relevance_score, document: {text}}]`, `model`, `usage` |
| `POST /chat/completions` | `model`, `messages`, `max_tokens`, `temperature`, `stop`, `response_format`, `stream` | `choices: [{message: {content}, finish_reason}]`, `usage`; streamed: `data: {chunk}` events, then `data: [DONE]` |
| errors | | `{"error": {"message", "type", "param", "code"}}` |

Readers raise `WireFormatError` naming the field that is wrong; the client turns it into
`BadResponse`, the server into a 400.

>>> chat_request("m", [{"role": "user", "content": "hi"}], json=True)["response_format"]
{'type': 'json_object'}
>>> read_usage({"prompt_tokens": 9, "completion_tokens": 3, "cost": 0.0001})
Usage(requests=1, prompt_tokens=9, completion_tokens=3, cost=0.0001)
"""
from __future__ import annotations

import base64
import json as jsonlib
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import WireFormatError
from ..types import Completion, Embeddings, Message, Ranked, Usage

__all__ = [
    "DONE", "TRUNCATED_FIELD", "ChatRequest", "StreamChunk", "chat_request", "chunk_body", "completion_body",
    "content_text", "embeddings_body", "embeddings_request", "error_body", "error_message", "error_status",
    "is_error_body", "parse_chat_request", "parse_embeddings_request", "parse_rerank_request", "read_completion",
    "read_embeddings", "read_rerank", "read_stream_chunk", "read_usage", "rerank_body", "rerank_request",
    "response_format", "schema_of", "sse_data", "sse_event", "usage_body",
]

DONE = "[DONE]"  # the data of the last server-sent event of a stream
# `ragkit serve` adds this field to an embeddings answer when its local model cut some of the texts, so
# that ragkit's HTTP client can warn as the local backend does (other clients ignore an extra field).
TRUNCATED_FIELD = "ragkit_truncated"


# -- small readers ---------------------------------------------------------------------------------

def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None


def kind(value) -> str:
    """Describe a JSON value for an error message: "a list of 3", "a str", "nothing"."""
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "nothing" if value is None else f"a {type(value).__name__}"


def content_text(content) -> str:
    """Return a message's text: a string as it is, content parts (`[{"type": "text", "text"}]`) joined.

    >>> content_text([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}])
    'Hello'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _count(value) -> int:
    return int(value) if is_number(value) and value >= 0 else 0


def read_usage(raw) -> Usage:
    """Return the `Usage` of one answered request from its `usage` object (absent: tokens 0).

    A server that reports only `total_tokens` (embeddings, rerank) has them counted as prompt tokens.
    """
    u = raw if isinstance(raw, dict) else {}
    prompt, completion = _count(u.get("prompt_tokens")), _count(u.get("completion_tokens"))
    if not prompt and not completion:
        prompt = _count(u.get("total_tokens"))
    cost = u.get("cost")
    return Usage(1, prompt, completion, float(cost) if is_number(cost) else None)


def usage_body(usage: Usage) -> dict:
    """Return a `Usage` as the `usage` object of an answer."""
    out = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.total_tokens}
    if usage.cost is not None:
        out["cost"] = usage.cost
    return out


# -- errors ----------------------------------------------------------------------------------------

def is_error_body(body) -> bool:
    """True for an error answer: OpenAI's / OpenRouter's `{"error": {...}}`, vLLM's `{"object": "error"}`."""
    return isinstance(body, dict) and (bool(body.get("error")) or body.get("object") == "error")


def error_status(error) -> int | None:
    """Return the HTTP status an error object's `code` names, if it is one (OpenRouter puts it there)."""
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if is_int(code) and 100 <= code <= 599 else None


def error_message(body) -> str:
    """Return the message of an error answer (or of an error object), or ""."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            return str(message) if message else jsonlib.dumps(error)[:300]
        if error:
            return str(error)
    return ""


def error_body(status: int, message: str, param: str | None = None) -> dict:
    """Return the error answer for an HTTP status, in OpenAI's shape.

    >>> error_body(400, "`input` is empty", "input")["error"]["type"]
    'invalid_request_error'
    """
    kind_ = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind_, "param": param, "code": status}}


# -- embeddings ------------------------------------------------------------------------------------

def embeddings_request(model: str, texts: Sequence[str]) -> dict:
    """Return the body of an embeddings request for `texts`, asking for plain floats."""
    return {"model": model, "input": list(texts), "encoding_format": "float"}


def _vector(raw) -> np.ndarray | None:
    if isinstance(raw, str):  # base64 float32, in case the server ignored encoding_format
        try:
            return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float64)
        except ValueError:
            return None
    if not isinstance(raw, list) or not all(is_number(x) for x in raw):
        return None
    vec = np.asarray(raw, dtype=np.float64)
    return vec if np.all(np.isfinite(vec)) else None


def read_embeddings(body: dict, n: int) -> np.ndarray:
    """Return the n x d vectors of an embeddings answer to n texts, in input order (float64, as sent)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise WireFormatError(f"expected a `data` list, got {kind(data)}", "data")
    if len(data) != n:
        raise WireFormatError(f"sent {n} texts but got {len(data)} vectors back", "data")
    rows: list = [None] * n
    for pos, item in enumerate(data):
        index = item.get("index") if isinstance(item, dict) else None
        if not is_int(index) or not 0 <= index < n:
            raise WireFormatError(f"data[{pos}] has index {index!r}, want 0..{n - 1}", "data")
        if rows[index] is not None:
            seen = {d.get("index") for d in data if isinstance(d, dict)}
            missing = [i for i in range(n) if i not in seen]
            raise WireFormatError(f"index {index} comes twice and {missing} never", "data")
        rows[index] = _vector(item.get("embedding"))
        if rows[index] is None:
            raise WireFormatError(f"data[{pos}].embedding is not a list of finite numbers", "data")
    dims = {len(r) for r in rows}
    if len(dims) != 1 or 0 in dims:
        raise WireFormatError(f"vectors of different or zero lengths: {sorted(dims)}", "data")
    return np.vstack(rows)


def parse_embeddings_request(body: dict) -> tuple[object, list[str], str]:
    """Return (model, texts, encoding_format) of an embeddings request, or raise naming the bad field."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise WireFormatError("`input` must be a string or a list of strings (token arrays are not supported)",
                              "input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise WireFormatError(f"encoding_format {encoding!r} is not supported: use 'float' or 'base64'",
                              "encoding_format")
    return body.get("model"), texts, encoding


def embeddings_body(emb: Embeddings, encoding: str = "float", truncated: int = 0) -> dict:
    """Return the answer to an embeddings request (`base64`: little-endian float32, as OpenAI sends)."""
    vectors = np.asarray(emb.vectors, dtype=np.float32)
    if encoding == "base64":  # what the official openai client asks for by default
        rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        rows = vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    answer = {"object": "list", "data": data, "model": emb.model, "usage": usage_body(emb.usage)}
    if truncated:
        answer[TRUNCATED_FIELD] = truncated  # ragkit's clients warn; other clients ignore the field
    return answer


# -- rerank ----------------------------------------------------------------------------------------

def rerank_request(model: str, query: str, documents: Sequence[str], top_n: int | None = None) -> dict:
    """Return the body of a rerank request (OpenRouter's and Cohere's shape)."""
    payload: dict = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        payload["top_n"] = min(int(top_n), len(documents))
    return payload


def read_rerank(body: dict, n: int) -> dict[int, float]:
    """Return {document index: relevance score} from a rerank answer about n documents."""
    raw = body.get("results")
    if not isinstance(raw, list) or len(raw) > n:
        raise WireFormatError(f"expected a `results` list of at most {n} items, got {kind(raw)}", "results")
    scored: dict[int, float] = {}
    for pos, item in enumerate(raw):
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if not is_int(index) or not 0 <= index < n or index in scored:
            raise WireFormatError(f"results[{pos}] has index {index!r}: want each of 0..{n - 1} at most once",
                                  "results")
        if not is_number(score) or not np.isfinite(score):
            raise WireFormatError(f"results[{pos}] has relevance_score {score!r}, not a number", "results")
        scored[index] = float(score)
    return scored


def parse_rerank_request(body: dict) -> tuple[object, str, list[str], int | None]:
    """Return (model, query, documents, top_n) of a rerank request, or raise naming the bad field."""
    query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
    if not isinstance(query, str):
        raise WireFormatError("`query` must be a string", "query")
    if not isinstance(documents, list):
        raise WireFormatError("`documents` must be a list of strings", "documents")
    docs = [d.get("text") if isinstance(d, dict) else d for d in documents]
    if not all(isinstance(d, str) for d in docs):
        raise WireFormatError("each of `documents` must be a string or {\"text\": string}", "documents")
    if top_n is not None and (not is_int(top_n) or top_n < 1):
        raise WireFormatError("`top_n` must be a whole number of at least 1", "top_n")
    return body.get("model"), query, docs, top_n


def rerank_body(ranked: Ranked) -> dict:
    """Return the answer to a rerank request."""
    results = [{"index": r.index, "relevance_score": r.relevance_score, "document": {"text": r.text}}
               for r in ranked.results]
    return {"id": f"rerank-{uuid.uuid4().hex}", "model": ranked.model, "results": results,
            "usage": usage_body(ranked.usage)}


# -- chat ------------------------------------------------------------------------------------------

def response_format(json: bool | dict) -> dict | None:
    """Return the `response_format` for `json`: True -> any JSON object, a dict -> that schema.

    >>> response_format({"type": "object"})["type"]
    'json_schema'
    """
    if isinstance(json, dict):
        return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": json}}
    return {"type": "json_object"} if json else None


def schema_of(fmt) -> bool | dict:
    """Return what `response_format` asks for, as `chat(json=...)` takes it: False, True or a schema.

    >>> schema_of({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}})
    {'type': 'object'}
    """
    fmt = fmt or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise WireFormatError("response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                              "{\"type\": \"json_schema\", \"json_schema\": {\"schema\": ...}}", "response_format")
    if fmt["type"] != "json_schema":
        return fmt["type"] == "json_object"
    schema = (fmt.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise WireFormatError("response_format.json_schema.schema must be a JSON schema object", "response_format")
    return schema


def chat_request(model: str | None, messages: list[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                 json: bool | dict = False, stop: Sequence[str] | None = None, stream: bool = False) -> dict:
    """Return the body of a chat request. A stream asks for usage in its last chunk (`stream_options`:
    OpenRouter always sends it, vLLM and OpenAI only when asked)."""
    payload: dict = {"messages": list(messages), "max_tokens": int(max_tokens), "temperature": float(temperature)}
    if model is not None:
        payload = {"model": model, **payload}
    if json:
        payload["response_format"] = response_format(json)
    if stop:
        payload["stop"] = list(stop)
    if stream:
        payload.update(stream=True, stream_options={"include_usage": True})
    return payload


@dataclass(frozen=True)
class ChatRequest:
    """A chat request as a server reads it: the messages, and what `Backend.chat` takes besides."""

    model: object
    messages: list[Message]
    max_tokens: int
    temperature: float
    json: bool | dict
    stop: list[str] | None
    stream: bool

    @property
    def options(self) -> dict:
        """The keyword arguments of `Backend.chat` (all but `stream`)."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "json": self.json,
                "stop": self.stop}


def parse_chat_request(body: dict) -> ChatRequest:
    """Return a chat request's parts, checked, or raise naming the bad field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireFormatError("`messages` must be a non-empty list of {\"role\", \"content\"}", "messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise WireFormatError(f"messages[{i}] must be an object with a string `role`", "messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = content_text(content)
        if not isinstance(content, str):
            raise WireFormatError(f"messages[{i}].content must be a string", "messages")
        clean.append({"role": m["role"], "content": content})
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 256))
    if not is_int(max_tokens) or max_tokens < 1:
        raise WireFormatError("`max_tokens` must be a whole number of at least 1", "max_tokens")
    temperature = body.get("temperature", 0.0)
    if temperature is None:
        temperature = 0.0
    if not is_number(temperature) or temperature < 0:
        raise WireFormatError("`temperature` must be a number >= 0", "temperature")
    json = schema_of(body.get("response_format"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireFormatError("`stream` must be true or false", "stream")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise WireFormatError("`stop` must be a string or a list of strings", "stop")
    return ChatRequest(body.get("model"), clean, max_tokens, float(temperature), json, stop or None, stream)


def read_completion(body: dict, default_model: str) -> Completion:
    """Return the `Completion` of a chat answer (raise `WireFormatError` for a malformed one).

    An error reported inside the choice (OpenRouter: `finish_reason: "error"`) raises too, with the
    error object as `detail`, so the caller can pass its status on.
    """
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise WireFormatError(f"expected a non-empty `choices` list, got {kind(choices)}", "choices")
    choice = choices[0]
    if choice.get("error") or choice.get("finish_reason") == "error":
        raise WireFormatError(error_message(choice.get("error")) or "the model failed mid-answer", "choices",
                              detail=choice.get("error") or {})
    message = choice.get("message")
    if not isinstance(message, dict):
        raise WireFormatError("choices[0] has no `message` object", "choices")
    return Completion(content_text(message.get("content")), text_or_none(body.get("model")) or default_model,
                      read_usage(body.get("usage")), text_or_none(choice.get("finish_reason")))


def completion_body(c: Completion) -> dict:
    """Return the answer to a chat request that was not streamed."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": c.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason or "stop"}],
            "usage": usage_body(c.usage)}


# -- streaming: server-sent events -----------------------------------------------------------------

def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield the data of each server-sent event (its `data:` lines joined), skipping comments and the
    other fields (`: OPENROUTER PROCESSING`, `event:`, `id:`, `retry:` carry nothing ragkit needs).

    >>> list(sse_data([": keep-alive", "data: {}", "", "data: [DONE]", ""]))
    ['{}', '[DONE]']
    """
    pending: list[str] = []
    for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
        elif line.startswith("data:"):
            pending.append(line[5:].removeprefix(" "))
    if pending:
        yield "\n".join(pending)


def sse_event(payload: dict | str) -> bytes:
    """Return one server-sent event carrying `payload` (a JSON object, or the `[DONE]` marker)."""
    data = payload if isinstance(payload, str) else jsonlib.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


@dataclass(frozen=True)
class StreamChunk:
    """What one chunk of a streamed answer carries (choice 0 only)."""

    text: str = ""
    model: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None
    error: dict | None = None  # an error object, mid-answer (OpenRouter sends one in the stream)


def read_stream_chunk(data: str) -> StreamChunk:
    """Return what the data of one stream event says (raise `WireFormatError` if it is not a chunk)."""
    try:
        chunk = jsonlib.loads(data)
    except ValueError:
        raise WireFormatError(f"is not JSON: {data[:80]!r}", "stream") from None
    if not isinstance(chunk, dict):
        raise WireFormatError(f"is {kind(chunk)}, not an object", "stream")
    if is_error_body(chunk):
        return StreamChunk(error=chunk.get("error") if isinstance(chunk.get("error"), dict) else chunk)
    text, finish = "", None
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        if choice.get("finish_reason") == "error" or choice.get("error"):
            error = choice.get("error") if isinstance(choice.get("error"), dict) else {}
            return StreamChunk(error={"message": error_message(error) or "the model failed", **error})
        finish = text_or_none(choice.get("finish_reason")) or finish
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        text += content_text(delta.get("content"))
    usage = chunk["usage"] if isinstance(chunk.get("usage"), dict) else None
    return StreamChunk(text, text_or_none(chunk.get("model")), finish, usage)


def chunk_body(ident: str, created: int, model: str, delta: dict, finish: str | None = None, **extra) -> dict:
    """Return one chunk of a streamed chat answer."""
    return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
