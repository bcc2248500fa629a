"""Serve any ragkit backend over the OpenAI / OpenRouter wire, so other programs (and other machines'
notebooks) can use its models: what `ragkit serve` runs. Starlette for the app, uvicorn for HTTP.

| method and path                         | what it does                                          |
|-----------------------------------------|-------------------------------------------------------|
| `POST /v1/embeddings`                   | `{"model", "input": text or [texts], "encoding_format"}` -> `{"data": [{"index", "embedding"}]}` |
| `POST /v1/rerank`                       | `{"model", "query", "documents", "top_n"}` -> `{"results": [{"index", "relevance_score", "document"}]}` |
| `POST /v1/chat/completions`             | OpenAI's chat request (`wire.chat` lists the parameters taken); `stream: true` answers with server-sent events ending `data: [DONE]` |
| `GET /v1/models`, `GET /v1/embeddings/models` | the models served, as OpenRouter lists them (`?output_modalities=text,embeddings,rerank` filters) |
| `GET /health`                           | liveness, what is unavailable, the queues             |

Paths may also start with `/api/v1` (OpenRouter's spelling). Errors are JSON,
`{"error": {"message", "type", "param", "code"}}`, with the status OpenAI and OpenRouter use: 400 for a
bad request (also a prompt over the model's context), 401 without the token, 404 for an unknown
model, 413 / 415 for a body too big or not JSON, 429 with `Retry-After` when a queue is full, 5xx only
for the server's own failures. `room.py` has the limits, the token and the queues.

>>> from ragkit.backends import LocalBackend, OpenRouterBackend
>>> server = make_server(LocalBackend(), port=0).start()          # doctest: +SKIP
>>> OpenRouterBackend(server.base_url).embed(["hi"]).dim            # doctest: +SKIP
384
>>> server.shutdown()                                               # doctest: +SKIP
"""
from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import config
from ..embedder import truncated_count
from ..errors import APIError, BackendError, ConfigError, ModelNotFound, WireFormatError
from ..types import Embeddings, check_texts
from . import wire
from .streaming import chat_answer, chat_events, open_stream
from .room import ClientCap, Gate, Guard, HTTPProblem, Limits, check_inputs, is_loopback, read_json

__all__ = ["RagkitServer", "create_app", "make_server", "serve"]

WORKERS = {"embedding": 2, "rerank": 2, "chat": 1}  # requests run at once per model, on a 2-core machine
ENDPOINTS = {"POST": ["/v1/embeddings", "/v1/rerank", "/v1/chat/completions"],
             "GET": ["/v1/models", "/v1/embeddings/models", "/health"]}


@dataclass
class Served:
    """What the app serves: the backend, its limits, a queue per model, the per-client cap."""

    backend: object
    limits: Limits
    log: object
    cache: object = None  # an EmbeddingCache: texts any client embedded before are not embedded again
    gates: dict = field(default_factory=dict)
    unavailable: dict = field(default_factory=dict)

    def __post_init__(self):
        self.gates = {task: Gate(task, n, self.limits.queue) for task, n in WORKERS.items()}
        self.clients = ClientCap(self.limits.per_client)
        check = getattr(self.backend, "unavailable", None)
        self.unavailable = dict(check()) if check else {}

    def model_id(self, task: str) -> str:
        return getattr(self.backend, f"{task}_model")

    def check_model(self, body: dict, task: str, aliases: tuple[str, ...] = ()) -> str:
        """Return the model a request names (or the one served), or refuse: 404 for one not served here."""
        served, asked = self.model_id(task), body.get("model")
        if asked is not None and not isinstance(asked, str):
            raise HTTPProblem(400, "`model` must be a string", "model")
        if task in self.unavailable:
            raise HTTPProblem(404, f"the {task} model {served!r} is not available on this server: "
                                   f"{self.unavailable[task]}", "model", kind="model_not_found")
        if asked is not None and asked != served and asked not in aliases:
            also = f" (or {', '.join(repr(a) for a in aliases)})" if aliases else ""
            raise HTTPProblem(404, f"model {asked!r} is not served here: this server's {task} model is "
                                   f"{served!r}{also}; GET /v1/models lists them", "model", kind="model_not_found")
        return served

    @asynccontextmanager
    async def admit(self, request: Request, task: str):
        """Hold a place in `task`'s queue for the request's client while the block runs (or raise 429)."""
        client = request.client.host if request.client else "?"
        self.clients.take(client)
        try:
            async with self.gates[task]:
                yield
        finally:
            self.clients.give_back(client)


