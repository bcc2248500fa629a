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

>>> from ragkit.local import LocalBackend
>>> from ragkit.openrouter import OpenRouterBackend
>>> server = make_server(LocalBackend(), port=0).start()          # doctest: +SKIP
>>> OpenRouterBackend(server.base_url).embed(["hi"]).dim            # doctest: +SKIP
384
>>> server.shutdown()                                               # doctest: +SKIP
"""
from __future__ import annotations

import base64
import json
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TextIO

import numpy as np

from . import models
from .backends import APIError, Backend, BackendError, Usage, check_texts
from .embeddings import TRUNCATED_FIELD, truncated_count

MAX_BODY = 32 * 1024 * 1024  # bytes: far more than any sensible batch of texts
LOCAL_RERANK_ALIAS = "local/default"


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
        kind = "invalid_request_error" if status < 500 else "server_error"
        if not self._body_read:  # an unread body would be taken for the next request: hang up after
            self.close_connection = True
        try:
            self._send_json(status, {"error": {"message": message, "type": kind, "param": param,
                                               "code": status}})
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
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise HTTPProblem(400, "`input` must be a string or a list of strings (token arrays are "
                                   "not supported)", "input")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise HTTPProblem(400, f"encoding_format {encoding!r} is not supported: use 'float' or "
                                   f"'base64'", "encoding_format")
        emb = b.embed(check_texts(texts, "input"))  # errors name the wire's field
        vectors = np.asarray(emb.vectors, dtype=np.float32)
        if encoding == "base64":  # what the official openai client asks for by default
            rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
        else:
            rows = vectors.tolist()
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        answer = {"object": "list", "data": data, "model": emb.model, "usage": _usage(emb.usage)}
        if emb.model == models.EMBEDDING_MODEL and (cut := truncated_count(texts)):
            answer[TRUNCATED_FIELD] = cut  # ragkit's clients warn; other clients ignore the field
        self._send_json(200, answer)

    def _rerank(self) -> None:
        body = self._body()
        b = self.server.backend
        self._model(body, b.rerank_model, "rerank", (LOCAL_RERANK_ALIAS,))
        query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
        if not isinstance(query, str):
            raise HTTPProblem(400, "`query` must be a string", "query")
        if not isinstance(documents, list):
            raise HTTPProblem(400, "`documents` must be a list of strings", "documents")
        docs = [d.get("text") if isinstance(d, dict) else d for d in documents]
        if not all(isinstance(d, str) for d in docs):
            raise HTTPProblem(400, "each of `documents` must be a string or {\"text\": string}", "documents")
        if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
            raise HTTPProblem(400, "`top_n` must be a whole number of at least 1", "top_n")
        check_texts([query], "query")
        ranked = b.rerank(query, check_texts(docs, "documents"), top_n)
        results = [{"index": r.index, "relevance_score": r.relevance_score, "document": {"text": r.text}}
                   for r in ranked.results]
        self._send_json(200, {"id": f"rerank-{uuid.uuid4().hex}", "model": ranked.model,
                              "results": results, "usage": _usage(ranked.usage)})

    def _chat(self) -> None:
        body = self._body()
        b = self.server.backend
        self._model(body, b.chat_model, "chat")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPProblem(400, "`messages` must be a non-empty list of {\"role\", \"content\"}",
                              "messages")
        clean = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise HTTPProblem(400, f"messages[{i}] must be an object with a string `role`", "messages")
            content = m.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                raise HTTPProblem(400, f"messages[{i}].content must be a string", "messages")
            clean.append({"role": m["role"], "content": content})
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 256))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise HTTPProblem(400, "`max_tokens` must be a whole number of at least 1", "max_tokens")
        temperature = body.get("temperature", 0.0)
        if temperature is None:
            temperature = 0.0
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature < 0:
            raise HTTPProblem(400, "`temperature` must be a number >= 0", "temperature")
        fmt = body.get("response_format") or {"type": "text"}
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise HTTPProblem(400, "response_format must be {\"type\": \"text\"}, {\"type\": \"json_object\"} "
                                   "or {\"type\": \"json_schema\", \"json_schema\": {\"schema\": ...}}",
                              "response_format")
        want_json: bool | dict = fmt["type"] != "text"
        if fmt["type"] == "json_schema":
            want_json = (fmt.get("json_schema") or {}).get("schema")
            if not isinstance(want_json, dict):
                raise HTTPProblem(400, "response_format.json_schema.schema must be a JSON schema object",
                                  "response_format")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise HTTPProblem(400, "`stream` must be true or false", "stream")
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
            raise HTTPProblem(400, "`stop` must be a string or a list of strings", "stop")
        options = dict(max_tokens=max_tokens, temperature=float(temperature),
                       json=want_json, stop=stop or None)
        if stream:
            self._chat_stream(b.chat(clean, stream=True, **options))
            return
        c = b.chat(clean, stream=False, **options)
        self._send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": c.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason or "stop"}],
            "usage": _usage(c.usage)})

    def _chat_stream(self, pieces) -> None:
        b = self.server.backend
        done = object()
        # Take the first piece before answering, so that a backend which fails at once gets a
        # proper error status instead of an error event.
        first = next(pieces, done)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
            return {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": getattr(pieces, "model", None) or b.chat_model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._event(chunk({"role": "assistant", "content": ""}))
            try:
                if first is not done:
                    self._event(chunk({"content": first}))
                    for piece in pieces:
                        self._event(chunk({"content": piece}))
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as exc:  # mid-answer: tell the client in the stream, as OpenRouter does
                if not isinstance(exc, (ValueError, TypeError, BackendError)):
                    self._log_traceback()
                status = exc.status if isinstance(exc, APIError) and exc.status else 500
                self._event({**chunk({}, "error"), "error": {"message": f"{type(exc).__name__}: {exc}",
                                                             "type": "server_error", "code": status}})
            else:
                usage = getattr(pieces, "usage", None)
                extra = {"usage": _usage(usage)} if isinstance(usage, Usage) else {}
                self._event(chunk({}, getattr(pieces, "finish_reason", None) or "stop", **extra))
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")  # the zero-length chunk that ends the body
        except (BrokenPipeError, ConnectionResetError):  # the client went away: stop generating
            self.close_connection = True
            close = getattr(pieces, "close", None)
            if close:
                close()

    def _event(self, payload: dict) -> None:
        self._write_chunk(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _usage(usage: Usage) -> dict:
    out = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.total_tokens}
    if usage.cost is not None:
        out["cost"] = usage.cost
    return out
