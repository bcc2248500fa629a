"""HTTP for the OpenRouter backend: one pooled connection, retries where they can help, typed errors.

`HTTPClient.post(endpoint, payload)` sends one JSON request and returns the JSON answer (or, for a
stream, the open event-stream response), trying again on 429, 408/5xx, timeouts and dropped
connections (and, for embeddings and rerank, a 200 whose body is cut short or not JSON) within
`max_retries` and `retry_budget`, as the server's `Retry-After` asks. What is not worth retrying,
or still fails after the retries, is raised as the `APIError` for its status (see
`ragkit.backends.openrouter` for the table), with the server's own message and a hint. The API key
never appears in an error, a log line or a repr.
"""
from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import time
from datetime import timezone
from typing import Callable
from urllib.parse import urlsplit

import httpx

from ..errors import (
    APIError, AuthenticationError, BadRequest, BadResponse, ConnectionFailed, Forbidden, NotFound,
    PaymentRequired, RateLimited, ServerError,
)
from . import wire

__all__ = ["IDEMPOTENT", "RETRY_EXCEPTIONS", "RETRY_STATUSES", "HTTPClient", "is_openrouter", "retry_after_seconds",
           "safe_url"]

log = logging.getLogger("ragkit.openrouter")

# Worth another try: OpenRouter documents 408 (timed out), 429 (rate limited, with Retry-After),
# 502 (model down / bad upstream answer), 503 (no provider available); 500 and 504 are the usual
# transient server faults (https://openrouter.ai/docs/api/reference/errors-and-debugging).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# Safe to send again: asking twice changes nothing and costs only the tokens. A 200 whose body is cut
# short or is not JSON (a proxy's page, a server that died mid-write) is retried on these like a 502;
# a chat answer is not (it may be a different answer, and is paid again).
IDEMPOTENT = frozenset({"embeddings", "rerank"})

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


def safe_url(url: str) -> str:
    """Return the URL without user:password@ or ?query, either of which may hold a secret.

    >>> safe_url("https://me:secret@example.com/v1?key=abc")
    'https://example.com/v1'
    """
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else "(not a URL)"


class HTTPClient:
    """One server's connection pool, its retry policy, and the errors its answers turn into.

    `describe` returns the backend's one-line description, for the hint of an unexplained 4xx.
    """

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, max_retries: int, backoff: float,
                 max_backoff: float, retry_budget: float, transport: httpx.BaseTransport | None = None,
                 describe: Callable[[], str] = lambda: "the models"):
        self.base_url = base_url.rstrip("/")
        self.openrouter = is_openrouter(self.base_url)
        self.timeout, self.max_retries, self.retry_budget = float(timeout), int(max_retries), float(retry_budget)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.describe = describe
        self._api_key = api_key or None
        headers = {"User-Agent": "ragkit", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"  # httpx shows it as [secure]
        self.client = httpx.Client(base_url=self.base_url + "/", headers=headers, timeout=self.timeout,
                                   transport=transport)

    @property
    def host(self) -> str:
        """The server's host (and port, if given): what messages name, never with credentials."""
        parts = urlsplit(self.base_url)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return host + (f":{parts.port}" if parts.port else "")

    def close(self) -> None:
        self.client.close()

    def post(self, endpoint: str, payload: dict) -> dict:
        """POST `payload` as JSON with retries; return the JSON answer."""
        answer = self.send(endpoint, payload, stream=False)
        assert isinstance(answer, dict)
        return answer

    def send(self, endpoint: str, payload: dict, *, stream: bool) -> dict | httpx.Response:
        """POST with retries. Return the JSON answer, or (stream=True) the open event-stream response."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            # Each try gets at most what is left of the budget; a stream keeps the full timeout,
            # as it is also the longest pause allowed between two pieces of the answer.
            remaining = self.retry_budget - (time.monotonic() - started)
            limit = self.timeout if stream else max(0.05, min(self.timeout, remaining))
            request = self.client.build_request(
                "POST", endpoint, json=payload, timeout=httpx.Timeout(limit, connect=min(limit, 10.0)),
                headers={"Accept": "text/event-stream"} if stream else None)
            wait = None
            try:
                response = self.client.send(request, stream=stream)
                if stream and response.is_success and _is_event_stream(response):
                    return response  # the caller reads the events and closes it
                try:
                    response.read()
                finally:
                    response.close()
            except RETRY_EXCEPTIONS as exc:
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
            self._pause(failure, cause, attempt, started, wait)

    def _pause(self, failure: APIError, cause: BaseException | None, attempt: int, started: float,
               wait: float | None) -> None:
        """Sleep before the next try; raise `failure` when there is no next try (retries or budget spent)."""
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
        log.warning("%s; retrying in %.2fs (attempt %d of %d)", failure, wait, attempt + 1, self.max_retries + 1)
        time.sleep(wait)

    def _check(self, endpoint: str, response: httpx.Response) -> dict | APIError:
        """Return the JSON answer, or a retryable error; raise errors not worth retrying."""
        status = response.status_code
        if response.is_redirect:  # httpx does not follow redirects unless asked: say where to go
            location = safe_url(str(response.request.url.join(response.headers.get("location", ""))))
            raise NotFound(self._scrub(f"POST {self._path(endpoint)} on {self.host} was redirected "
                                       f"(HTTP {status}) to {location}; use that address as base_url"),
                           status=status, endpoint=self._path(endpoint))
        if not response.is_success:
            message = _server_message(response)
            error = self.api_error(status, endpoint, message)
            if status in RETRY_STATUSES:
                return error
            raise error
        try:
            body = self._json(endpoint, response)
        except BadResponse as exc:
            if endpoint in IDEMPOTENT:
                return exc
            raise
        if wire.is_error_body(body):
            # OpenRouter: "the returned HTTP response status will be 200 and any error occurred
            # while the LLM is producing the output will be emitted in the response body"
            # (openrouter.ai/docs/api/reference/errors-and-debugging).
            code = wire.error_status(body.get("error")) or wire.error_status(body)
            error = self.api_error(code or 502, endpoint, wire.error_message(body))
            if code in RETRY_STATUSES:
                return error
            raise error
        return body

    def _json(self, endpoint: str, response: httpx.Response) -> dict:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            snippet = response.text[:120].replace("\n", " ")
            raise self.bad(endpoint, f"the answer is not JSON ({len(response.content)} bytes, "
                                      f"content-type {response.headers.get('content-type')!r}, "
                                      f"starting {snippet!r})") from None
        if not isinstance(body, dict):
            raise self.bad(endpoint, f"expected a JSON object, got {wire.kind(body)}")
        return body

    # -- errors --------------------------------------------------------------------------------

    def _path(self, endpoint: str) -> str:
        return urlsplit(self.base_url).path.rstrip("/") + "/" + endpoint

    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "[API key]")
        return text

    def api_error(self, status: int, endpoint: str, server_message: str) -> APIError:
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
            return (f"Check base_url ({safe_url(self.base_url)}: OpenRouter's ends in /api/v1, "
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

    def bad(self, endpoint: str, what: str) -> BadResponse:
        return BadResponse(self._scrub(f"POST {self._path(endpoint)} on {self.host} answered "
                                       f"badly: {what}"), endpoint=self._path(endpoint))




def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip() == "text/event-stream"


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip()[:300] or response.reason_phrase or "no message"
    if isinstance(body, dict):
        return wire.error_message(body) or json.dumps(body)[:300]
    return json.dumps(body)[:300]