async def until_disconnect(request: Request, work):
    """Return `await work()`, or raise `HTTPProblem(499)` if the client hangs up first (work cancelled)."""
    outcome: dict = {}
    async with anyio.create_task_group() as tg:
        async def run():
            try:
                outcome["result"] = await work()
            except Exception as exc:  # raised below, outside the task group (not as an ExceptionGroup)
                outcome["error"] = exc
            tg.cancel_scope.cancel()

        async def watch():
            while (await request.receive())["type"] != "http.disconnect":
                pass
            outcome["gone"] = True
            tg.cancel_scope.cancel()

        tg.start_soon(run)
        tg.start_soon(watch)
    if "error" in outcome:
        raise outcome["error"]
    if outcome.get("gone"):
        raise HTTPProblem(499, "the client closed the connection before the answer was ready")
    return outcome.get("result")


def endpoint(fn):
    """Wrap an endpoint: its errors become JSON errors with the right status, a bug's traceback is logged."""
    async def handler(request: Request) -> Response:
        served: Served = request.app.state.served
        try:
            return await fn(request, served)
        except HTTPProblem as problem:
            return JSONResponse(wire.error_body(problem.status, problem.message, problem.param, kind=problem.kind),
                                problem.status, headers=problem.headers)
        except WireFormatError as exc:  # the request is not in the wire format
            return _error(400, str(exc), exc.field)
        except ModelNotFound as exc:
            return _error(404, str(exc), "model", kind="model_not_found")
        except APIError as exc:  # the engine, or an upstream server, said no: pass its verdict on
            status = exc.status if exc.status and 400 <= exc.status < 600 else 502
            return _error(status, str(exc), "messages" if status == 400 else None)
        except (ValueError, TypeError) as exc:  # the backend refused the input (check_texts & co)
            return _error(400, str(exc))
        except BackendError as exc:
            return _error(500, str(exc))
        except Exception as exc:  # a bug: say what, log the traceback (no headers in it)
            served.log("".join(traceback.format_exc()).rstrip())
            return _error(500, f"internal error: {type(exc).__name__}: {exc}")
    return handler


def _error(status: int, message: str, param: str | None = None, kind: str | None = None) -> JSONResponse:
    # A retry cannot help a server's own failure either: tell the OpenAI SDK so (its `x-should-retry`).
    headers = {"x-should-retry": "false"} if status in (500, 502) else None
    return JSONResponse(wire.error_body(status, message, param, kind=kind), status, headers=headers)


def embed_answer(served: "Served", texts: list[str], encoding: str) -> dict:
    """Return the answer to an embeddings request (through the cache, if the server has one), saying how
    many texts the local model cut."""
    texts = check_texts(texts, "input")  # errors name the wire's field
    if served.cache is None:
        emb = served.backend.embed(texts)
    else:
        got = served.cache.embed(served.backend, texts, progress=False)
        emb = Embeddings(got.vectors, got.model, got.usage)
    cut = truncated_count(texts) if emb.model == config.LOCAL_EMBEDDING_MODEL else 0
    return wire.embeddings_body(emb, encoding, cut)


@endpoint
async def embeddings(request: Request, served: Served) -> Response:
    body = read_json(await request.body(), served.limits)
    served.check_model(body, "embedding")
    _, texts, encoding = wire.parse_embeddings_request(body)
    check_inputs(texts, "input", served.limits)
    async with served.admit(request, "embedding"):
        answer = await anyio.to_thread.run_sync(embed_answer, served, texts, encoding)
    return JSONResponse(answer)


@endpoint
async def rerank(request: Request, served: Served) -> Response:
    body = read_json(await request.body(), served.limits)
    served.check_model(body, "rerank", (config.LOCAL_RERANK_ALIAS,))
    _, query, docs, top_n = wire.parse_rerank_request(body)
    check_inputs([query], "query", served.limits)
    check_inputs(docs, "documents", served.limits)
    async with served.admit(request, "rerank"):
        ranked = await anyio.to_thread.run_sync(served.backend.rerank, query, docs, top_n)
    return JSONResponse(wire.rerank_body(ranked))


