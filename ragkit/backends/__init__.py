"""One interface, two backends: OpenRouter (or any OpenAI-compatible server) and local models.

Every backend fits `ragkit.types.Backend`: three calls and a running `usage` total.

- `embed(texts) -> Embeddings` (float32 matrix, one L2-normalised row per text)
- `rerank(query, documents, top_n) -> Ranked` (results best first: index, relevance score, text)
- `chat(messages) -> Completion`, or a `ChatStream` of text pieces with `stream=True`

In this package: `backend()`, which picks one from the environment; `local` (the packaged models);
`openrouter` (the HTTP client); `server` (`ragkit serve`: any backend over HTTP); `wire` (the one
definition of the wire format the last two and llama.cpp speak).

>>> import ragkit
>>> b = ragkit.backend()          # doctest: +SKIP
ragkit: local backend (OPENROUTER_API_KEY and RAGKIT_BASE_URL are not set) ...
"""
from __future__ import annotations

import sys

from .. import config
from ..types import Backend
from .local import LocalBackend
from .openrouter import OpenRouterBackend

__all__ = ["LocalBackend", "OpenRouterBackend", "backend"]


def backend(verbose: bool = True) -> Backend:
    """Return the backend the environment asks for, and say which one and why.

    - `OPENROUTER_API_KEY` or `RAGKIT_BASE_URL` set: the HTTP backend (OpenRouter, `ragkit serve`,
      vLLM or any OpenAI-compatible server at `RAGKIT_BASE_URL`).
    - neither set: local models, offline.

    Model choices come from `RAGKIT_EMBEDDING_MODEL`, `RAGKIT_RERANK_MODEL`, `RAGKIT_CHAT_MODEL`.
    """
    s = config.settings()
    if s.remote:
        chosen: Backend = OpenRouterBackend.from_env()
        why = "RAGKIT_BASE_URL is set" if s.base_url else "OPENROUTER_API_KEY is set"
        why += "; unset both for the local models"
    else:
        chosen = LocalBackend.from_env()
        why = ("OPENROUTER_API_KEY and RAGKIT_BASE_URL are not set; set OPENROUTER_API_KEY to use "
               "OpenRouter, or RAGKIT_BASE_URL for another server")
    if verbose:
        print(f"ragkit: {chosen.describe()} ({why})", file=sys.stderr)
    return chosen
