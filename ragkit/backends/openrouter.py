"""OpenRouter, or any OpenAI-compatible server (`ragkit serve`, vLLM, llama.cpp), as a ragkit backend.

It speaks the wire format of `ragkit.backends.wire` through one pooled connection
(`ragkit.backends.http`). Every call retries what is worth retrying (429, 408/5xx, timeouts, dropped
connections; for embeddings and rerank also a 200 whose body is cut short or not JSON), waits as the
server's `Retry-After` asks, and otherwise raises a typed error from
`ragkit.errors` that carries the server's own message:

| what happened                              | exception             |
|--------------------------------------------|-----------------------|
| 400 (or another 4xx)                       | `BadRequest`          |
| 401 / 402 / 403 / 404                      | `AuthenticationError` / `PaymentRequired` / `Forbidden` / `NotFound` |
| 429 still there after the retries          | `RateLimited`         |
| 408 / 5xx after the retries, error mid-answer | `ServerError`      |
| no connection / no answer in time          | `ConnectionFailed`    |
| not JSON, cut short, wrong shape           | `BadResponse`         |

The API key is never put in an error, a log line, `repr()` or `describe()`.

>>> b = OpenRouterBackend.from_env()                 # doctest: +SKIP
>>> b.embed(["a cat", "a dog"]).vectors.shape        # doctest: +SKIP
(2, 1536)
>>> print(b.chat([{"role": "user", "content": "Say hi"}]).text)   # doctest: +SKIP
Hi!
"""
from __future__ import annotations

import threading
import warnings
from typing import Iterator, Sequence
from urllib.parse import urlsplit

import httpx
import numpy as np

from .. import config
from ..embedder import truncation_message
from ..errors import AuthenticationError, WireFormatError
from ..types import ChatStream, Completion, Embeddings, Message, Ranked, RerankResult, StreamEnd, Usage, check_texts
from ..vectors import best_first, unit
from . import wire
from .http import RETRY_EXCEPTIONS, HTTPClient, is_openrouter, safe_url

__all__ = ["OpenRouterBackend"]


