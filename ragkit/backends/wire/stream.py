"""Streamed chat answers on the wire: server-sent events, each carrying one chunk.

A stream is `data: {chunk}` events, then `data: [DONE]`. The last chunk with a choice carries the
`finish_reason`; when the request asked for `stream_options.include_usage`, one more chunk follows
with no choices and the `usage` (OpenAI's rule). An error after the answer began comes as a chunk
whose choice ends with `finish_reason: "error"` and that carries an `error` object (OpenRouter's rule,
openrouter.ai/docs/api-reference/streaming).

>>> list(sse_data([": keep-alive", "data: {}", "", "data: [DONE]", ""]))
['{}', '[DONE]']
>>> read_stream_chunk('{"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "length"}]}')
StreamChunk(text='Hi', model=None, finish_reason='length', usage=None, error=None)
"""
from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from ...errors import WireFormatError
from .base import content_text, error_body, error_message, is_error_body, kind, text_or_none
from .chat import SYSTEM_FINGERPRINT

__all__ = ["DONE", "StreamChunk", "chunk_body", "error_chunk", "read_stream_chunk", "sse_data", "sse_event"]

DONE = "[DONE]"  # the data of the last server-sent event of a stream


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield the data of each server-sent event (its `data:` lines joined), skipping comments and the
    other fields (`: OPENROUTER PROCESSING`, `event:`, `id:`, `retry:` carry nothing ragkit needs)."""
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


def chunk_body(ident: str, created: int, model: str, delta: dict | None, finish: str | None = None,
               **extra) -> dict:
    """Return one chunk of a streamed chat answer (`delta=None`: the usage chunk, with no choices)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT, "choices": choices, **extra}


def error_chunk(ident: str, created: int, model: str, status: int, message: str) -> dict:
    """Return the chunk that reports an error mid-answer: the choice ends with "error", `error` says why.

    >>> error_chunk("c1", 0, "m", 500, "the model fell over")["error"]["code"]
    500
    """
    return {**chunk_body(ident, created, model, {}, "error"), **error_body(status, message)}
