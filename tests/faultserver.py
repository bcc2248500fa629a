"""A small HTTP server on loopback that answers each request as a test scripts it, faults included.

>>> server = FaultServer().start()
>>> _ = server.push(Reply(429, {"error": {"code": 429, "message": "slow down"}}, headers={"Retry-After": "0"}),
...             Reply(200, {"data": []}))
>>> # ... point a client at server.url; then look at server.requests
>>> server.shutdown()

Each request takes the next scripted `Reply` (or calls a function of the `Seen` request that
returns one); when the script is empty, `default` answers (a 500 unless set).
"""
from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

DONE = "data: [DONE]\n\n"


@dataclass
class Reply:
    """How to answer one request.

    - `status`, `json` (sent as JSON) or `body` (bytes/str sent as is), `headers`
    - `delay`: seconds to wait before answering (longer than the client's timeout: a hang)
    - `drop`: hang up without answering
    - `cut_at`: send only this many bytes of the body (Content-Length promises all), then hang up
    - `events`: answer as server-sent events, chunked; a dict is sent as `data: {json}`, a str as
      is (so `DONE` or ": comment\\n\\n"); `event_delay` between them; `cut` hangs up before the
      end of the chunked body (a connection dropped mid-stream)
    """

    status: int = 200
    json: object = None
    body: bytes | str | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    cut_at: int | None = None
    events: list | None = None
    event_delay: float = 0.0
    cut: bool = False


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict  # lower-case names
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


Script = Union[Reply, Callable[[Seen], Reply]]


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__((host, 0), _Handler)
        self.script: deque[Script] = deque()
        self.default: Script = Reply(500, {"error": {"code": 500, "message": "fault server: nothing scripted"}})
        self.requests: list[Seen] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def handle_error(self, request, client_address) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # a client hanging up is no news

    def push(self, *replies: Script) -> "FaultServer":
        """Queue answers for the next requests, in order."""
        with self._lock:
            self.script.extend(replies)
        return self

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def start(self) -> "FaultServer":
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.stopping.set()
        if self._thread:
            super().shutdown()
            self._thread.join(5)
        self.server_close()

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            step = self.script.popleft() if self.script else self.default
        return step(seen) if callable(step) else step


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server._next(seen)
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        try:
            if reply.drop:
                self._hang_up()
            elif reply.events is not None:
                self._stream(reply)
            else:
                self._plain(reply)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first: fine
            self.close_connection = True

    def _plain(self, reply: Reply) -> None:
        if reply.body is not None:
            data = reply.body.encode() if isinstance(reply.body, str) else reply.body
            ctype = "text/plain"
        else:
            data = json.dumps(reply.json).encode()
            ctype = "application/json"
        self.send_response(reply.status)
        headers = {"Content-Type": ctype, **reply.headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if reply.cut_at is not None:
            self.wfile.write(data[:reply.cut_at])
            self.wfile.flush()
            self._hang_up()
        else:
            self.wfile.write(data)

    def _stream(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for k, v in {"Content-Type": "text/event-stream", **reply.headers}.items():
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in reply.events:
            text = event if isinstance(event, str) else f"data: {json.dumps(event)}\n\n"
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            if reply.event_delay and self.server.stopping.wait(reply.event_delay):
                break
        if reply.cut:
            self._hang_up()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# -- answers in the shapes the APIs use ----------------------------------------------------------

def embeddings_json(vectors, order=None, model="test/embed", usage=None) -> dict:
    """An embeddings answer; `order` lists the indexes in the order to send them."""
    order = range(len(vectors)) if order is None else order
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": list(map(float, vectors[i]))}
                     for i in order],
            "usage": usage or {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)}}


def chat_json(text, model="test/chat", finish="stop", usage=None) -> dict:
    return {"id": "gen-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


def chunk(content=None, finish=None, usage=None, model="test/chat") -> dict:
    delta = {} if content is None else {"content": content}
    out = {"id": "gen-1", "object": "chat.completion.chunk", "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


def error_json(code, message) -> dict:
    return {"error": {"code": code, "message": message}}
