"""What keeps a served room safe and fair: limits on what one request may ask, a token, checks on
where a request comes from, a bounded queue per model and a cap per client.

- `Limits`: every limit `ragkit serve` enforces, each refused with a 4xx that names it;
- `Gate`: one model's queue, first come first served: `workers` requests run, at most `size` wait, and
  the next one gets 429 with a `Retry-After` estimated from how long requests take;
- `ClientCap`: at most `per_client` requests in flight (waiting or running) per client address, so one
  learner cannot fill a queue;
- `Guard`: the ASGI middleware in front of the app: one log line per request (never a header), the
  `Host` and `Origin` checks (a web page cannot post to the server from another site), the bearer
  token, JSON bodies only, and the body size.

>>> Limits().max_tokens, Limits().per_client
(4096, 4)
"""
from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from . import wire

__all__ = ["ClientCap", "Gate", "Guard", "HTTPProblem", "Limits", "check_inputs", "depth", "is_loopback", "read_json"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Limits:
    """What one request may ask of `ragkit serve` (each a command-line option, see `ragkit serve --help`)."""

    max_body_bytes: int = 4 * 1024 * 1024  # a request body
    max_inputs: int = 256                  # texts in one embeddings request, documents in one rerank
    max_text_chars: int = 32_000           # one text, query, document or chat message
    max_depth: int = 32                    # JSON nesting
    max_tokens: int = 4096                 # a chat answer's `max_tokens` (the packaged model's context)
    queue: int = 64                        # requests waiting per model, beyond those running
    per_client: int = 4                    # requests in flight per client address


class HTTPProblem(Exception):
    """An error to answer as `{"error": {...}}` with this HTTP status (and headers, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, param: str | None = None, *, kind: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind
        self.headers = headers or {}

    def body(self) -> bytes:
        return json.dumps(wire.error_body(self.status, self.message, self.param, kind=self.kind)).encode()


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("127.0.0.9")
    (True, False, True)
    """
    host = host.strip("[]")
    return host in LOOPBACK_NAMES or host.startswith("127.")


def depth(value) -> int:
    """Return how deeply a JSON value nests (a scalar: 0), without recursion.

    >>> depth({"a": [1, {"b": []}]})
    4
    """
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(raw: bytes, limits: Limits) -> dict:
    """Return a request body as a JSON object, or raise `HTTPProblem` saying what is wrong with it."""
    if not raw:
        raise HTTPProblem(400, "the request has no body: send a JSON object")
    try:
        body = json.loads(raw)
    except RecursionError:
        body = None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, f"the request body is not valid JSON ({exc})") from None
    if body is None or depth(body) > limits.max_depth:
        raise HTTPProblem(400, f"the request body nests deeper than this server's limit of {limits.max_depth} "
                               f"levels (ragkit serve --max-depth)")
    if not isinstance(body, dict):
        raise HTTPProblem(400, f"the request body must be a JSON object, not {wire.kind(body)}")
    return body


