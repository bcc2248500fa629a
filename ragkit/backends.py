"""One interface, two backends: OpenRouter (or any OpenAI-compatible server) and local models.

Every backend has three methods and keeps a running `usage` total:

- `embed(texts) -> Embeddings` (float32 matrix, one L2-normalised row per text)
- `rerank(query, documents, top_n) -> Ranked` (results best first: index, relevance score, text)
- `chat(messages) -> Completion`, or an iterator of text pieces with `stream=True`

>>> import ragkit
>>> b = ragkit.backend()          # doctest: +SKIP
ragkit: local backend (OPENROUTER_API_KEY and RAGKIT_BASE_URL are not set) ...
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterator, Literal, Protocol, Sequence, overload, runtime_checkable

import numpy as np

OPENROUTER_URL = "https://openrouter.ai/api/v1"

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class Usage:
    """What some work cost: requests made, tokens read and written, dollars when the API says.

    >>> Usage(requests=1, prompt_tokens=10) + Usage(requests=2, prompt_tokens=5, cost=0.01)
    Usage(requests=3, prompt_tokens=15, completion_tokens=0, cost=0.01)
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # USD, only when the server reports it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        if self.cost is None and other.cost is None:
            cost = None
        else:
            cost = (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
        )

    def __sub__(self, other: "Usage") -> "Usage":
        """What was spent between two readings of a running total."""
        cost = None if self.cost is None else self.cost - (other.cost or 0.0)
        return Usage(self.requests - other.requests, self.prompt_tokens - other.prompt_tokens,
                     self.completion_tokens - other.completion_tokens, cost)


@dataclass(frozen=True)
class Embeddings:
    """Vectors for some texts: `vectors[i]` belongs to text i (float32, n x d, unit length)."""

    vectors: np.ndarray
    model: str
    usage: Usage = Usage()

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


@dataclass(frozen=True)
class RerankResult:
    """One re-scored document: its position in the input list, its relevance score, its text."""

    index: int
    relevance_score: float
    text: str


@dataclass(frozen=True)
class Ranked:
    """Reranked documents, best first, and which model scored them."""

    results: list[RerankResult]
    model: str
    usage: Usage = Usage()


@dataclass(frozen=True)
class Completion:
    """A chat answer: the text, the model that wrote it, what it cost."""

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None


class BackendError(RuntimeError):
    """A backend could not do what was asked; the message says why and what to do."""


class APIError(BackendError):
    """An HTTP backend's server said no: `status` is the HTTP status (or the error object's code),
    `endpoint` the path asked, `server_message` what the server said (never the API key)."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None,
                 server_message: str | None = None):
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
        self.server_message = server_message


class BadRequest(APIError):
    """400 (or another 4xx): the request itself is wrong, e.g. an unknown model or a missing field."""


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or disabled."""


class PaymentRequired(APIError):
    """402: the account or key is out of credits."""


class Forbidden(APIError):
    """403: not allowed, e.g. the input was flagged by moderation or a guardrail."""


class NotFound(APIError):
    """404: no such endpoint or model at this base URL."""


class RateLimited(APIError):
    """429 that did not clear within the retries and time budget."""


class ServerError(APIError):
    """408 / 5xx that did not clear within the retries, or an error reported mid-answer."""


class ConnectionFailed(APIError):
    """The server could not be reached, or did not answer in time, within the retries."""


class BadResponse(APIError):
    """The server answered, but not with what the API promises (not JSON, cut short, wrong shape)."""


@runtime_checkable
class Backend(Protocol):
    """What ragkit needs from a backend. `OpenRouterBackend` and `LocalBackend` both fit."""

    name: str
    embedding_model: str
    rerank_model: str
    chat_model: str
    usage: Usage

    def embed(self, texts: Sequence[str]) -> Embeddings: ...

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> Ranked: ...

    @overload
    def chat(self, messages: list[Message], *, stream: Literal[False] = False, max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None) -> Completion: ...

    @overload
    def chat(self, messages: list[Message], *, stream: Literal[True], max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None) -> Iterator[str]: ...

    def chat(self, messages, *, stream=False, max_tokens=256, temperature=0.0, json=False, stop=None): ...

    def describe(self) -> str: ...


def response_format(json: bool | dict) -> dict | None:
    """Return the OpenAI `response_format` for `json`: True -> any JSON object, a dict -> that schema.

    >>> response_format({"type": "object"})["type"]
    'json_schema'
    """
    if isinstance(json, dict):
        return {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": json}}
    return {"type": "json_object"} if json else None


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """Return `texts` as a list, or raise a clear error for input no model should see.

    >>> check_texts(["a", "b"])
    ['a', 'b']
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single {type(texts).__name__}; "
                        f"wrap it: [{what[:-1] if what.endswith('s') else what}]")
    items = list(texts)
    if not items:
        raise ValueError(f"{what} is empty: give at least one string")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, not str")
        if not t.strip():
            raise ValueError(f"{what}[{i}] is empty or whitespace only; drop it before embedding")
    return items


def backend(verbose: bool = True) -> Backend:
    """Return the backend the environment asks for, and say which one and why.

    - `OPENROUTER_API_KEY` or `RAGKIT_BASE_URL` set: the HTTP backend (OpenRouter, `ragkit serve`,
      vLLM or any OpenAI-compatible server at `RAGKIT_BASE_URL`).
    - neither set: local models, offline.

    Model choices come from `RAGKIT_EMBEDDING_MODEL`, `RAGKIT_RERANK_MODEL`, `RAGKIT_CHAT_MODEL`.
    """
    key = os.environ.get("OPENROUTER_API_KEY") or None
    base_url = os.environ.get("RAGKIT_BASE_URL") or None
    if key or base_url:
        from .openrouter import OpenRouterBackend

        chosen: Backend = OpenRouterBackend.from_env()
        why = "RAGKIT_BASE_URL is set" if base_url else "OPENROUTER_API_KEY is set"
        why += "; unset both for the local models"
    else:
        from .local import LocalBackend

        chosen = LocalBackend.from_env()
        why = ("OPENROUTER_API_KEY and RAGKIT_BASE_URL are not set; set OPENROUTER_API_KEY to use "
               "OpenRouter, or RAGKIT_BASE_URL for another server")
    if verbose:
        print(f"ragkit: {chosen.describe()} ({why})", file=sys.stderr)
    return chosen
