"""The whole RAG pipeline in one call: retrieve -> rerank -> threshold -> generate.

Every stage's output is kept, so a notebook can show what retrieval found, how the reranker
reordered it, what passed the relevance threshold, and what the model wrote, with timings and
usage per stage.

>>> result = ask("What does a reranker do?", index, backend)       # doctest: +SKIP
>>> print(result.answer.text)                                     # doctest: +SKIP
>>> result.to_frame()                                             # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from .errors import ModelNotFound
from .generate import Answer, Citation, extractive_answer, generate
from .index import VectorIndex, embedding_text
from .stores.base import check_where
from .stores.memory import MemoryStore
from .types import Backend, Hit, SearchIndex, Usage


@dataclass(frozen=True)
class Result:
    """What each stage produced for one question.

    `retrieved`: the embedding-only top N (cosine scores); `reranked`: the same chunks reordered by
    the reranker (its scores); `kept`: the top K of those at or above `threshold`, i.e. the sources
    the model saw; `answer`: the checked answer. `timings` in seconds and `usage` per stage.
    """

    question: str
    retrieved: list[Hit]
    reranked: list[Hit]
    kept: list[Hit]
    answer: Answer | None
    threshold: float | None
    timings: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)

    @property
    def threshold_to_answer(self) -> float | None:
        """When no source cleared the threshold: the largest threshold of 3 decimals that would keep the
        closest passage (0.276 for a score of 0.2764); otherwise None."""
        if self.kept or not self.reranked or self.threshold is None:
            return None
        return math.floor(self.reranked[0].score * 1000) / 1000

    def to_frame(self):
        """Return one row per retrieved chunk: its rank and score before and after reranking."""
        import pandas as pd

        after = {h.chunk.id: h for h in self.reranked}
        kept = {h.chunk.id for h in self.kept}
        rows = []
        for h in self.retrieved:
            r = after.get(h.chunk.id)
            rows.append({"chunk": h.chunk.id, "title": h.chunk.title, "dense_rank": h.rank,
                         "dense_score": round(h.score, 4),
                         "rerank_rank": r.rank if r else None,
                         "rerank_score": round(r.score, 4) if r else None,
                         "moved": (h.rank - r.rank) if r else None, "kept": h.chunk.id in kept})
        return pd.DataFrame(rows).sort_values(["rerank_rank", "dense_rank"], na_position="last")


def retrieve(question: str, index: SearchIndex, backend: Backend, k: int = 20,
             where: dict | None = None) -> list[Hit]:
    """Return the k chunks nearest to the question in embedding space, among those matching `where`
    (a store's metadata filter, e.g. `{"source": ["faq.md"], "date": {"from": "2024-01"}}`; a
    `VectorIndex` is filtered as a `MemoryStore` is). The filter is checked before anything is embedded.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty: ask something")
    if not where:
        return index.search(backend.embed([question]), k=k)
    check_where(where)
    if isinstance(index, VectorIndex):
        index = MemoryStore(index=index)
    return index.search(backend.embed([question]), k=k, where=where)


def rerank(question: str, hits: Sequence[Hit], backend: Backend, top_n: int | None = None) -> list[Hit]:
    """Return hits reordered by the backend's reranker, with its scores and new ranks."""
    hits = list(hits)
    if not hits:
        return []
    # the title line as well as the text, as embedded: the offline reranker was fitted on that
    ranked = backend.rerank(question, [embedding_text(h.chunk) for h in hits], top_n=top_n)
    return [Hit(hits[r.index].chunk, r.relevance_score, rank)
            for rank, r in enumerate(ranked.results, start=1)]


def keep(reranked: Sequence[Hit], k: int, threshold: float | None) -> list[Hit]:
    """Return the sources for the prompt: the best `k` reranked hits scoring at least `threshold`."""
    return [h for h in reranked[:k] if threshold is None or h.score >= threshold]


def closest_note(result: Result) -> str:
    """Say which passage came closest when none cleared the threshold, and which threshold would keep it."""
    best = result.reranked[0]
    return (f"the closest passage, {best.chunk.label!r}, scored {best.score:.3f}, under the threshold "
            f"{result.threshold:g}; a threshold of {result.threshold_to_answer:g} would let it through")


def generate_or_quote(question: str, hits: Sequence[Hit], backend: Backend) -> Answer:
    """Return `generate`'s answer; if the chat model cannot be had (`ModelNotFound`: not on this
    machine and no way to fetch it), the source sentences closest to the question, labelled as
    extractive, with a note naming the cause and the command that gets the model."""
    try:
        return generate(question, hits, backend)
    except ModelNotFound as exc:
        text, numbers = extractive_answer(question, hits, backend)
        notes = (f"no chat model, so no model wrote this: {exc}",
                 "quoting the source sentences closest to the question instead")
        return Answer(question, text, [Citation(n, hits[n - 1]) for n in numbers], list(hits), "extractive",
                      notes=notes)


def ask(question: str, index: SearchIndex, backend: Backend, *, k_retrieve: int = 20, k_keep: int = 5,
        threshold: float | None = None, use_rerank: bool = True, answer: bool = True,
        where: dict | None = None) -> Result:
    """Return the answer to `question` and every stage's candidates, scores, timings and usage.

    `k_retrieve` candidates come from the index (only chunks matching `where`, when given: see
    `retrieve`); the reranker reorders them (`use_rerank=False`
    keeps embedding order); the best `k_keep` whose score is at least `threshold` go to the model.
    `threshold=None` uses the reranker's recommended one. If none passes, the answer says the
    sources do not contain it, without calling the model.
    """
    if k_keep < 1 or k_retrieve < k_keep:
        raise ValueError(f"need 1 <= k_keep <= k_retrieve, got k_keep={k_keep}, k_retrieve={k_retrieve}")
    timings: dict[str, float] = {}
    usage: dict[str, Usage] = {}

    def stage(name, fn, *args, **kwargs):
        before, start = backend.usage, time.perf_counter()
        out = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        usage[name] = backend.usage - before
        return out

    retrieved = stage("retrieve", retrieve, question, index, backend, k_retrieve, where)
    if use_rerank:
        reranked = stage("rerank", rerank, question, retrieved, backend)
        if threshold is None:
            threshold = backend.rerank_threshold
    else:
        reranked = retrieved
    kept = keep(reranked, k_keep, threshold)
    final = stage("generate", generate_or_quote, question, kept, backend) if answer else None
    result = Result(question, retrieved, reranked, kept, final, threshold, timings, usage)
    if final is not None and result.threshold_to_answer is not None:
        result = replace(result, answer=final.with_note(closest_note(result)))
    elif final is not None and where and not retrieved:
        result = replace(result, answer=final.with_note(f"no chunk in the index matches the filter {where}"))
    return result

