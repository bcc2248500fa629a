"""A backend's chat answer, served: its pieces read in worker threads, written as server-sent events,
and the generation stopped as soon as the client hangs up.

Every chat the server answers runs as a `ChatStream` (also a non-streamed one, collected here), so
a client that goes away stops its generation either way: the stream is closed, which the local
backend turns into llama.cpp stopping within a token.

>>> import asyncio
>>> from ragkit.types import ChatStream, StreamEnd, Usage
>>> class Echo:
...     def chat(self, messages, stream, **options):
...         return ChatStream(iter(["Hel", "lo", StreamEnd("echo", "length", Usage(1, 2, 2))]), "echo")
>>> ask = wire.parse_chat_request({"messages": [{"role": "user", "content": "hi"}]})
>>> asyncio.run(chat_answer(Echo(), ask))
Completion(text='Hello', model='echo', usage=Usage(requests=1, prompt_tokens=2, completion_tokens=2, cost=None), finish_reason='length')
"""
from __future__ import annotations

import time
import uuid
from typing import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse

from ..errors import APIError, BackendError
from ..types import ChatStream, Completion
from . import wire

__all__ = ["END", "EventStream", "chat_answer", "chat_events", "close", "open_stream", "pieces"]

END = object()  # what `next(stream, END)` returns when the answer is complete


async def open_stream(backend, ask: wire.ChatRequest) -> tuple[ChatStream, object]:
    """Start the backend's answer and read its first piece, so that a failure at once (a prompt over the
    context) gets an HTTP status rather than an error event; return both."""
    stream = await anyio.to_thread.run_sync(lambda: backend.chat(ask.messages, stream=True, **ask.options))
    try:
        first = await anyio.to_thread.run_sync(next, stream, END)
    except BaseException:
        await close(stream)
        raise
    return stream, first


async def pieces(stream: ChatStream, first: object) -> AsyncIterator[str]:
    """Yield the answer's text pieces, each read in a worker thread (the first one already read)."""
    piece = first
    while piece is not END:
        yield piece
        piece = await anyio.to_thread.run_sync(next, stream, END)


async def close(stream: ChatStream) -> None:
    """Close the stream (stopping its generation), also while the calling task is being cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(stream.close)


async def chat_answer(backend, ask: wire.ChatRequest) -> Completion:
    """Return the whole answer, collected from the backend's stream (closed on cancellation)."""
    stream, first = await open_stream(backend, ask)
    try:
        text = "".join([piece async for piece in pieces(stream, first)])
    finally:
        await close(stream)
    return Completion(text, stream.model, stream.usage, stream.finish_reason)


async def _events(stream: ChatStream, first: object, ask: wire.ChatRequest,
                  log: Callable[[str], None]) -> AsyncIterator[bytes]:
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict | None, finish: str | None = None, **extra) -> bytes:
        return wire.sse_event(wire.chunk_body(ident, created, stream.model, delta, finish, **extra))

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in pieces(stream, first):
            yield chunk({"content": piece})
    except Exception as exc:  # mid-answer: tell the client in the stream, as OpenRouter does
        if not isinstance(exc, (ValueError, TypeError, BackendError)):
            log(f"error mid-stream: {type(exc).__name__}: {exc}")
        status = exc.status if isinstance(exc, APIError) and exc.status else 500
        yield wire.sse_event(wire.error_chunk(ident, created, stream.model, status, f"{type(exc).__name__}: {exc}"))
        yield wire.sse_event(wire.DONE)
        return
    finally:
        await close(stream)
    yield chunk({}, stream.finish_reason or "stop")
    if ask.include_usage:  # OpenAI's rule: one more chunk, no choices, the usage
        yield chunk(None, usage=wire.usage_body(stream.usage))
    yield wire.sse_event(wire.DONE)


class EventStream(StreamingResponse):
    """A server-sent event stream that runs `on_close` when it ends, however it ends (also when the
    client hangs up, which Starlette turns into cancelling the stream)."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Callable[[], Awaitable[object]]):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events, self._on_close = events, on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._on_close()


def chat_events(stream: ChatStream, first: object, ask: wire.ChatRequest,
                on_close: Callable[[], Awaitable[object]], log: Callable[[str], None] = lambda line: None
                ) -> EventStream:
    """Return the response that streams the answer as chunks, then `data: [DONE]`."""
    return EventStream(_events(stream, first, ask, log), on_close)