@endpoint
async def chat(request: Request, served: Served) -> Response:
    body = read_json(await request.body(), served.limits)
    served.check_model(body, "chat")
    ask = wire.parse_chat_request(body)
    check_chat(ask, served)
    if not ask.stream:
        async def answer():
            async with served.admit(request, "chat"):
                return await chat_answer(served.backend, ask)
        return JSONResponse(wire.completion_body(await until_disconnect(request, answer)))
    held = AsyncExitStack()  # the place in the queue, held until the stream ends
    try:
        await until_disconnect(request, lambda: held.enter_async_context(served.admit(request, "chat")))
        stream, first = await until_disconnect(request, lambda: open_stream(served.backend, ask))
    except BaseException:
        await held.aclose()
        raise
    return chat_events(stream, first, ask, on_close=held.aclose, log=served.log)


def check_chat(ask: wire.ChatRequest, served: Served) -> None:
    """Refuse what the limits or the backend cannot take, naming the parameter."""
    if ask.max_tokens > served.limits.max_tokens:
        raise HTTPProblem(400, f"`max_tokens` {ask.max_tokens} is over this server's limit of "
                               f"{served.limits.max_tokens} (ragkit serve --max-tokens)", "max_tokens")
    check_inputs([m["content"] for m in ask.messages if m["content"]] or ["."], "messages", served.limits,
                 count=False)
    honoured = getattr(served.backend, "chat_parameters", frozenset())
    for name in ask.sampling:
        if name not in honoured:
            raise HTTPProblem(400, f"parameter `{name}` is not supported by this server's chat model "
                                   f"{served.model_id('chat')!r}; leave it out", name)


def cards(served: Served, kinds: set[str] | None = None) -> list[dict]:
    """Return the model objects of what is served (and can run), for the listing."""
    lengths = getattr(served.backend, "context_lengths", {})
    chat_params = ["max_tokens", "temperature", "stop", "response_format", "structured_outputs",
                   *sorted(getattr(served.backend, "chat_parameters", ()))]
    out = []
    for task in ("embedding", "rerank", "chat"):
        if task in served.unavailable or (kinds is not None and wire.OUTPUT[task] not in kinds):
            continue
        out.append(wire.model_card(served.model_id(task), task, context_length=lengths.get(task),
                                   parameters=tuple(chat_params) if task == "chat" else ()))
    return out


@endpoint
async def models(request: Request, served: Served) -> Response:
    wanted = request.query_params.get("output_modalities")
    kinds = None if not wanted or wanted == "all" else {k.strip() for k in wanted.split(",")}
    return JSONResponse(wire.models_body(cards(served, kinds)))


@endpoint
async def embedding_models(request: Request, served: Served) -> Response:
    return JSONResponse(wire.models_body(cards(served, {"embeddings"})))


@endpoint
async def health(request: Request, served: Served) -> Response:
    return JSONResponse({"status": "ok", "backend": served.backend.describe(), "unavailable": served.unavailable,
                         "queues": {task: gate.status() for task, gate in served.gates.items()}})


async def _not_found(request: Request, exc) -> Response:
    path, method = request.url.path, request.method
    if exc.status_code == 405:
        return _error(405, f"{path} takes {'GET' if method == 'POST' else 'POST'}, not {method}")
    listed = ", ".join(f"{m} {p}" for m in ENDPOINTS for p in ENDPOINTS[m])
    return _error(404, f"no endpoint {method} {path}; this server has {listed} (also under /api/v1)")


def create_app(backend, *, host: str = "127.0.0.1", token: str | None = None, limits: Limits = Limits(),
               origins: frozenset[str] = frozenset(), cache=None, log=None):
    """Return the ASGI app serving `backend` (what `make_server` runs; httpx's ASGITransport takes it too).

    `token`: the bearer token clients must send (None: none); `host`: the address it is bound to (bound
    to loopback, it answers only to loopback Host names, so a web page cannot reach it by DNS tricks);
    `origins`: web pages allowed to call it; `cache`: an `EmbeddingCache` embeddings go through.

    >>> import httpx
    >>> from ragkit.backends.local import LocalBackend
    >>> app = create_app(LocalBackend())
    >>> async def models():
    ...     async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1") as c:
    ...         return (await c.get("/v1/models")).json()["data"][0]["id"]
    >>> anyio.run(models)
    'local/all-MiniLM-L6-v2-int8'
    """
    routes = [Route("/health", health, methods=["GET"])]
    for prefix in ("/v1", "/api/v1"):
        routes += [Route(f"{prefix}/embeddings", embeddings, methods=["POST"]),
                   Route(f"{prefix}/rerank", rerank, methods=["POST"]),
                   Route(f"{prefix}/chat/completions", chat, methods=["POST"]),
                   Route(f"{prefix}/models", models, methods=["GET"]),
                   Route(f"{prefix}/embeddings/models", embedding_models, methods=["GET"])]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.served = Served(backend, limits, log or (lambda line: None), cache)
    hosts = frozenset({"127.0.0.1", "localhost", "::1"}) if is_loopback(host) else None
    return Guard(app, limits=limits, token=token, hosts=hosts, origins=origins, log=app.state.served.log)


