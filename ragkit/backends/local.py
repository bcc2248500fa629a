"""The local backend: real models from PyPI packages, on the CPU, offline.

- embeddings: all-MiniLM-L6-v2, int8 ONNX (`ragkit.embedder.LocalEmbedder`)
- rerank: a cross-encoder when one is on disk or downloadable, else the measured offline
  reranker (`ragkit.rerankers.local_reranker` says which)
- chat: SmolLM2-135M-Instruct, a 4-bit GGUF file run by llama.cpp (`LocalChat`), which is spoken to
  in the same OpenAI wire format as a server (`ragkit.backends.wire`)

Each model loads once, on first use.

>>> b = LocalBackend()
>>> b.embed(["hello"]).vectors.shape
(1, 384)
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .. import config, weights
from ..cache import PairCache
from ..embedder import MAX_TOKENS, LocalEmbedder
from ..errors import BackendError, BadRequest, ModelNotFound, WireFormatError
from ..rerankers import Reranker, local_reranker
from ..rerankers.cached import CachedReranker
from ..types import ChatStream, Completion, Embeddings, Message, Ranked, RerankResult, StreamEnd, Usage, check_texts
from ..vectors import best_first
from . import wire


@dataclass
class LocalChat:
    """A GGUF chat model run in-process by llama.cpp (xllamacpp); the packaged SmolLM2 by default.

    Point `model_path` (or `RAGKIT_CHAT_MODEL`) at a bigger GGUF file for better answers.
    """

    model_path: Path | None = None
    n_ctx: int = 4096
    # Half the cores: llama.cpp's threads spin while they wait, and with every core busy (the
    # embedder, a notebook, a browser) one stalled thread stalls all of them: on 2 cores, 2 threads
    # took 40 s for what 1 thread wrote in 0.6 s while another process was busy.
    threads: int = max(1, (os.cpu_count() or 2) // 2)
    seed: int = 0
    _server: object = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _queue_changed: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _waiting: deque = field(default_factory=deque, init=False, repr=False)
    _busy: bool = field(default=False, init=False, repr=False)

    @property
    def name(self) -> str:
        return config.LOCAL_CHAT_MODEL if self.model_path is None else f"local/{Path(self.model_path).stem}"

    def load(self) -> "LocalChat":
        with self._lock:
            if self._server is None:
                import xllamacpp

                why = self.missing()
                if why:
                    raise ModelNotFound(why)
                path = Path(self.model_path) if self.model_path else weights.chat_model_path()
                params = xllamacpp.CommonParams()
                params.model.path = str(path)
                params.n_ctx = self.n_ctx
                params.n_parallel = 1
                params.cpuparams.n_threads = self.threads
                params.cpuparams_batch.n_threads = self.threads
                params.sampling.seed = self.seed
                params.warmup = False
                params.verbosity = -1  # llama.cpp logs every request otherwise
                self._server = xllamacpp.Server(params)
        return self

    def missing(self) -> str | None:
        """Return why the model cannot be loaded (its file is not there), or None when it can."""
        try:
            path = Path(self.model_path) if self.model_path else weights.chat_model_path()
        except ModelNotFound as exc:
            return str(exc)
        return None if path.is_file() else f"chat model file {path} does not exist"

    def request(self, body: dict, on_chunk=None, cancel: threading.Event | None = None) -> dict | None:
        """Send one OpenAI-shaped chat request to llama.cpp and return its answer (streamed: None).

        Requests wait their turn first come, first served (the CPU has room for one generation); one
        whose `cancel` is set leaves the queue without running, or stops within a token when it runs
        (llama.cpp stops when the streaming callback returns True). The engine's error objects raise
        `BadRequest` (its 4xx: the prompt over the context, a value out of range) or `BackendError`.
        """
        self.load()
        body = {**body, "seed": body.get("seed", self.seed)}
        if not self._take_turn(cancel):
            return None  # given up before it ran: nobody waits for the answer
        try:
            if on_chunk is None:
                result = self._server.handle_chat_completions(body)
            else:
                failed: list[dict] = []

                def callback(chunk: dict) -> bool:
                    if "error" in chunk:
                        failed.append(chunk)
                        return True
                    on_chunk(chunk)
                    return cancel is not None and cancel.is_set()

                self._server.handle_chat_completions(body, callback)
                result = failed[0] if failed else None
        finally:
            self._end_turn()
        if isinstance(result, dict) and "error" in result:
            raise engine_error(result["error"])
        return result

    def _take_turn(self, cancel: threading.Event | None) -> bool:
        """Wait for this request's turn, in arrival order; False if `cancel` was set while it waited."""
        ticket = object()
        with self._queue_changed:
            self._waiting.append(ticket)
            try:
                while self._waiting[0] is not ticket or self._busy:
                    if cancel is not None and cancel.is_set():
                        return False
                    self._queue_changed.wait(0.05)
            finally:
                self._waiting.remove(ticket)
                self._queue_changed.notify_all()
            self._busy = True
            return True

    def _end_turn(self) -> None:
        with self._queue_changed:
            self._busy = False
            self._queue_changed.notify_all()


