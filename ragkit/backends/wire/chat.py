"""Chat completions on the wire: the request both ways, which parameters a server takes, the answer.

| request field | what `parse_chat_request` does with it |
|---|---|
| `model`, `messages`, `max_tokens` (or `max_completion_tokens`), `temperature`, `stop`, `response_format`, `stream`, `stream_options.include_usage` | read and checked |
| `seed`, `top_p`, `top_k`, `min_p`, `presence_penalty`, `frequency_penalty`, `logit_bias` (`SAMPLING`) | checked, kept in `ChatRequest.sampling` for a backend that honours them |
| `n` (1 only), `logprobs: false`, `user`, `metadata`, `store`, `usage`, `provider`, `session_id` | accepted: they change nothing in the answer |
| anything else (`tools`, `n: 2`, `logprobs: true`, ...) | refused, naming the parameter |

>>> chat_request("m", [{"role": "user", "content": "hi"}], json=True)["response_format"]
{'type': 'json_object'}
>>> parse_chat_request({"messages": [{"role": "user", "content": "hi"}], "seed": 7}).sampling
{'seed': 7}
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ...errors import WireFormatError
from ...types import Completion, Message
from .base import content_text, error_message, is_int, is_number, kind, read_usage, text_or_none, usage_body

__all__ = [
    "ACCEPTED", "SAMPLING", "SYSTEM_FINGERPRINT", "ChatRequest", "chat_request", "completion_body",
    "parse_chat_request", "read_completion", "response_format", "schema_of",
]

# What `system_fingerprint` says in every answer (OpenAI's and OpenRouter's schemas require the field).
SYSTEM_FINGERPRINT = "ragkit"


def _between(low: float, high: float) -> Callable[[object], bool]:
    return lambda v: is_number(v) and low <= v <= high


def _logit_bias(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and k.lstrip("-").isdigit() and is_number(v)
                                           and -100 <= v <= 100 for k, v in value.items())


# Sampling parameters, by OpenAI's names (platform.openai.com/docs/api-reference/chat/create; top_k and
# min_p as OpenRouter names them, openrouter.ai/docs/api-reference/parameters): check, and what it wants.
SAMPLING: dict[str, tuple[Callable[[object], bool], str]] = {
    "seed": (is_int, "a whole number"),
    "top_p": (_between(0, 1), "a number from 0 to 1"),
    "top_k": (lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
    "min_p": (_between(0, 1), "a number from 0 to 1"),
    "presence_penalty": (_between(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_between(-2, 2), "a number from -2 to 2"),
    "logit_bias": (_logit_bias, "an object of token id -> number from -100 to 100"),
}
# Read, or changing nothing in the answer: accepted as they are.
ACCEPTED = frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "stop",
                      "response_format", "stream", "stream_options", "n", "logprobs", "user", "metadata", "store",
                      "usage", "provider", "session_id"})
_WHY = {
    "tools": "this server's chat model does not call tools", "tool_choice": "this server's chat model does not call tools",
    "parallel_tool_calls": "this server's chat model does not call tools",
    "functions": "this server's chat model does not call functions",
    "function_call": "this server's chat model does not call functions",
    "top_logprobs": "this server does not return log-probabilities",
}


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
                 json: bool | dict = False, stop: Sequence[str] | None = None, stream: bool = False,
                 **sampling) -> dict:
    """Return the body of a chat request. A stream asks for usage in its last chunk (`stream_options`:
    OpenRouter always sends it, vLLM and OpenAI only when asked). `sampling`: see `SAMPLING`."""
    payload: dict = {"messages": list(messages), "max_tokens": int(max_tokens), "temperature": float(temperature)}
    if model is not None:
        payload = {"model": model, **payload}
    if json:
        payload["response_format"] = response_format(json)
    if stop:
        payload["stop"] = list(stop)
    payload.update(sampling)
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
    include_usage: bool = False  # `stream_options.include_usage`: a last chunk with `usage`, no choices
    sampling: dict = field(default_factory=dict)  # SAMPLING parameters the request set

    @property
    def options(self) -> dict:
        """The keyword arguments of `Backend.chat` (all but `stream`)."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "json": self.json,
                "stop": self.stop, **self.sampling}


def _messages(messages) -> list[Message]:
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
    return clean


def _refuse_the_rest(body: dict) -> dict:
    """Return the SAMPLING parameters set; raise for a parameter no answer here could honour."""
    for name, value in body.items():
        if value is None or name in ACCEPTED:
            continue
        if name in SAMPLING:
            check, wanted = SAMPLING[name]
            if not check(value):
                raise WireFormatError(f"`{name}` must be {wanted}, not {value!r:.60}", name)
            continue
        why = _WHY.get(name, "this server does not take it")
        raise WireFormatError(f"parameter `{name}` is not supported: {why}; leave it out", name)
    if body.get("n") not in (None, 1):
        raise WireFormatError(f"`n` must be 1: this server writes one answer per request, not {body['n']!r:.20}; "
                              f"send the request again for another", "n")
    if body.get("logprobs") not in (None, False):
        raise WireFormatError("parameter `logprobs` is not supported: this server does not return "
                              "log-probabilities; leave it out", "logprobs")
    return {k: v for k, v in body.items() if k in SAMPLING and v is not None}


def parse_chat_request(body: dict) -> ChatRequest:
    """Return a chat request's parts, checked, or raise naming the bad field."""
    clean = _messages(body.get("messages"))
    sampling = _refuse_the_rest(body)
    max_tokens = next((v for v in (body.get("max_tokens"), body.get("max_completion_tokens")) if v is not None), 256)
    if not is_int(max_tokens) or max_tokens < 1:
        raise WireFormatError("`max_tokens` must be a whole number of at least 1", "max_tokens")
    temperature = body.get("temperature")
    temperature = 0.0 if temperature is None else temperature
    if not is_number(temperature) or not 0 <= temperature <= 2:
        raise WireFormatError("`temperature` must be a number from 0 to 2", "temperature")
    json = schema_of(body.get("response_format"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise WireFormatError("`stream` must be true or false", "stream")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise WireFormatError("`stop` must be a string or a list of strings", "stop")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise WireFormatError(f"`stream_options` must be an object, not {kind(options)}", "stream_options")
    return ChatRequest(body.get("model"), clean, max_tokens, float(temperature), json, stop or None, stream,
                       bool(options.get("include_usage")), sampling)


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
            "model": c.model, "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason or "stop"}],
            "usage": usage_body(c.usage)}