class RagkitServer:
    """The app served by uvicorn on a socket bound at once. `url` is its root, `base_url` what clients use.

    >>> server = make_server(backend, port=0).start()      # doctest: +SKIP
    >>> server.base_url                                     # doctest: +SKIP
    'http://127.0.0.1:40123/v1'
    >>> server.shutdown()                                   # doctest: +SKIP
    """

    def __init__(self, app, host: str, port: int, *, quiet: bool = False):
        self.app = app
        self.socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(2048)  # a room of learners connecting at once must queue, not be reset
        self.address = self.socket.getsockname()[:2]
        # log_config=None: uvicorn leaves Python's logging set up as it was (a notebook's, a test's).
        self._uvicorn = uvicorn.Server(uvicorn.Config(
            app, log_config=None, log_level="critical" if quiet else "warning", access_log=False, lifespan="off",
            timeout_keep_alive=30, timeout_graceful_shutdown=3, server_header=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What to give `OpenRouterBackend(base_url=...)` or `RAGKIT_BASE_URL`."""
        return self.url + "/v1"

    def start(self) -> "RagkitServer":
        """Serve in a background thread; return self once it answers."""
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [self.socket]},
                                        name="ragkit-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"ragkit serve did not start on {self.url}")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C."""
        self._uvicorn.run(sockets=[self.socket])

    def shutdown(self) -> None:
        """Stop serving (open streams are ended) and close the listening socket."""
        if self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=10)
            self._thread = None
        self.socket.close()


def make_server(backend, host: str = "127.0.0.1", port: int = 8000, *, log: TextIO | None = None,
                quiet: bool = False, token: str | None = None, limits: Limits = Limits(),
                origins: frozenset[str] = frozenset(), cache=None) -> RagkitServer:
    """Return a server for `backend`, bound but not yet serving: call `.start()` or `.serve_forever()`.

    `port=0` picks a free port (see `.url`). One line per request goes to `log` (stderr), never a
    header; `quiet=True` writes none. `token`, `limits`, `origins`, `cache`: see `create_app`.

    >>> server = make_server(backend, port=0).start()      # doctest: +SKIP
    """
    lock = threading.Lock()

    def line(text: str) -> None:
        if not quiet:
            with lock:
                print(f"ragkit serve: {text}", file=log or sys.stderr, flush=True)

    app = create_app(backend, host=host, token=token, limits=limits, origins=origins, cache=cache, log=line)
    return RagkitServer(app, host, port, quiet=quiet)


def serve(backend, host: str = "127.0.0.1", port: int = 8000, *, token: str | None = None, no_auth: bool = False,
          limits: Limits = Limits(), origins: frozenset[str] = frozenset(), cache=None) -> None:
    """Serve `backend` until Ctrl-C, saying what learners set. Refuses a non-loopback address without
    a token unless `no_auth` (anyone on the network could use the models).

    >>> serve(ragkit.backend(), "0.0.0.0", token="s3cret")     # doctest: +SKIP
    ragkit serve: local backend, offline: ... at http://0.0.0.0:8000/v1
    """
    if not is_loopback(host) and not token and not no_auth:
        raise ConfigError(f"refusing to listen on {host} without a token: anyone who can reach it could use "
                          f"these models. Pass --token TOKEN (or set RAGKIT_SERVE_TOKEN), or --no-auth on a "
                          f"network you trust")
    server = make_server(backend, host, port, token=token, limits=limits, origins=origins, cache=cache)
    shown = server.base_url
    if host in ("0.0.0.0", "::"):
        shown = f"http://{socket.gethostname()}:{server.address[1]}/v1"
    print(f"ragkit serve: {backend.describe()} at {server.base_url}", file=sys.stderr)
    key = "RAGKIT_API_KEY=<the token>" if token else "no RAGKIT_API_KEY"
    print(f"ragkit serve: learners set RAGKIT_BASE_URL={shown} and {key}   (Ctrl-C stops)", file=sys.stderr)
    if not token and not is_loopback(host):
        print(f"ragkit serve: warning: --no-auth on {host}: anyone who can reach it can use these models",
            file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.socket.close()
