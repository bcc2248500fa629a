"""Serve any ragkit backend over the OpenAI-compatible wire, so other programs (and other machines'
notebooks) can use its models: what `ragkit serve` runs. Standard library only.

| method and path                         | what it does                                          |
|-----------------------------------------|-------------------------------------------------------|
| `POST /v1/embeddings`                   | `{"model", "input": [texts]}` -> `{"data": [{"index", "embedding"}]}` |
| `POST /v1/rerank`                       | `{"model", "query", "documents", "top_n"}` -> `{"results": [{"index", "relevance_score", "document"}]}` |
| `POST /v1/chat/completions`             | `{"model", "messages", "max_tokens", "temperature", "stream"}`; `stream: true` answers with server-sent events ending `data: [DONE]` |
| `GET /v1/models`, `GET /health`         | the models served; a liveness check                   |

Paths may also start with `/api/v1` (OpenRouter's spelling). Errors are JSON in OpenAI's shape,
`{"error": {"message", "type", "code"}}`, with a 4xx/5xx status.

>>> from ragkit.backends import LocalBackend, OpenRouterBackend
>>> server = make_server(LocalBackend(), port=0).start()          # doctest: +SKIP
>>> OpenRouterBackend(server.base_url).embed(["hi"]).dim            # doctest: +SKIP
384
>>> server.shutdown()                                               # doctest: +SKIP
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from uuid import uuid4
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TextIO

from .. import config
from ..embedder import truncated_count
from ..errors import APIError, BackendError, WireFormatError
from ..types import Backend, check_texts
from . import wire

MAX_BODY = 32 * 1024 * 1024  # bytes: far more than any sensible batch of texts


class HTTPProblem(Exception):
    """An error to send back as `{"error": {...}}` with this HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class RagkitServer(ThreadingHTTPServer):
    """A threaded HTTP server around one backend. `url` is its root, `base_url` what clients use.

    >>> server = make_server(backend, port=0).start()      # doctest: +SKIP
    >>> server.base_url                                     # doctest: +SKIP
    'http://127.0.0.1:40123/v1'
    >>> server.shutdown()                                   # doctest: +SKIP
    """

    daemon_threads = True      # an idle keep-alive connection must not hold up shutdown
    block_on_close = False
    # socketserver's default backlog of 5 makes the kernel reset connections when a room of
    # learners connects at once; the accept loop only needs a moment to catch up.
    request_queue_size = 256

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 8000, *,
                 log: TextIO | None = None, quiet: bool = False):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.backend = backend
        self.quiet = quiet
        self._log = log
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What to give `OpenRouterBackend(base_url=...)` or `RAGKIT_BASE_URL`."""
        return self.url + "/v1"

    def start(self) -> "RagkitServer":
        """Serve in a background thread and return self."""
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), name="ragkit-serve",
                                        daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving (if started with `start()`) and close the listening socket."""
        if self._thread is not None:
            super().shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):  # a client hung up: no traceback
            return
        self.log_line(f"error serving {client_address[0]}: {''.join(traceback.format_exc()).rstrip()}")

    def log_line(self, line: str) -> None:
        if not self.quiet:
            with self._log_lock:
                print(f"ragkit serve: {line}", file=self._log or sys.stderr, flush=True)


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 8000, *,
                log: TextIO | None = None, quiet: bool = False) -> RagkitServer:
    """Return a server for `backend`, bound but not yet serving: call `.start()` or `.serve_forever()`.

    `port=0` picks a free port (see `.url`). One line per request goes to `log` (stderr).

    >>> server = make_server(backend, port=0).start()      # doctest: +SKIP
    """
    return RagkitServer(backend, host, port, log=log, quiet=quiet)


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `backend` until Ctrl-C.

    >>> serve(ragkit.backend())     # doctest: +SKIP
    ragkit serve: local backend, offline: ... at http://127.0.0.1:8000/v1
    """
    server = make_server(backend, host, port)
    server.log_line(f"{backend.describe()} at {server.base_url}")
    server.log_line(f"use it with: RAGKIT_BASE_URL={server.base_url}   (Ctrl-C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        server.log_line(f"warning: listening on {host} without authentication: anyone who can "
                        f"reach it can use these models")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive: clients pool their connections
    server_version = "ragkit"
    timeout = 120                     # seconds an idle connection is kept
    server: RagkitServer

    # -- plumbing ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch({"/v1/models": self._models, "/health": self._health}, "GET")

    def do_POST(self) -> None:
        self._dispatch({"/v1/embeddings": self._embeddings, "/v1/rerank": self._rerank,
                        "/v1/chat/completions": self._chat}, "POST")

    def _dispatch(self, routes: dict[str, Callable[[], None]], method: str) -> None:
        self._started, self._status, self._body_read = time.perf_counter(), 0, method == "GET"
        path = self.path.split("?", 1)[0]
        if path.startswith("/api/v1/"):
            path = path[4:]
        try:
            route = routes.get(path.rstrip("/") or "/")
            if route is None:
                other = "POST" if method == "GET" else "GET"
                known = {"GET": ["/v1/models", "/health"],
                         "POST": ["/v1/embeddings", "/v1/rerank", "/v1/chat/completions"]}
                if path.rstrip("/") in known[other]:
                    raise HTTPProblem(405, f"{path} takes {other}, not {method}")
                raise HTTPProblem(404, f"no endpoint {method} {path}; this server has "
                                       f"{', '.join(f'{m} {p}' for m in known for p in known[m])}")
            route()
        except HTTPProblem as exc:
            self._error(exc.status, exc.message, exc.param)
        except WireFormatError as exc:  # the request is not in the wire format
            self._error(400, str(exc), exc.field)
        except (ValueError, TypeError) as exc:  # the backend refused the input (check_texts & co)
            self._error(400, str(exc))
        except APIError as exc:  # a backend that is itself an HTTP client: pass its verdict on
            status = exc.status if exc.status and 400 <= exc.status < 600 else 502
            self._error(status, str(exc))
        except BackendError as exc:
            self._error(500, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug: say what, log the traceback (no headers in it)
            self._log_traceback()
            self._error(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            ms = (time.perf_counter() - self._started) * 1000
            self.server.log_line(f"{method} {path} {self._status} {ms:.0f} ms")

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def log_request(self, code="-", size="-") -> None:
        pass  # one line per request comes from _dispatch, without headers

    def log_message(self, format: str, *args) -> None:
        self.server.log_line(format % args)

    def log_error(self, format: str, *args) -> None:
        if not format.startswith("Request timed out"):  # an idle kept-alive connection expiring
            self.log_message(format, *args)

    def _log_traceback(self) -> None:
        if not self.server.quiet:
            self.server.log_line("".join(traceback.format_exc()).rstrip())

    def _body(self) -> dict:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HTTPProblem(411, "send the request body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            raise HTTPProblem(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise HTTPProblem(413, f"request body of {length} bytes is over the {MAX_BODY} byte limit; "
                                   f"send fewer texts per request")
        raw = self.rfile.read(length) if length > 0 else b""
        self._body_read = True
        if not raw:
            raise HTTPProblem(400, "the request has no body: send a JSON object")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPProblem(400, f"the request body is not valid JSON ({exc})") from None
        if not isinstance(body, dict):
            raise HTTPProblem(400, f"the request body must be a JSON object, not {type(body).__name__}")
        return body

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, param: str | None = None) -> None:
        if not self._body_read:  # an unread body would be taken for the next request: hang up after
            self.close_connection = True
        try:
            self._send_json(status, wire.error_body(status, message, param))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- checks --------------------------------------------------------------------------------

    def _model(self, body: dict, served: str, what: str, aliases: tuple[str, ...] = ()) -> str:
        model = body.get("model")
        if model is None:
            return served
        if not isinstance(model, str):
            raise HTTPProblem(400, "`model` must be a string", "model")
        if model != served and model not in aliases:
            also = f" (or {', '.join(repr(a) for a in aliases)})" if aliases else ""
            raise HTTPProblem(400, f"model {model!r} is not served here: this server's {what} model "
                                   f"is {served!r}{also}", "model")
        return model

    # -- endpoints -----------------------------------------------------------------------------

    def _health(self) -> None:
        self._send_json(200, {"status": "ok", "backend": self.server.backend.describe()})

    def _models(self) -> None:
        b = self.server.backend
        data = [{"id": m, "object": "model", "owned_by": "ragkit", "task": task}
                for task, m in (("embedding", b.embedding_model), ("rerank", b.rerank_model),
                                ("chat", b.chat_model))]
        self._send_json(200, {"object": "list", "data": data})

    def _embeddings(self) -> None:
        body = self._body()
        b = self.server.backend
        self._model(body, b.embedding_model, "embedding")
        _, texts, encoding = wire.parse_embeddings_request(body)
        emb = b.embed(check_texts(texts, "input"))  # errors name the wire's field
        cut = truncated_count(texts) if emb.model == config.LOCAL_EMBEDDING_MODEL else 0
        self._send_json(200, wire.embeddings_body(emb, encoding, cut))

    def _rerank(self) -> None:
        body = self._body()
        b = self.server.backend
        self._model(body, b.rerank_model, "rerank", (config.LOCAL_RERANK_ALIAS,))
        _, query, docs, top_n = wire.parse_rerank_request(body)
        check_texts([query], "query")
        ranked = b.rerank(query, check_texts(docs, "documents"), top_n)
        self._send_json(200, wire.rerank_body(ranked))

    def _chat(self) -> None:
        body = self._body()
        b = self.server.backend
        self._model(body, b.chat_model, "chat")
        request = wire.parse_chat_request(body)
        if request.stream:
            self._chat_stream(b.chat(request.messages, stream=True, **request.options))
            return
        self._send_json(200, wire.completion_body(b.chat(request.messages, stream=False, **request.options)))

    def _chat_stream(self, stream) -> None:
        done = object()
        # Take the first piece before answering, so that a backend which fails at once gets a
        # proper error status instead of an error event.
        first = next(stream, done)
        ident, created = f"chatcmpl-{uuid4().hex}", int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
            return wire.chunk_body(ident, created, stream.model, delta, finish, **extra)

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._write_chunk(wire.sse_event(chunk({"role": "assistant", "content": ""})))
            try:
                if first is not done:
                    self._write_chunk(wire.sse_event(chunk({"content": first})))
                    for piece in stream:
                        self._write_chunk(wire.sse_event(chunk({"content": piece})))
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # mid-answer: tell the client in the stream, as OpenRouter does
                if not isinstance(exc, (ValueError, TypeError, BackendError)):
                    self._log_traceback()
                status = exc.status if isinstance(exc, APIError) and exc.status else 500
                self._write_chunk(wire.sse_event({**chunk({}, "error"), **wire.error_body(
                    status, f"{type(exc).__name__}: {exc}")}))
            else:
                self._write_chunk(wire.sse_event(chunk({}, stream.finish_reason or "stop",
                                                       usage=wire.usage_body(stream.usage))))
            self._write_chunk(wire.sse_event(wire.DONE))
            self._write_chunk(b"")  # the zero-length chunk that ends the body
        except (BrokenPipeError, ConnectionResetError):  # the client went away: stop generating
            self.close_connection = True
            stream.close()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
