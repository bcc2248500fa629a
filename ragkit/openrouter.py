"""OpenRouter, or any OpenAI-compatible server (`ragkit serve`, vLLM, llama.cpp), as a ragkit backend.

One pooled `httpx.Client` does all the talking. Every call retries what is worth retrying (429,
408/5xx, timeouts, dropped connections), waits as the server's `Retry-After` asks, and otherwise
raises a typed error from `ragkit.backends` that carries the server's own message:

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

import base64
import email.utils
import json as jsonlib
import logging
import math
import os
import random
import threading
import time
import warnings
from datetime import timezone
from typing import Iterator, Sequence
from urllib.parse import urlsplit

import httpx
import numpy as np

from . import models
from .embeddings import TRUNCATED_FIELD, truncation_message
from .backends import (
    OPENROUTER_URL, APIError, AuthenticationError, BadRequest, BadResponse, Completion,
    ConnectionFailed, Embeddings, Forbidden, Message, NotFound, PaymentRequired, Ranked, RateLimited,
    RerankResult, ServerError, Usage, check_texts, response_format,
)

log = logging.getLogger("ragkit.openrouter")

# Defaults on OpenRouter (model pages checked 2026-11: openrouter.ai/openai/text-embedding-3-small
# $0.02/M tokens, 1536-d; openrouter.ai/models/cohere/rerank-5-fast $0.02/M tokens, calibrated 0-1
# scores; openrouter.ai/google/gemini-2.5-flash-lite $0.10/M in, $0.40/M out, thinking off by default).
OPENROUTER_EMBEDDING_MODEL = "openai/text-embedding-3-small"
OPENROUTER_RERANK_MODEL = "cohere/rerank-5-fast"
OPENROUTER_CHAT_MODEL = "google/gemini-2.5-flash-lite"
# Anywhere else (`ragkit serve`, vLLM): the local models; the server resolves the rerank name.
LOCAL_RERANK_MODEL = "local/default"

# Worth another try: OpenRouter documents 408 (timed out), 429 (rate limited, with Retry-After),
# 502 (model down / bad upstream answer), 503 (no provider available); 500 and 504 are the usual
# transient server faults (https://openrouter.ai/docs/api/reference/errors-and-debugging).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

_ERRORS: dict[int, type[APIError]] = {
    400: BadRequest, 401: AuthenticationError, 402: PaymentRequired, 403: Forbidden,
    404: NotFound, 429: RateLimited,
}


def is_openrouter(base_url: str) -> bool:
    """Return True when `base_url` points at OpenRouter.

    >>> is_openrouter("https://openrouter.ai/api/v1"), is_openrouter("http://127.0.0.1:8000/v1")
    (True, False)
    """
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Return the wait, in seconds, that a `Retry-After` header asks for (seconds or an HTTP date).

    >>> retry_after_seconds("2.5"), retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0)
    (2.5, 6.0)
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


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

    def __init__(self, base_url: str = OPENROUTER_URL, api_key: str | None = None, *,
                 embedding_model: str | None = None, rerank_model: str | None = None,
                 chat_model: str | None = None, batch_size: int = 64, timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 0.5, max_backoff: float = 8.0,
                 retry_budget: float = 120.0, transport: httpx.BaseTransport | None = None):
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must look like 'https://openrouter.ai/api/v1' or "
                             f"'http://127.0.0.1:8000/v1', not {_safe_url(base_url)!r}")
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
            defaults = (OPENROUTER_EMBEDDING_MODEL, OPENROUTER_RERANK_MODEL, OPENROUTER_CHAT_MODEL)
        else:
            defaults = (models.EMBEDDING_MODEL, LOCAL_RERANK_MODEL, models.CHAT_MODEL)
        self.embedding_model = embedding_model or defaults[0]
        self.rerank_model = rerank_model or defaults[1]
        self.chat_model = chat_model or defaults[2]
        self.batch_size = int(batch_size)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.retry_budget = float(retry_budget)
        self.usage = Usage()
        self.reranked_by: str | None = None  # the model the server says reranked last
        self._api_key = api_key or None
        self._lock = threading.Lock()
        headers = {"User-Agent": "ragkit", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"  # httpx shows it as [secure]
        self._client = httpx.Client(base_url=self.base_url + "/", headers=headers,
                                    timeout=self.timeout, transport=transport)

    @classmethod
    def from_env(cls, **options) -> "OpenRouterBackend":
        """Return a backend configured from the environment.

        `RAGKIT_BASE_URL` (default OpenRouter), `OPENROUTER_API_KEY` (sent to OpenRouter only;
        another server gets `RAGKIT_API_KEY`, if set), `RAGKIT_EMBEDDING_MODEL`,
        `RAGKIT_RERANK_MODEL`, `RAGKIT_CHAT_MODEL`. Keyword `options` go to the constructor.

        >>> OpenRouterBackend.from_env().describe()        # doctest: +SKIP
        'OpenRouter at openrouter.ai: embeddings openai/text-embedding-3-small, ...'
        """
        env = os.environ
        base_url = env.get("RAGKIT_BASE_URL") or OPENROUTER_URL
        key_name = "OPENROUTER_API_KEY" if is_openrouter(base_url) else "RAGKIT_API_KEY"
        settings = {
            "api_key": env.get(key_name) or None,
            "embedding_model": env.get("RAGKIT_EMBEDDING_MODEL") or None,
            "rerank_model": env.get("RAGKIT_RERANK_MODEL") or None,
            "chat_model": env.get("RAGKIT_CHAT_MODEL") or None,
        }
        return cls(base_url, **{**settings, **options})

    # -- what it is ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server's host (and port, if given): what messages name, never with credentials."""
        parts = urlsplit(self.base_url)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return host + (f":{parts.port}" if parts.port else "")

    def describe(self) -> str:
        """Return one line saying which server and models this backend uses (never the key)."""
        kind = "OpenRouter" if self.openrouter else "OpenAI-compatible server"
        return (f"{kind} at {self.host}: embeddings {self.embedding_model}, "
                f"rerank {self.rerank_model}, chat {self.chat_model}")

    def __repr__(self) -> str:
        return (f"OpenRouterBackend(base_url={_safe_url(self.base_url)!r}, "
                f"embedding_model={self.embedding_model!r}, rerank_model={self.rerank_model!r}, "
                f"chat_model={self.chat_model!r}, api_key={'<set>' if self._api_key else None})")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

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
            # OpenAI's shape, which OpenRouter keeps: {"data": [{"index", "embedding"}], "model",
            # "usage": {"prompt_tokens", "total_tokens", "cost"}} (openrouter.ai/docs/api_reference/embeddings)
            body = self._post("embeddings", {"model": self.embedding_model, "input": batch,
                                             "encoding_format": "float"})
            block = self._vectors(body, len(batch))
            if blocks and block.shape[1] != blocks[0].shape[1]:
                raise self._bad("embeddings", f"batches came back with {blocks[0].shape[1]}-d and "
                                               f"{block.shape[1]}-d vectors")
            blocks.append(block)
            model = model or _text(body.get("model"))
            total = total + self._record(body.get("usage"))
            if isinstance(body.get(TRUNCATED_FIELD), int):  # `ragkit serve` says its model cut some texts
                cut += body[TRUNCATED_FIELD]
        if cut:
            warnings.warn(truncation_message(cut, len(items), f" at {self.host}"), stacklevel=2)
        vectors = np.vstack(blocks)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(norms > 0):
            bad = [int(i) for i in np.flatnonzero(norms[:, 0] == 0)]
            raise self._bad("embeddings", f"the vectors for texts {bad} are all zeros")
        return Embeddings((vectors / norms).astype(np.float32), model or self.embedding_model, total)

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
        payload: dict = {"model": self.rerank_model, "query": query, "documents": docs}
        if top_n is not None:
            payload["top_n"] = min(int(top_n), len(docs))
        # Request {model, query, documents, top_n}; answer {model, results: [{index,
        # relevance_score, document: {text}}], usage: {total_tokens, search_units, cost}}
        # (openrouter.ai/docs/sdks/typescript/api-reference/operations/creatererankresponsebody).
        body = self._post("rerank", payload)
        raw = body.get("results")
        if not isinstance(raw, list) or len(raw) > len(docs):
            raise self._bad("rerank", f"expected a `results` list of at most {len(docs)} items, "
                                      f"got {_kind(raw)}")
        scored: dict[int, float] = {}
        for pos, item in enumerate(raw):
            index = item.get("index") if isinstance(item, dict) else None
            score = item.get("relevance_score") if isinstance(item, dict) else None
            if not _is_int(index) or not 0 <= index < len(docs) or index in scored:
                raise self._bad("rerank", f"results[{pos}] has index {index!r}: want each of "
                                          f"0..{len(docs) - 1} at most once")
            if not _is_number(score) or not math.isfinite(score):
                raise self._bad("rerank", f"results[{pos}] has relevance_score {score!r}, not a number")
            scored[index] = float(score)
        order = sorted(scored, key=lambda i: (-scored[i], i))[:top_n]
        results = [RerankResult(i, scored[i], docs[i]) for i in order]
        self.reranked_by = _text(body.get("model")) or self.rerank_model
        return Ranked(results, self.reranked_by, self._record(body.get("usage")))

    @property
    def rerank_threshold(self) -> float | None:
        """The relevance threshold recommended for the reranker that scored (None: not known)."""
        from .rerankers import recommended_threshold

        return recommended_threshold(self.reranked_by or self.rerank_model)

    def chat(self, messages: list[Message], *, stream: bool = False, max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None):
        """Return the model's answer as a `Completion`, or with `stream=True` a `ChatStream` of pieces.

        `json=True` asks for a JSON object, `json=<a JSON schema>` for an object of that schema
        (`response_format` "json_object" / "json_schema"); `stop`
        lists strings at which the model stops writing.

        >>> b = OpenRouterBackend.from_env()                                      # doctest: +SKIP
        >>> for piece in b.chat([{"role": "user", "content": "Count to 3"}], stream=True):  # doctest: +SKIP
        ...     print(piece, end="")
        1, 2, 3
        """
        payload: dict = {"model": self.chat_model, "messages": _check_messages(messages),
                         "max_tokens": int(max_tokens), "temperature": float(temperature)}
        if json:
            payload["response_format"] = response_format(json)
        if stop:
            payload["stop"] = list(stop)
        if stream:
            # OpenRouter always sends usage in the last chunk; vLLM and OpenAI need stream_options.
            payload.update(stream=True, stream_options={"include_usage": True})
            return ChatStream(self, payload)
        return self._completion(self._post("chat/completions", payload))

    # -- parsing answers -----------------------------------------------------------------------

    def _vectors(self, body: dict, n: int) -> np.ndarray:
        data = body.get("data")
        if not isinstance(data, list):
            raise self._bad("embeddings", f"expected a `data` list, got {_kind(data)}")
        if len(data) != n:
            raise self._bad("embeddings", f"sent {n} texts but got {len(data)} vectors back")
        rows: list = [None] * n
        for pos, item in enumerate(data):
            index = item.get("index") if isinstance(item, dict) else None
            if not _is_int(index) or not 0 <= index < n:
                raise self._bad("embeddings", f"data[{pos}] has index {index!r}, want 0..{n - 1}")
            if rows[index] is not None:
                seen = {d.get("index") for d in data if isinstance(d, dict)}
                missing = [i for i in range(n) if i not in seen]
                raise self._bad("embeddings", f"index {index} comes twice and {missing} never")
            rows[index] = _vector(item.get("embedding"))
            if rows[index] is None:
                raise self._bad("embeddings", f"data[{pos}].embedding is not a list of finite numbers")
        dims = {len(r) for r in rows}
        if len(dims) != 1 or 0 in dims:
            raise self._bad("embeddings", f"vectors of different or zero lengths: {sorted(dims)}")
        return np.vstack(rows)

    def _completion(self, body: dict) -> Completion:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._bad("chat/completions", f"expected a non-empty `choices` list, got {_kind(choices)}")
        choice = choices[0]
        usage = self._record(body.get("usage"))
        if choice.get("error") or choice.get("finish_reason") == "error":
            raise self._api_error(_error_status(choice.get("error")) or 502, "chat/completions",
                                  _error_message(choice.get("error")) or "the model failed mid-answer")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise self._bad("chat/completions", "choices[0] has no `message` object")
        return Completion(_content(message.get("content")), _text(body.get("model")) or self.chat_model,
                          usage, _text(choice.get("finish_reason")))

    def _record(self, raw) -> Usage:
        """Add one answered request (and its tokens and cost, if reported) to the running total."""
        u = raw if isinstance(raw, dict) else {}
        prompt, completion = _count(u.get("prompt_tokens")), _count(u.get("completion_tokens"))
        if not prompt and not completion:
            prompt = _count(u.get("total_tokens"))
        cost = u.get("cost")
        usage = Usage(1, prompt, completion, float(cost) if _is_number(cost) else None)
        with self._lock:
            self.usage = self.usage + usage
        return usage

    # -- sending, with retries -----------------------------------------------------------------

    def _post(self, endpoint: str, payload: dict) -> dict:
        """POST `payload` as JSON with retries; return the JSON answer."""
        answer = self._send(endpoint, payload, stream=False)
        assert isinstance(answer, dict)
        return answer

    def _send(self, endpoint: str, payload: dict, *, stream: bool) -> dict | httpx.Response:
        """POST with retries. Return the JSON answer, or (stream=True) the open event-stream response."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            # Each try gets at most what is left of the budget; a stream keeps the full timeout,
            # as it is also the longest pause allowed between two pieces of the answer.
            remaining = self.retry_budget - (time.monotonic() - started)
            limit = self.timeout if stream else max(0.05, min(self.timeout, remaining))
            request = self._client.build_request(
                "POST", endpoint, json=payload, timeout=httpx.Timeout(limit, connect=min(limit, 10.0)),
                headers={"Accept": "text/event-stream"} if stream else None)
            wait = None
            try:
                response = self._client.send(request, stream=stream)
                if stream and response.is_success and _is_event_stream(response):
                    return response  # the caller reads the events and closes it
                try:
                    response.read()
                finally:
                    response.close()
            except _RETRY_EXCEPTIONS as exc:
                failure = self._network_error(endpoint, exc)
                cause: BaseException | None = exc
            except httpx.HTTPError as exc:  # not worth retrying (e.g. a bad proxy setting)
                raise self._network_error(endpoint, exc) from exc
            else:
                cause = None
                failure = self._check(endpoint, response)
                if isinstance(failure, dict):
                    return failure
                wait = retry_after_seconds(response.headers.get("retry-after"))
            # Another try? Only within max_retries and the time budget, and as long as asked.
            if wait is None:
                ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                wait = ceiling / 2 + random.uniform(0, ceiling / 2)
            elapsed = time.monotonic() - started
            if attempt > self.max_retries or elapsed + wait > self.retry_budget:
                if attempt > self.max_retries:
                    why = f"gave up after {attempt} attempts in {elapsed:.1f}s"
                else:
                    why = (f"gave up after {attempt} attempt{'s' * (attempt > 1)}: the next wait "
                           f"({wait:.1f}s) would pass the {self.retry_budget:g}s retry budget")
                final = type(failure)(f"{failure} ({why})", status=failure.status,
                                      endpoint=failure.endpoint, server_message=failure.server_message)
                raise final from cause
            log.warning("%s; retrying in %.2fs (attempt %d of %d)", failure, wait, attempt + 1,
                        self.max_retries + 1)
            time.sleep(wait)

    def _check(self, endpoint: str, response: httpx.Response) -> dict | APIError:
        """Return the JSON answer, or a retryable error; raise errors not worth retrying."""
        status = response.status_code
        if response.is_redirect:  # httpx does not follow redirects unless asked: say where to go
            location = _safe_url(str(response.request.url.join(response.headers.get("location", ""))))
            raise NotFound(self._scrub(f"POST {self._path(endpoint)} on {self.host} was redirected "
                                       f"(HTTP {status}) to {location}; use that address as base_url"),
                           status=status, endpoint=self._path(endpoint))
        if not response.is_success:
            message = _server_message(response)
            error = self._api_error(status, endpoint, message)
            if status in RETRY_STATUSES:
                return error
            raise error
        body = self._json(endpoint, response)
        if _is_error_body(body):
            # OpenRouter: "the returned HTTP response status will be 200 and any error occurred
            # while the LLM is producing the output will be emitted in the response body"
            # (openrouter.ai/docs/api/reference/errors-and-debugging).
            code = _error_status(body.get("error")) or _error_status(body)
            error = self._api_error(code or 502, endpoint, _error_message(body))
            if code in RETRY_STATUSES:
                return error
            raise error
        return body

    def _json(self, endpoint: str, response: httpx.Response) -> dict:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            snippet = response.text[:120].replace("\n", " ")
            raise self._bad(endpoint, f"the answer is not JSON ({len(response.content)} bytes, "
                                      f"content-type {response.headers.get('content-type')!r}, "
                                      f"starting {snippet!r})") from None
        if not isinstance(body, dict):
            raise self._bad(endpoint, f"expected a JSON object, got {_kind(body)}")
        return body

    # -- errors --------------------------------------------------------------------------------

    def _path(self, endpoint: str) -> str:
        return urlsplit(self.base_url).path.rstrip("/") + "/" + endpoint

    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[API key]")
        return text

    def _api_error(self, status: int, endpoint: str, server_message: str) -> APIError:
        cls = _ERRORS.get(status) or (BadRequest if 400 <= status < 500 and status != 408 else ServerError)
        server_message = self._scrub(server_message)
        text = (f"POST {self._path(endpoint)} on {self.host} failed with HTTP {status}: "
                f"{server_message}. {self._hint(status)}")
        return cls(text, status=status, endpoint=self._path(endpoint), server_message=server_message)

    def _hint(self, status: int) -> str:
        if status == 401:
            return ("Check OPENROUTER_API_KEY (keys: https://openrouter.ai/settings/keys)" if self.openrouter
                    else "Check the API key this server expects (RAGKIT_API_KEY)")
        if status == 402:
            return "Add credits at https://openrouter.ai/settings/credits, or pick a cheaper model"
        if status == 403:
            return "The request was refused (moderation, a guardrail or the key's permissions)"
        if status == 404:
            return (f"Check base_url ({_safe_url(self.base_url)}: OpenRouter's ends in /api/v1, "
                    f"ragkit serve's and vLLM's in /v1) and the model names")
        if status == 429:
            return "Wait a little, send smaller batches, or pick a model with more capacity"
        if status == 408 or status >= 500:
            return "The server or model provider is having trouble; try again later or another model"
        return f"Check the model names ({self.describe()}) and the request"

    def _network_error(self, endpoint: str, exc: httpx.HTTPError) -> ConnectionFailed:
        what = {httpx.ConnectTimeout: "could not connect in time", httpx.ConnectError: "could not connect",
                httpx.ReadTimeout: f"no answer within {self.timeout:g}s",
                httpx.RemoteProtocolError: "the connection dropped before the answer was complete",
                }.get(type(exc), type(exc).__name__)
        detail = self._scrub(str(exc))[:200]
        hint = "" if self.openrouter else " Is `ragkit serve` (or your server) running there?"
        return ConnectionFailed(f"POST {self._path(endpoint)} on {self.host}: {what} ({detail}).{hint}",
                                endpoint=self._path(endpoint), server_message=None)

    def _bad(self, endpoint: str, what: str) -> BadResponse:
        return BadResponse(self._scrub(f"POST {self._path(endpoint)} on {self.host} answered "
                                       f"badly: {what}"), endpoint=self._path(endpoint))


class ChatStream:
    """The pieces of a streamed chat answer, as they arrive (an iterator of str).

    When the loop ends: `text` (all pieces), `model`, `finish_reason` and `usage` (from the last
    chunk, when the server reports it). Stop early with `close()`.
    """

    def __init__(self, backend: OpenRouterBackend, payload: dict):
        self.text = ""
        self.model = backend.chat_model
        self.finish_reason: str | None = None
        self.usage = Usage()
        self._backend = backend
        self._pieces = self._run(payload)

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop reading and drop the connection."""
        self._pieces.close()

    def __repr__(self) -> str:
        return f"ChatStream(model={self.model!r}, text={self.text[:40]!r}, finish_reason={self.finish_reason!r})"

    def _run(self, payload: dict) -> Iterator[str]:
        b, endpoint = self._backend, "chat/completions"
        answer = b._send(endpoint, payload, stream=True)
        if isinstance(answer, dict):  # a server that ignored stream=true: one piece
            completion = b._completion(answer)
            self.text, self.model = completion.text, completion.model
            self.finish_reason, self.usage = completion.finish_reason, completion.usage
            if completion.text:
                yield completion.text
            return
        raw_usage, done, pieces = None, False, 0
        try:
            # SSE as OpenRouter sends it: `data: {chunk}` events, `: OPENROUTER PROCESSING`
            # comments to skip, `data: [DONE]` at the end; errors mid-answer come as a data event
            # with an `error` field (openrouter.ai/docs/api-reference/streaming).
            for data in _sse_data(answer):
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = jsonlib.loads(data)
                except ValueError:
                    raise b._bad(endpoint, f"stream event {pieces + 1} is not JSON: {data[:80]!r}") from None
                if not isinstance(chunk, dict):
                    raise b._bad(endpoint, f"stream event is {_kind(chunk)}, not an object")
                if _is_error_body(chunk):
                    raise b._api_error(_error_status(chunk.get("error")) or 502, endpoint,
                                       f"{_error_message(chunk)} (after {pieces} pieces of the answer)")
                self.model = _text(chunk.get("model")) or self.model
                if isinstance(chunk.get("usage"), dict):
                    raw_usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue
                    if choice.get("finish_reason") == "error" or choice.get("error"):
                        raise b._api_error(_error_status(choice.get("error")) or 502, endpoint,
                                           f"{_error_message(choice.get('error')) or 'the model failed'}"
                                           f" (after {pieces} pieces of the answer)")
                    self.finish_reason = _text(choice.get("finish_reason")) or self.finish_reason
                    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                    piece = _content(delta.get("content"))
                    if piece:
                        pieces += 1
                        self.text += piece
                        yield piece
        except _RETRY_EXCEPTIONS as exc:
            raise b._bad(endpoint, f"the stream broke off after {pieces} pieces "
                                   f"({type(exc).__name__}); the answer is incomplete, ask again") from None
        finally:
            answer.close()
            self.usage = b._record(raw_usage)
        if not done:
            raise b._bad(endpoint, f"the stream ended after {pieces} pieces without `data: [DONE]`; "
                                   f"the answer may be incomplete, ask again")