class OpenRouterBackend:
    """A backend that calls OpenRouter (or any OpenAI-compatible server) over HTTP.

    - `embed(texts)` sends `batch_size` texts a request and returns unit-length float32 vectors.
    - `rerank(query, documents, top_n)` returns the documents best first.
    - `chat(messages)` returns a `Completion`; `chat(..., stream=True)` a `ChatStream` of text pieces.
    - `usage` is the running total of requests answered, tokens and (when the server says) dollars.

    `api_key` may be None for local servers; OpenRouter needs one. Retries: at most `max_retries`
    more tries per request, waits growing from `backoff` to `max_backoff` seconds (with jitter, or
    as `Retry-After` asks), and never past `retry_budget` seconds in all.

    >>> b = OpenRouterBackend("http://127.0.0.1:8000/v1")    # `ragkit serve` on this machine
    >>> b.describe()
    'OpenAI-compatible server at 127.0.0.1:8000: embeddings local/all-MiniLM-L6-v2-int8, rerank local/default, chat local/SmolLM2-135M-Instruct-Q4_1'
    """

    def __init__(self, base_url: str = config.OPENROUTER_URL, api_key: str | None = None, *,
                 embedding_model: str | None = None, rerank_model: str | None = None,
                 chat_model: str | None = None, batch_size: int = 64, timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0,
                 retry_budget: float = 120.0, transport: httpx.BaseTransport | None = None):
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must look like 'https://openrouter.ai/api/v1' or "
                             f"'http://127.0.0.1:8000/v1', not {safe_url(base_url)!r}")
        if batch_size < 1 or max_retries < 0 or timeout <= 0 or retry_budget <= 0:
            raise ValueError("batch_size must be >= 1, max_retries >= 0, timeout and retry_budget > 0")
        self.base_url = base_url.rstrip("/")
        self.openrouter = is_openrouter(self.base_url)
        if self.openrouter and not api_key:
            raise AuthenticationError(
                "OpenRouter needs an API key: set OPENROUTER_API_KEY (create one at "
                "https://openrouter.ai/settings/keys), or unset it and RAGKIT_BASE_URL to use the "
                "local models")
        self.name = "openrouter" if self.openrouter else "openai-compatible"
        if self.openrouter:
            defaults = (config.OPENROUTER_EMBEDDING_MODEL, config.OPENROUTER_RERANK_MODEL,
                        config.OPENROUTER_CHAT_MODEL)
        else:
            defaults = (config.LOCAL_EMBEDDING_MODEL, config.LOCAL_RERANK_ALIAS, config.LOCAL_CHAT_MODEL)
        self.embedding_model = embedding_model or defaults[0]
        self.rerank_model = rerank_model or defaults[1]
        self.chat_model = chat_model or defaults[2]
        self.batch_size = int(batch_size)
        self.usage = Usage()
        self.reranked_by: str | None = None  # the model the server says reranked last
        self._lock = threading.Lock()
        self._http = HTTPClient(self.base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff,
                                max_backoff=max_backoff, retry_budget=retry_budget, transport=transport,
                                describe=self.describe)

    @classmethod
    def from_env(cls, **options) -> "OpenRouterBackend":
        """Return a backend configured from the environment (`ragkit.config`).

        `RAGKIT_BASE_URL` (default OpenRouter), `OPENROUTER_API_KEY` (sent to OpenRouter only;
        another server gets `RAGKIT_API_KEY`, if set), `RAGKIT_EMBEDDING_MODEL`,
        `RAGKIT_RERANK_MODEL`, `RAGKIT_CHAT_MODEL`. Keyword `options` go to the constructor.

        >>> OpenRouterBackend.from_env().describe()        # doctest: +SKIP
        'OpenRouter at openrouter.ai: embeddings openai/text-embedding-3-small, ...'
        """
        s = config.settings()
        base_url = s.base_url or config.OPENROUTER_URL
        settings = {
            "api_key": s.openrouter_api_key if is_openrouter(base_url) else s.api_key,
            "embedding_model": s.embedding_model,
            "rerank_model": s.rerank_model,
            "chat_model": s.chat_model,
        }
        return cls(base_url, **{**settings, **options})

    # -- what it is ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server's host (and port, if given): what messages name, never with credentials."""
        return self._http.host

    @property
    def origin(self) -> str:
        """Where its vectors come from: the base URL without credentials (the embedding cache keys by it)."""
        return safe_url(self.base_url)

    def describe(self) -> str:
        """Return one line saying which server and models this backend uses (never the key)."""
        kind = "OpenRouter" if self.openrouter else "OpenAI-compatible server"
        return (f"{kind} at {self.host}: embeddings {self.embedding_model}, "
                f"rerank {self.rerank_model}, chat {self.chat_model}")

    def __repr__(self) -> str:
        return (f"OpenRouterBackend(base_url={safe_url(self.base_url)!r}, "
                f"embedding_model={self.embedding_model!r}, rerank_model={self.rerank_model!r}, "
                f"chat_model={self.chat_model!r}, api_key={'<set>' if self._http._api_key else None})")

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "OpenRouterBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the three calls -----------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> Embeddings:
        """Return one unit-length float32 vector per text, `batch_size` texts a request.

        >>> OpenRouterBackend.from_env().embed(["a cat", "a dog"]).vectors.shape  # doctest: +SKIP
        (2, 1536)
        """
        items = check_texts(texts)
        blocks: list[np.ndarray] = []
        total = Usage()
        model = None
        cut = 0
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            body = self._http.post("embeddings", wire.embeddings_request(self.embedding_model, batch))
            block = self._read("embeddings", wire.read_embeddings, body, len(batch))
            if blocks and block.shape[1] != blocks[0].shape[1]:
                raise self._http.bad("embeddings", f"batches came back with {blocks[0].shape[1]}-d and "
                                               f"{block.shape[1]}-d vectors")
            blocks.append(block)
            model = model or wire.text_or_none(body.get("model"))
            total = total + self._record(body.get("usage"))
            if wire.is_int(body.get(wire.TRUNCATED_FIELD)):  # `ragkit serve` says its model cut some texts
                cut += body[wire.TRUNCATED_FIELD]
        if cut:
            warnings.warn(truncation_message(cut, len(items), f" at {self.host}"), stacklevel=2)
        vectors = np.vstack(blocks)
        zero = np.flatnonzero(np.linalg.norm(vectors, axis=1) == 0)
        if zero.size:
            raise self._http.bad("embeddings", f"the vectors for texts {[int(i) for i in zero]} are all zeros")
        return Embeddings(unit(vectors).astype(np.float32), model or self.embedding_model, total)

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> Ranked:
        """Return the documents re-scored against `query`, best first (the top `top_n` if given).

        >>> b = OpenRouterBackend.from_env()                                     # doctest: +SKIP
        >>> b.rerank("capital of France", ["Berlin is...", "Paris is..."]).results[0].index  # doctest: +SKIP
        1
        """
        check_texts([query], "query")
        docs = check_texts(documents, "documents")
        if top_n is not None and top_n <= 0:
            return Ranked([], self.rerank_model)
        body = self._http.post("rerank", wire.rerank_request(self.rerank_model, query, docs, top_n))
        scored = self._read("rerank", wire.read_rerank, body, len(docs))
        indices = np.array(sorted(scored), dtype=np.int64)  # ascending, so ties go to the lower index
        order = indices[best_first(np.array([scored[i] for i in indices]))] if scored else indices
        results = [RerankResult(int(i), scored[int(i)], docs[int(i)]) for i in order[:top_n]]
        self.reranked_by = wire.text_or_none(body.get("model")) or self.rerank_model
        return Ranked(results, self.reranked_by, self._record(body.get("usage")))

    @property
    def rerank_threshold(self) -> float | None:
        """The relevance threshold recommended for the reranker that scored (None: not known)."""
        return config.recommended_threshold(self.reranked_by or self.rerank_model)

    def chat(self, messages: list[Message], *, stream: bool = False, max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None):
        """Return the model's answer as a `Completion`, or with `stream=True` a `ChatStream` of pieces.

        `json=True` asks for a JSON object, `json=<a JSON schema>` for an object of that schema
        (`response_format` "json_object" / "json_schema"); `stop` lists strings at which the model
        stops writing.

        >>> b = OpenRouterBackend.from_env()                                      # doctest: +SKIP
        >>> for piece in b.chat([{"role": "user", "content": "Count to 3"}], stream=True):  # doctest: +SKIP
        ...     print(piece, end="")
        1, 2, 3
        """
        payload = wire.chat_request(self.chat_model, _check_messages(messages), max_tokens=max_tokens,
                                    temperature=temperature, json=json, stop=stop, stream=stream)
        if stream:
            return ChatStream(self._stream(payload), self.chat_model)
        return self._completion(self._http.post("chat/completions", payload))

    # -- reading answers -----------------------------------------------------------------------

    def _read(self, endpoint: str, reader, body: dict, *args):
        """Return `reader(body, *args)`, a malformed answer raised as `BadResponse`."""
        try:
            return reader(body, *args)
        except WireFormatError as exc:
            raise self._http.bad(endpoint, str(exc)) from None

    def _completion(self, body: dict) -> Completion:
        try:
            completion = wire.read_completion(body, self.chat_model)
        except WireFormatError as exc:
            if exc.detail is not None:  # the model failed mid-answer: an error with a status
                self._record(body.get("usage"))
                raise self._http.api_error(wire.error_status(exc.detail) or 502, "chat/completions", str(exc)) from None
            raise self._http.bad("chat/completions", str(exc)) from None
        return Completion(completion.text, completion.model, self._add(completion.usage), completion.finish_reason)

    def _stream(self, payload: dict) -> Iterator[str | StreamEnd]:
        endpoint = "chat/completions"
        answer = self._http.send(endpoint, payload, stream=True)
        if isinstance(answer, dict):  # a server that ignored stream=true: one piece
            completion = self._completion(answer)
            if completion.text:
                yield completion.text
            yield StreamEnd(completion.model, completion.finish_reason, completion.usage)
            return
        raw_usage, done, pieces = None, False, 0
        model, finish = None, None
        try:
            # SSE as OpenRouter sends it: `data: {chunk}` events, `: OPENROUTER PROCESSING`
            # comments to skip, `data: [DONE]` at the end; errors mid-answer come as a data event
            # with an `error` field (openrouter.ai/docs/api-reference/streaming).
            for data in wire.sse_data(answer.iter_lines()):
                if data == wire.DONE:
                    done = True
                    break
                try:
                    chunk = wire.read_stream_chunk(data)
                except WireFormatError as exc:
                    raise self._http.bad(endpoint, f"stream event {pieces + 1} {exc}") from None
                if chunk.error is not None:
                    raise self._http.api_error(wire.error_status(chunk.error) or 502, endpoint,
                                          f"{wire.error_message(chunk.error)} (after {pieces} pieces of the answer)")
                model = chunk.model or model
                raw_usage = chunk.usage if chunk.usage is not None else raw_usage
                finish = chunk.finish_reason or finish
                if chunk.text:
                    pieces += 1
                    yield chunk.text
        except RETRY_EXCEPTIONS as exc:
            raise self._http.bad(endpoint, f"the stream broke off after {pieces} pieces "
                                      f"({type(exc).__name__}); the answer is incomplete, ask again") from None
        finally:
            answer.close()
            usage = self._record(raw_usage)
        if not done:
            raise self._http.bad(endpoint, f"the stream ended after {pieces} pieces without `data: [DONE]`; "
                                      f"the answer may be incomplete, ask again")
        yield StreamEnd(model, finish, usage)

    def _record(self, raw) -> Usage:
        """Add one answered request (and its tokens and cost, if reported) to the running total."""
        return self._add(wire.read_usage(raw))

    def _add(self, usage: Usage) -> Usage:
        with self._lock:
            self.usage = self.usage + usage
        return usage


def _check_messages(messages) -> list[dict]:
    if isinstance(messages, (str, dict)) or not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list like "
                         "[{'role': 'user', 'content': 'What is RAG?'}]")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', not {m!r:.80}")
    return list(messages)
