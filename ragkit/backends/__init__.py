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

from .. import config
from ..progress import notice
from ..rerankers import kind
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
        notice(f"ragkit: {chosen.describe()} ({why})", brief=_brief(chosen))
    return chosen


def _brief(chosen: Backend) -> str:
    """One short line for a notebook: where the models run and which they are, the reranker's kind
    included (so it is chosen now, not announced later in the middle of a chapter)."""
    if isinstance(chosen, LocalBackend):
        reranker = chosen.choose_reranker(verbose=False)
        return (f"ragkit: local models, offline (no OPENROUTER_API_KEY set). Embeddings {chosen.embedding_model}; "
                f"reranker {reranker.name} ({kind(reranker)}); chat {chosen.chat_model}")
    return f"ragkit: {chosen.describe()}"
