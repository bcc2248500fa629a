"""Experiments on labelled questions: a way of cutting the corpus measured, every candidate reranked.

Chapter 5 of the workbook asks which chunker, and which chunk size, retrieves best, and at what
cost. `experiment` answers it for one configuration: chunk the documents (`chunking`), embed and
index the chunks (through the embedding cache), retrieve the top `k` chunks for every labelled
question (their vectors embedded once by the caller and passed in), and score what came back:

- quality at document level (a topic counts as found when any of its chunks is retrieved, as
  `metrics.run_from_hits` does): `recall@5` and `nDCG@10` per question;
- the cost of the index: chunks, their mean size, the index's bytes, the seconds spent embedding
  and how many texts really went to the model (none from a warm cache), and `cut at 256`: how many
  embedded texts (title line + text) are longer than the model reads;
- the reader's cost: `top-5 tokens`, the word pieces of the top 5 chunks a generator would read,
  and per question `tokens to answer`: word pieces read, best chunk first, up to the first chunk
  of a relevant topic (infinite when none is in the top `k`).

The model warns when it embeds a text longer than it reads; `experiment` catches those warnings,
since its `cut at 256` column counts the same texts (whether or not they were embedded just now).

`quality_with_ci` turns several experiments' per-question scores into means with bootstrap
confidence intervals, for a plot with error bars.

Chapter 6 compares two systems on the same questions: `rerank_all` reranks every question's
candidates as `pipeline.rerank` does, in one batch (each passage read once, however many questions
retrieved it) and with the reranker's per-pair numbers kept on disk (`cache.PairCache`), like
embeddings, so a second run reranks nothing.

>>> import tempfile, ragkit
>>> from ragkit.cache import EmbeddingCache
>>> from ragkit.types import Document
>>> docs = [Document("cats", "Cats purr when they are content."), Document("dogs", "Dogs bark at the postman.")]
>>> backend = ragkit.backend(verbose=False)
>>> qrels = {"q1": {"cats": 1}, "q2": {"dogs": 1}}
>>> Q = backend.embed(["Why do cats purr?", "Who do dogs bark at?"])
>>> run = experiment(docs, qrels, Q, backend, "paragraph", cache=EmbeddingCache(tempfile.mkdtemp() + "/e.sqlite"))
>>> run.row["chunks"], run.row["recall@5"], list(run.scores["tokens to answer"])   # each found first: its word pieces
(2, 1.0, [8.0, 7.0])
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from ..cache import EmbeddingCache, PairCache
from ..chunking import chunk_documents
from ..embedder import MAX_TOKENS, count_tokens
from ..index import VectorIndex, embedding_text
from ..pipeline import rerank
from ..rerankers.cached import CachedReranker
from ..types import Hit
from ..vectors import best_first
from .metrics import evaluate, run_from_hits, summary
from .paired import mean_ci

if TYPE_CHECKING:
    from ..types import Document, Embeddings

__all__ = ["Experiment", "QUALITY", "experiment", "quality_with_ci", "rerank_all", "tokens_to_answer"]
TRUNCATED = "longer than 256 word pieces"  # what the embedder's warning says (`cut at 256` counts these)

QUALITY = ("recall@5", "ndcg@10")  # the document-level metrics every experiment reports


@dataclass(frozen=True)
class Experiment:
    """One chunking configuration measured: a row of numbers, and the scores of every question.

    - `row`: chunks, mean size, cut at 256, index KB, embedded now, embed seconds, and the means of
      recall@5, ndcg@10 and top-5 tokens over the questions
    - `scores`: one row per question (in the order of the qrels): recall@5, ndcg@10, top-5 tokens,
      tokens to answer
    """

    method: str
    options: dict
    row: dict
    scores: pd.DataFrame


def tokens_to_answer(hits: "Sequence[Hit]", relevant: "Mapping[str, int] | set[str]") -> float:
    """Return the word pieces read, best chunk first, up to and including the first relevant chunk.

    A chunk is relevant when its document is in `relevant`; infinite if no retrieved chunk is.

    >>> from ragkit.types import Chunk, Hit
    >>> hits = [Hit(Chunk(f"{d}#0", d, d, "...", 0, 0, 3, n_tokens=n), 0.5, r)
    ...         for r, (d, n) in enumerate([("a", 100), ("b", 40), ("c", 60)], start=1)]
    >>> tokens_to_answer(hits, {"b"}), tokens_to_answer(hits, {"z"})   # 100 + 40 read to reach b
    (140.0, inf)
    """
    read = 0
    for hit in hits:
        read += hit.chunk.n_tokens
        if hit.chunk.doc_id in relevant:
            return float(read)
    return math.inf


def experiment(docs: "Sequence[Document]", qrels: Mapping[str, Mapping[str, int]], question_vectors: "Embeddings",
               backend, method: str, *, cache: "EmbeddingCache | None" = None, k: int = 50,
               **options) -> Experiment:
    """Return one chunking configuration measured: chunk, embed, index, retrieve, score.

    `question_vectors` is `backend.embed(questions)`, row i the question of the i-th query id of
    `qrels` (embed the questions once, reuse them in every configuration). `method` and `options` go to
    `chunking.chunk_documents` (e.g. `"tokens", size=200, overlap=20`). `cache` defaults to the
    on-disk embedding cache, so running a configuration again embeds nothing.
    """
    if len(question_vectors.vectors) != len(qrels):
        raise ValueError(f"{len(question_vectors.vectors)} question vectors for {len(qrels)} queries in the qrels: "
                         "embed the questions in the order of the qrels")
    cache = EmbeddingCache() if cache is None else cache  # an empty cache is falsy: test for None
    chunks = chunk_documents(docs, method, **options)
    texts = [embedding_text(c) for c in chunks]  # title line + text, as `index.build_index` embeds
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedded = cache.embed(backend, texts, progress=False)
    seconds = time.perf_counter() - start
    for w in caught:  # the truncation warnings are counted in `cut at 256`; pass any other on
        if TRUNCATED not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    index = VectorIndex(embedded.vectors, chunks, embedded.model)
    lengths = count_tokens(texts)
    hits = dict(zip(qrels, index.search_all(question_vectors, k=k)))
    scores = evaluate(qrels, run_from_hits(hits), list(QUALITY))  # document level
    scores["top-5 tokens"] = [float(sum(h.chunk.n_tokens for h in hits[q][:5])) for q in qrels]
    scores["tokens to answer"] = [tokens_to_answer(hits[q], qrels[q]) for q in qrels]
    row = {"chunks": len(chunks), "mean size": float(np.mean([c.n_tokens for c in chunks])),
           "cut at 256": sum(n + 2 > MAX_TOKENS for n in lengths),  # + the [CLS] and [SEP] tokens
           "index KB": index.vectors.nbytes / 1024, "embedded now": embedded.embedded, "embed seconds": seconds,
           **summary(scores[[*QUALITY, "top-5 tokens"]]).to_dict()}
    return Experiment(method, dict(options), row, scores)


def quality_with_ci(runs: Mapping[str, pd.DataFrame], metrics: Sequence[str] = QUALITY,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Return one row per (run, metric): the mean over questions and its bootstrap interval.

    `runs` maps a name to per-question scores (an `Experiment.scores`, or any `evaluate` frame).
    Columns: run, metric, score (the mean), low, high (`paired.mean_ci`, seed 0).

    >>> frame = quality_with_ci({"a": pd.DataFrame({"recall@5": [1.0, 1.0, 1.0, 0.0]})}, ["recall@5"])
    >>> frame.to_dict("records")
    [{'run': 'a', 'metric': 'recall@5', 'score': 0.75, 'low': 0.25, 'high': 1.0}]
    """
    rows = []
    for name, scores in runs.items():
        for metric in metrics:
            ci = mean_ci(scores[metric], confidence=confidence)
            rows.append({"run": name, "metric": metric, "score": ci.mean, "low": ci.low, "high": ci.high})
    return pd.DataFrame(rows)