class Gate:
    """One model's queue: `workers` requests run at once, at most `size` wait, first come first served.

    Use `async with gate:`. A full queue raises `HTTPProblem(429)` with a `Retry-After` of about the
    time the queue ahead takes to drain. Works on whichever event loop runs it.
    """

    def __init__(self, name: str, workers: int, size: int):
        self.name, self.workers, self.size = name, workers, size
        self.running = 0
        self.waiting: deque[asyncio.Future] = deque()
        self.seconds = 1.0  # moving average of how long a request holds a worker

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead, drained by the workers."""
        return max(1, min(60, math.ceil(self.seconds * (len(self.waiting) + 1) / self.workers)))

    async def __aenter__(self) -> "Gate":
        if self.running < self.workers and not self.waiting:
            self.running += 1
        elif len(self.waiting) >= self.size:
            raise HTTPProblem(429, f"the {self.name} queue is full ({self.size} requests waiting); try again "
                                   f"in {self.retry_after()} s", headers={"Retry-After": str(self.retry_after())})
        else:
            turn = asyncio.get_running_loop().create_future()
            self.waiting.append(turn)
            try:
                await turn  # a leaving request hands its worker over: `running` stays as it is
            except BaseException:
                if turn in self.waiting:
                    self.waiting.remove(turn)
                elif turn.done() and not turn.cancelled():
                    self._hand_over()  # given a worker just as it was cancelled: pass it on
                raise
        self._started = time.monotonic()
        return self

    async def __aexit__(self, *exc) -> None:
        self.seconds = 0.8 * self.seconds + 0.2 * (time.monotonic() - self._started)
        self._hand_over()

    def _hand_over(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1

    def status(self) -> dict:
        return {"running": self.running, "waiting": len(self.waiting), "queue": self.size, "workers": self.workers}


class ClientCap:
    """At most `limit` requests in flight per client address (`with cap.hold(address):`)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight: dict[str, int] = {}

    def take(self, client: str) -> None:
        if self.in_flight.get(client, 0) >= self.limit:
            raise HTTPProblem(429, f"you already have {self.limit} requests waiting or running, the most one "
                                   f"client may have here (ragkit serve --per-client); wait for their answers",
                              headers={"Retry-After": "1"})
        self.in_flight[client] = self.in_flight.get(client, 0) + 1

    def give_back(self, client: str) -> None:
        left = self.in_flight.get(client, 1) - 1
        if left:
            self.in_flight[client] = left
        else:
            self.in_flight.pop(client, None)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _host_part(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware: log each request; refuse a wrong Host or a foreign Origin, a missing token, a body
    that is not JSON or is too big, each with a JSON error that says what to do.

    `hosts`: the Host names answered (None: any); `token`: the bearer token required on all but `/health`
    (None: no authentication); `origins`: web origins allowed besides the server's own.
    """

    def __init__(self, app, *, limits: Limits, token: str | None, hosts: frozenset[str] | None,
                 origins: frozenset[str] = frozenset(), log: Callable[[str], None] = lambda line: None):
        self.app, self.limits, self.token, self.hosts, self.origins, self.log = app, limits, token, hosts, origins, log

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]

        async def logged_send(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            self._check(scope)
            await self.app(scope, self._limited(receive), logged_send)
        except HTTPProblem as problem:
            if not status[0]:
                await _send_problem(problem, logged_send)
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.log(f"{scope['method']} {scope['path']} {status[0] or '-'} {ms:.0f} ms")

    def _check(self, scope) -> None:
        host = _header(scope, b"host") or ""
        if self.hosts is not None and _host_part(host) not in self.hosts:
            raise HTTPProblem(400, f"this server does not answer to Host {host!r} (it answers to "
                                   f"{', '.join(sorted(self.hosts))}); use its address")
        origin = _header(scope, b"origin")
        if origin is not None and origin not in self.origins and origin.split("://", 1)[-1].lower() != host.lower():
            raise HTTPProblem(403, f"requests from web pages at another site (Origin {origin!r}) are refused; "
                                   f"to allow one, start the server with --allow-origin {origin}")
        if self.token is not None and scope["path"] != "/health":
            sent = _header(scope, b"authorization") or ""
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
                why = "no token was sent" if not sent else "the token sent is not this server's"
                raise HTTPProblem(401, f"{why}: set RAGKIT_API_KEY to the token of this server (sent as "
                                       f"`Authorization: Bearer TOKEN`)", kind="authentication_error",
                                  headers={"WWW-Authenticate": "Bearer"})
        if scope["method"] == "POST":
            kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise HTTPProblem(415, f"the body must be JSON sent as Content-Type: application/json, not "
                                       f"{kind or 'no content type'!r}")
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
                raise HTTPProblem(413, self._too_big(int(length)))

    def _too_big(self, size: int) -> str:
        return (f"the request body has {size} bytes or more, over this server's limit of "
                f"{self.limits.max_body_bytes} (ragkit serve --max-body-mb); send fewer or shorter texts")

    def _limited(self, receive):
        seen = [0]

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.limits.max_body_bytes:
                    raise HTTPProblem(413, self._too_big(seen[0]))
            return message

        return counted


async def _send_problem(problem: HTTPProblem, send) -> None:
    body = problem.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def check_inputs(texts: list[str], what: str, limits: Limits, *, count: bool = True) -> None:
    """Raise `HTTPProblem(400)` for more texts, or a longer one, than `limits` allow, naming the limit."""
    if count and len(texts) > limits.max_inputs:
        raise HTTPProblem(400, f"`{what}` has {len(texts)} items, over this server's limit of {limits.max_inputs} "
                               f"a request (ragkit serve --max-inputs); send them in batches", what)
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise HTTPProblem(400, f"{what}[{i}] has {len(text)} characters, over this server's limit of "
                                   f"{limits.max_text_chars} a text (ragkit serve --max-text-chars); split it "
                                   f"into chunks", what)