def engine_error(error) -> BackendError:
    """Return the error llama.cpp's error object stands for: a 4xx as `BadRequest`, naming the fix."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    status = wire.error_status(error)
    message = wire.error_message(error) or "no message"
    if error.get("type") == "exceed_context_size_error":
        message += "; send a shorter prompt (fewer or shorter sources)"
    if status is not None and 400 <= status < 500:
        return BadRequest(f"local chat model refused the request: {message}", status=status,
                          endpoint="chat/completions", server_message=message)
    return BackendError(f"local chat model failed: {message}")


@dataclass
class LocalBackend:
    """Local models behind the `Backend` interface. `usage` counts calls and tokens (cost: none).

    Reranking goes through a `PairCache` in `$RAGKIT_CACHE_DIR` (`rerank_cache=False` for none, or a
    `PairCache` of your own): the same question over the same passages is scored again for free, as an
    embedded text is.
    """

    embedder: LocalEmbedder = field(default_factory=LocalEmbedder)
    chat_engine: LocalChat = field(default_factory=LocalChat)
    rerank_spec: str | None = None
    rerank_cache: PairCache | bool = True
    name: str = "local"
    usage: Usage = Usage()
    _reranker: Reranker | None = field(default=None, init=False, repr=False)
    _scorer: CachedReranker | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_env(cls) -> "LocalBackend":
        """Build from `RAGKIT_RERANK_MODEL` and `RAGKIT_CHAT_MODEL` (a path to a GGUF file; another
        value is a model name for an HTTP backend, and the packaged model is used)."""
        s = config.settings()
        chat = LocalChat(Path(s.chat_model)) if s.chat_model and Path(s.chat_model).is_file() else LocalChat()
        return cls(chat_engine=chat, rerank_spec=s.rerank_model)

    @property
    def embedding_model(self) -> str:
        return self.embedder.name

    @property
    def chat_model(self) -> str:
        return self.chat_engine.name

    @property
    def context_lengths(self) -> dict[str, int]:
        """How many tokens each model reads: the embedder's word pieces, the chat model's context."""
        return {"embedding": MAX_TOKENS, "chat": self.chat_engine.n_ctx}

    # The OpenAI sampling parameters llama.cpp honours (`ragkit.backends.wire.SAMPLING`), which
    # `chat()` passes on; `ragkit serve` refuses the others by name.
    chat_parameters = frozenset(wire.SAMPLING)

    @property
    def origin(self) -> str:
        return "local"  # the models of this process (the embedding cache keys vectors by it)

    @property
    def reranker(self) -> Reranker:
        """The reranker in use, loaded (and announced) on first use."""
        return self.choose_reranker()

    def choose_reranker(self, verbose: bool = True) -> Reranker:
        """Load the reranker now if it is not yet (saying which, when `verbose`), and return it."""
        with self._lock:
            if self._reranker is None:
                self._reranker = local_reranker(self.rerank_spec, embedder=self.embedder, verbose=verbose)
        return self._reranker

    @property
    def scorer(self) -> CachedReranker:
        """The reranker with its per-pair work cached on disk (`rerank_cache`)."""
        reranker = self.reranker
        with self._lock:
            if self._scorer is None:
                cache = self.rerank_cache
                self._scorer = CachedReranker(reranker, PairCache() if cache is True else None if cache is False else cache)
        return self._scorer

    @property
    def rerank_model(self) -> str:
        return self.reranker.name

    @property
    def rerank_threshold(self) -> float | None:
        """The score under which the reranker judges a passage not relevant."""
        return self.reranker.default_threshold

    def describe(self) -> str:
        rerank = (self._reranker.name if self._reranker is not None else
                  f"a cross-encoder if one is on disk or downloadable, else {config.OFFLINE_RERANKER}")
        return f"local backend: embeddings {self.embedding_model}, chat {self.chat_model}, rerank {rerank}"

    def _count(self, usage: Usage) -> Usage:
        with self._lock:
            self.usage = self.usage + usage
        return usage

    def embed(self, texts: Sequence[str]) -> Embeddings:
        texts = check_texts(texts)
        vectors = self.embedder.embed(texts)
        return Embeddings(vectors, self.embedding_model, self._count(Usage(requests=1)))

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> Ranked:
        check_texts([query], "query")
        docs = check_texts(documents, "documents")
        scores = self.scorer.score_now(query, docs)
        order = best_first(scores)
        if top_n is not None:
            order = order[: max(0, top_n)]
        results = [RerankResult(int(i), float(scores[i]), docs[i]) for i in order]
        return Ranked(results, self.rerank_model, self._count(Usage(requests=1)))

    def unavailable(self) -> dict[str, str]:
        """Return {task: why} for the models that cannot run here (the chat model's file missing)."""
        why = self.chat_engine.missing()
        return {"chat": why} if why else {}

    def chat(self, messages: list[Message], *, stream: bool = False, max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None,
             **sampling):
        """Return the model's answer (a `Completion`, or a `ChatStream` with `stream=True`).

        `sampling`: any of `chat_parameters` (llama.cpp honours them as OpenAI defines them); closing a
        stream stops the generation within a token.
        """
        if not messages:
            raise ValueError("messages is empty: give at least one {'role': 'user', 'content': ...}")
        unknown = sorted(set(sampling) - self.chat_parameters)
        if unknown:
            raise TypeError(f"chat() got parameters the local model does not take: {unknown}; it takes "
                            f"{sorted(self.chat_parameters)}")
        body = wire.chat_request(None, messages, max_tokens=max_tokens, temperature=temperature, json=json,
                                 stop=stop, stream=stream, **sampling)
        if stream:
            return ChatStream(self._stream(body), self.chat_model)
        try:
            c = wire.read_completion(self.chat_engine.request(body), self.chat_model)
        except WireFormatError as exc:
            raise BackendError(f"local chat model gave an unreadable answer: {exc}") from None
        return Completion(c.text, self.chat_model, self._count(Usage(1, c.usage.prompt_tokens,
                                                                     c.usage.completion_tokens)), c.finish_reason)

    def _stream(self, body: dict) -> Iterator[str | StreamEnd]:
        # llama.cpp streams through a callback; run it in a thread and hand pieces over a queue.
        # Closing this generator (ChatStream.close) sets `cancel`: the callback then tells llama.cpp to stop.
        pieces: queue.Queue = queue.Queue()
        done = object()
        last: dict = {}
        cancel = threading.Event()

        def on_chunk(chunk: dict) -> None:
            if chunk.get("usage"):
                last["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("finish_reason"):
                    last["finish_reason"] = choice["finish_reason"]
                text = (choice.get("delta") or {}).get("content")
                if text:
                    pieces.put(text)

        def run() -> None:
            try:
                self.chat_engine.request(body, on_chunk, cancel)
            except BaseException as exc:  # handed to the reader below
                pieces.put(exc)
            pieces.put(done)

        threading.Thread(target=run, daemon=True).start()
        try:
            while (item := pieces.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # a no-op when the answer is complete
        usage = wire.read_usage(last.get("usage"))
        yield StreamEnd(self.chat_model, last.get("finish_reason"),
                        self._count(Usage(1, usage.prompt_tokens, usage.completion_tokens)))