def rerank_all(questions: Mapping[str, str], candidates: "Mapping[str, Sequence[Hit]]", backend,
               pair_cache: PairCache | None = None) -> dict[str, list[Hit]]:
    """Return each question's candidates reordered by the backend's reranker, as `pipeline.rerank` does.

    `questions` maps a query id to its text, `candidates` the same ids to their retrieved hits. With a
    local backend (one whose `reranker` splits its work into per-pair values) every (question,
    passage) pair is prepared in one batch and its values kept in `pair_cache` (default: the on-disk
    `cache.PairCache`); the scores are the reranker's own. Any other backend (a reranking API) is
    called once per question, through `pipeline.rerank`.

    >>> reranked = rerank_all({q.id: q.question for q in questions}, dense, backend)     # doctest: +SKIP
    """
    reranker = getattr(backend, "reranker", None)
    if not hasattr(reranker, "pair_values"):
        return {qid: rerank(questions[qid], hits, backend) for qid, hits in candidates.items()}
    scorer = CachedReranker(reranker, PairCache() if pair_cache is None else pair_cache)
    texts = {qid: [embedding_text(h.chunk) for h in hits] for qid, hits in candidates.items()}
    scorer.prepare(sorted({(questions[qid], t) for qid, ts in texts.items() for t in ts}), progress=False)
    out = {}
    for qid, hits in candidates.items():
        hits = list(hits)
        scores = scorer.score(questions[qid], texts[qid]) if hits else np.zeros(0)
        out[qid] = [Hit(hits[i].chunk, float(scores[i]), rank) for rank, i in enumerate(best_first(scores), start=1)]
    return out