# -- small helpers ---------------------------------------------------------------------------------

def _sse_data(response: httpx.Response) -> Iterator[str]:
    """Yield the data of each server-sent event (lines joined), skipping comments and other fields."""
    lines: list[str] = []
    for line in response.iter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        # `: comment`, `event:`, `id:`, `retry:` carry nothing ragkit needs
    if lines:
        yield "\n".join(lines)


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip() == "text/event-stream"


def _check_messages(messages) -> list[dict]:
    if isinstance(messages, (str, dict)) or not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list like "
                         "[{'role': 'user', 'content': 'What is RAG?'}]")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or "content" not in m:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', not {m!r:.80}")
    return list(messages)


def _is_error_body(body) -> bool:
    # OpenRouter / OpenAI: {"error": {...}}; vLLM: {"object": "error", "message": ...}
    return isinstance(body, dict) and (bool(body.get("error")) or body.get("object") == "error")


def _error_status(error) -> int | None:
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if _is_int(code) and 100 <= code <= 599 else None


def _error_message(body) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            return str(message) if message else jsonlib.dumps(error)[:300]
        if error:
            return str(error)
    return ""


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip()[:300] or response.reason_phrase or "no message"
    if isinstance(body, dict):
        return _error_message(body) or jsonlib.dumps(body)[:300]
    return jsonlib.dumps(body)[:300]


def _vector(raw) -> np.ndarray | None:
    if isinstance(raw, str):  # base64 float32, in case the server ignored encoding_format
        try:
            return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float64)
        except ValueError:
            return None
    if not isinstance(raw, list) or not all(_is_number(x) for x in raw):
        return None
    vec = np.asarray(raw, dtype=np.float64)
    return vec if np.all(np.isfinite(vec)) else None


def _content(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _safe_url(url: str) -> str:
    """The URL without user:password@ or ?query, either of which may hold a secret."""
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "(not a URL)"


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value) -> int:
    return int(value) if _is_number(value) and value >= 0 else 0


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "nothing" if value is None else f"a {type(value).__name__}"
