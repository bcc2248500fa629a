"""Query rewriting: search with what a chat model writes from the question, not only the question.

Two techniques, both a chat call before retrieval (the same code for the local model and any
OpenAI-compatible server, since both are a `Backend`):

- **multi-query**: the model writes a few other ways to ask the same thing; each is searched and the
  rankings are fused with reciprocal rank fusion (`hybrid.rrf`), the question's own ranking included.
  A word the user did not use can then still find its passage.
- **HyDE** (Gao et al. 2022, "Precise Zero-Shot Dense Retrieval without Relevance Labels"): the model
  writes a short passage that would answer the question, and the *passage* is embedded: an answer
  looks more like the passages that hold it than a question does. As in the paper, the vector
  searched is the mean of the question's and the passage's (then unit length), so a wrong guess does
  not lose the question.

Whatever the model writes is only a search query: the reranker and the answer still read the user's
question. Each call is made at temperature 0 and kept in a `cache.ChatCache`, so a measurement pays
for its rewrites once; `Rewrite.usage` is what the call cost when it was made (its tokens, and
`cost` when the server reports one), `Rewrite.calls` how many calls were made now (0 from the cache).

>>> lines_of("1. How do reranking models work?\\n2) what is a cross-encoder\\n- How do reranking models work?")
['How do reranking models work?', 'what is a cross-encoder']
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..cache import ChatCache, backend_origin
from ..hybrid import fuse_hits
from ..types import Backend, Embeddings, Hit, Message, Usage
from ..vectors import normalize

__all__ = ["Rewrite", "hyde_vectors", "hypothetical_answer", "lines_of", "multi_query_hits", "paraphrases", "rewrite"]

PARAPHRASES = 3  # other wordings multi-query asks for (not tuned: a common choice)
PARAPHRASE_TOKENS = 64
ANSWER_TOKENS = 80

PARAPHRASE_PROMPT = ("Write {n} different search queries that look for the same information as the text below. "
                     "Use other words than the text. One query per line, nothing else.\n\nText: {question}")
ANSWER_PROMPT = ("Write a short passage of two or three sentences, as an encyclopedia or a documentation page "
                 "would, that answers the text below. Write only the passage.\n\nText: {question}")


@dataclass(frozen=True)
class Rewrite:
    """What a chat model wrote from a question: the texts to search with, and what writing them cost."""

    question: str
    texts: tuple[str, ...]  # paraphrases (multi-query) or one passage (HyDE)
    model: str
    usage: Usage  # the call's tokens when it was made (from the cache: as it was then)
    calls: int  # chat calls made now: 1, or 0 when the cache had it


def lines_of(text: str) -> list[str]:
    """Return the distinct non-empty lines of a model's list, without numbering, bullets or quotes."""
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:\d+[.):]|[-*\u2022])\s*", "", line).strip().strip('"').strip()
        if line and line.lower() not in {o.lower() for o in out}:
            out.append(line)
    return out


def rewrite(question: str, backend: Backend, prompt: str, max_tokens: int,
            cache: ChatCache | None = None) -> tuple[str, Usage, int]:
    """Return (what the chat model wrote for `prompt`, the call's usage, calls made now), through the cache."""
    messages: list[Message] = [{"role": "user", "content": prompt}]
    model, origin = backend.chat_model, backend_origin(backend)
    key = json.dumps({"messages": messages, "max_tokens": max_tokens}, sort_keys=True)
    cache = ChatCache() if cache is None else cache
    if (kept := cache.get(origin, model, key)) is not None:
        text, prompt_tokens, completion_tokens = kept
        return text, Usage(1, prompt_tokens, completion_tokens), 0
    completion = backend.chat(messages, max_tokens=max_tokens, temperature=0.0)
    u = completion.usage
    cache.put(origin, model, key, completion.text, u.prompt_tokens, u.completion_tokens)
    return completion.text, Usage(1, u.prompt_tokens, u.completion_tokens, u.cost), 1


def paraphrases(question: str, backend: Backend, n: int = PARAPHRASES, *, cache: ChatCache | None = None) -> Rewrite:
    """Return up to `n` other wordings of the question, written by the backend's chat model.

    Lines that repeat the question (or each other) are dropped; the question itself is not among them.

    >>> rewrite = paraphrases("What does a reranker do?", ragkit.backend(verbose=False))   # doctest: +SKIP
    >>> rewrite.texts                                                                     # doctest: +SKIP
    ('How does a reranking model work?', ...)
    """
    text, usage, calls = rewrite(question, backend, PARAPHRASE_PROMPT.format(n=n, question=question),
                                 PARAPHRASE_TOKENS, cache)
    others = [line for line in lines_of(text) if line.lower() != question.strip().lower()][:n]
    return Rewrite(question, tuple(others), backend.chat_model, usage, calls)


def hypothetical_answer(question: str, backend: Backend, *, cache: ChatCache | None = None) -> Rewrite:
    """Return a short passage the backend's chat model writes as if it answered the question (HyDE).

    It may be wrong: it is only searched with, never shown as an answer.

    >>> hypothetical_answer("What does a reranker do?", ragkit.backend(verbose=False)).texts  # doctest: +SKIP
    ('A reranker scores each retrieved passage against the question ...',)
    """
    text, usage, calls = rewrite(question, backend, ANSWER_PROMPT.format(question=question), ANSWER_TOKENS, cache)
    return Rewrite(question, (text.strip(),) if text.strip() else (), backend.chat_model, usage, calls)


def hyde_vectors(question: Embeddings, passages: Embeddings) -> Embeddings:
    """Return the vectors HyDE searches with: the mean of each question's vector and its passage's, unit length.

    Row i of `passages` is the hypothetical answer to question i (a question with no passage: pass
    its own text, and the mean is the question).

    >>> q = Embeddings(np.array([[1.0, 0.0]]), "m"); p = Embeddings(np.array([[0.0, 1.0]]), "m")
    >>> [round(float(x), 3) for x in hyde_vectors(q, p).vectors[0]]
    [0.707, 0.707]
    """
    if question.model != passages.model or question.vectors.shape != passages.vectors.shape:
        raise ValueError(f"question vectors {question.vectors.shape} from {question.model!r} and passage vectors "
                         f"{passages.vectors.shape} from {passages.model!r}: embed both with the same model, one "
                         "passage per question")
    return Embeddings(normalize(question.vectors + passages.vectors), question.model)


def multi_query_hits(rankings: Sequence[Sequence[Hit]], k: int | None = None) -> list[Hit]:
    """Return one question's rankings (its own first, then one per paraphrase) fused by reciprocal rank.

    >>> fused = multi_query_hits([index.search(v, k=20) for v in vectors])   # doctest: +SKIP
    """
    fused = fuse_hits(rankings, method="rrf")
    return fused[:k] if k is not None else fused
