"""Metrics: how good is a ranking? Retrieval metrics, per query, that agree with trec_eval.

Two inputs, both plain dicts keyed by query id:

- `qrels`, the judgements: `{qid: {docid: grade}}`, an integer grade per judged document;
  grade > 0 means relevant (2 can mean "more relevant than 1"), 0 or less means judged not relevant.
- `run`, what a system retrieved: `{qid: {docid: score}}` (higher is better), or an already ranked
  list `{qid: [docid, ...]}` (best first).

A run of scores is ranked by score, highest first; **ties are broken by doc id, descending** (in
code-point order, "b" before "a"), exactly as trec_eval does, so our numbers match trec_eval's.
Ids are compared as strings (an int id 7 is "7").

Metrics at a cut-off k, each a number in [0, 1] per query:

- `recall@k`: relevant documents in the top k / all relevant documents of the query.
- `precision@k`: relevant documents in the top k / k (k, even when fewer were retrieved); without
  a cut-off, / the number retrieved.
- `mrr@k`: 1 / rank of the first relevant document in the top k, 0 if none (reciprocal rank).
- `hit_rate@k`: 1 if any relevant document is in the top k, else 0 (trec_eval's `success`).
- `ndcg@k`: discounted cumulative gain of the top k, divided by that of the best possible ranking
  (trec_eval's `ndcg_cut`): the document at rank r adds grade / log2(r + 1), and the ideal ranking
  puts all judged documents in order of grade.

Leave out "@k" ("mrr", "ndcg") to use the whole ranking. A query with no relevant documents scores
0 on every metric (as in trec_eval); a query in the qrels that the run lacks is kept and scores 0;
a query in the run but not in the qrels is ignored.

>>> qrels = {"q1": {"d1": 1, "d3": 2}}
>>> run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}}
>>> evaluate(qrels, run, ["recall@2", "mrr@10"]).round(3).to_dict("records")
[{'recall@2': 0.5, 'mrr@10': 1.0}]
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "evaluate",
    "hit_rate_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking",
    "recall_at_k",
    "run_from_hits",
    "summary",
]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, "Mapping[str, float] | Sequence[str]"]

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@10")

# --------------------------------------------------------------------------------------------------
# Ranking: from scores to an order, with trec_eval's tie rule.


def as_scores(qid: str, entry) -> tuple[list[str], np.ndarray]:
    """Return (doc ids, scores) of one query's run entry; a ranked list gets scores n, n-1, ..., 1."""
    if isinstance(entry, Mapping):
        docids = [str(d) for d in entry]
        try:
            scores = np.asarray(list(entry.values()), dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"run[{qid!r}] has a score that is not a number; scores must be floats") from None
        if not np.all(np.isfinite(scores)):
            bad = docids[int(np.flatnonzero(~np.isfinite(scores))[0])]
            raise ValueError(f"run[{qid!r}][{bad!r}] is {entry[bad]}; scores must be finite numbers")
        if len(set(docids)) != len(docids):
            raise ValueError(f"run[{qid!r}] has doc ids that collide once turned into strings")
        return docids, scores
    if isinstance(entry, (str, bytes)) or not isinstance(entry, (Sequence, np.ndarray)):
        raise TypeError(
            f"run[{qid!r}] is a {type(entry).__name__}; give {{docid: score}} or a ranked list [docid, ...]"
        )
    docids = [str(d) for d in entry]
    if len(set(docids)) != len(docids):
        dup = next(d for i, d in enumerate(docids) if d in docids[:i])
        raise ValueError(f"run[{qid!r}] lists {dup!r} twice; a ranking holds each document once")
    return docids, np.arange(len(docids), 0, -1, dtype=np.float64)


def trec_order(docids: list[str], scores: np.ndarray) -> np.ndarray:
    """Return the indices of docids in rank order: score descending, then doc id descending."""
    if not docids:
        return np.empty(0, dtype=np.int64)
    # lexsort sorts by the last key first, ascending: (score, docid) ascending, reversed = both descending
    return np.lexsort((np.asarray(docids, dtype=str), scores))[::-1]


def ranking(run: Run) -> dict[str, list[str]]:
    """Return each query's doc ids, best first (score descending, ties by doc id descending).

    >>> ranking({"q": {"a": 0.5, "b": 0.5, "c": 0.9}})
    {'q': ['c', 'b', 'a']}
    """
    out = {}
    for qid, entry in run.items():
        docids, scores = as_scores(str(qid), entry)
        out[str(qid)] = [docids[i] for i in trec_order(docids, scores)]
    return out


# --------------------------------------------------------------------------------------------------
# Metrics: one matrix of grades (queries x ranks), then each metric is a line of numpy.

_NAMES = {"ndcg": "ndcg", "recall": "recall", "r": "recall", "precision": "precision", "p": "precision",
          "mrr": "mrr", "rr": "mrr", "hit_rate": "hit_rate", "hit": "hit_rate", "success": "hit_rate"}
METRICS = ("ndcg", "recall", "precision", "mrr", "hit_rate")
_METRIC = re.compile(r"\s*([a-z_]+)\s*(?:@\s*(\d+))?\s*")


def _parse(metric: str) -> tuple[str, str, int | None]:
    """Return (canonical name, kind, k) for "ndcg@10" and the like; k None means the whole ranking."""
    m = _METRIC.fullmatch(str(metric).lower())
    if not m or m.group(1) not in _NAMES:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(m + '@k' for m in METRICS)}, "
                         "e.g. 'ndcg@10' (leave out @k for the whole ranking)")
    kind, k = _NAMES[m.group(1)], m.group(2)
    if k is not None and int(k) < 1:
        raise ValueError(f"{metric!r}: the cut-off k must be at least 1")
    return (f"{kind}@{int(k)}" if k else kind), kind, (int(k) if k else None)


def _check_qrels(qrels: Qrels) -> dict[str, dict[str, int]]:
    if not isinstance(qrels, Mapping):
        raise TypeError(f"qrels must be a dict {{qid: {{docid: grade}}}}, got {type(qrels).__name__}")
    out = {}
    for qid, judged in qrels.items():
        if not isinstance(judged, Mapping):
            raise TypeError(f"qrels[{qid!r}] must be a dict {{docid: grade}}, got {type(judged).__name__}")
        grades = {}
        for docid, grade in judged.items():
            whole = isinstance(grade, (int, np.integer)) or (
                isinstance(grade, (float, np.floating)) and math.isfinite(grade) and grade == int(grade))
            if isinstance(grade, (bool, np.bool_)) or not whole:
                raise ValueError(f"qrels[{qid!r}][{docid!r}] is {grade!r}; relevance grades must be integers "
                                 "(0 = not relevant, 1 = relevant, 2 = highly relevant, ...)")
            grades[str(docid)] = int(grade)
        out[str(qid)] = grades
    return out


def _grades(qrels: dict[str, dict[str, int]], run: Run, depth: int | None):
    """Return (qids, gains, ideal, n_relevant, n_retrieved) for the queries of the qrels.

    gains[i, r] is the grade of the document at rank r + 1 for query i (0 if unjudged or past the end);
    ideal[i, r] is the r + 1-th largest grade of query i's judgements.
    """
    qids = list(qrels)
    # One long table of (query row, doc id, rank) for the top `depth` of every ranking.
    rows, docs, ranks = [], [], []
    position = {q: i for i, q in enumerate(qids)}
    for qid, entry in run.items():
        qid = str(qid)
        docids, scores = as_scores(qid, entry)  # validate every query, even ones we ignore
        if qid not in position:
            continue
        order = trec_order(docids, scores)[:depth]
        rows.append(np.full(len(order), position[qid]))
        docs += [docids[j] for j in order]
        ranks.append(np.arange(len(order)))
    rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    ranks = np.concatenate(ranks) if ranks else np.empty(0, dtype=np.int64)
    width = int(ranks.max()) + 1 if ranks.size else 0
    gains = np.zeros((len(qids), width))
    if rows.size:
        judged = pd.Series({(q, d): g for q, judgements in qrels.items() for d, g in judgements.items()},
                           dtype=np.float64)
        keys = pd.MultiIndex.from_arrays([np.asarray(qids, dtype=object)[rows], docs])
        gains[rows, ranks] = judged.reindex(keys).fillna(0).to_numpy() if len(judged) else 0
    gains = np.maximum(gains, 0)  # negative grades count as not relevant, no gain

    n_judged = max((len(j) for j in qrels.values()), default=0)
    ideal = np.zeros((len(qids), min(n_judged, depth or n_judged)))
    for i, judgements in enumerate(qrels.values()):  # per query, not per document: sort its grades
        best = -np.sort(-np.maximum(np.fromiter(judgements.values(), float, len(judgements)), 0))
        best = best[: ideal.shape[1]]
        ideal[i, : len(best)] = best
    n_relevant = np.array([sum(g > 0 for g in j.values()) for j in qrels.values()], dtype=np.float64)
    n_retrieved = np.bincount(rows, minlength=len(qids)).astype(np.float64)
    return qids, gains, ideal, n_relevant, n_retrieved


def _discount(width: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, width + 2))


def _metric(kind: str, k: int | None, gains, ideal, n_relevant, n_retrieved) -> np.ndarray:
    g = gains[:, :k]  # k past the end of the rankings: all of them (the rest counts as not relevant)
    relevant = g > 0
    found = relevant.sum(axis=1).astype(np.float64)
    zeros = np.zeros(len(g))
    if kind == "recall":
        return np.divide(found, n_relevant, out=zeros, where=n_relevant > 0)
    if kind == "precision":  # at k: divide by k, as trec_eval; whole ranking: by the number retrieved
        return found / k if k is not None else np.divide(found, n_retrieved, out=zeros, where=n_retrieved > 0)
    if kind == "hit_rate":
        return (found > 0).astype(np.float64)
    if kind == "mrr":
        first = relevant.argmax(axis=1) if g.shape[1] else zeros  # index of the first True (masked if none)
        return np.where(found > 0, 1.0 / (first + 1), 0.0)
    if kind == "ndcg":
        dcg = g @ _discount(g.shape[1])
        best = ideal[:, :k]
        idcg = best @ _discount(best.shape[1])
        return np.divide(dcg, idcg, out=np.zeros(len(g)), where=idcg > 0)
    raise AssertionError(kind)


def evaluate(qrels: Qrels, run: Run, metrics: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """Return a DataFrame with one row per query of the qrels (index "query") and a column per metric.

    Queries the run lacks are kept with 0 everywhere; queries that are not in the qrels are ignored.
    Rows are in the order of the qrels. Take the mean of a column with `summary(df)`.

    >>> qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}}
    >>> evaluate(qrels, {"q1": ["x", "a"], "q2": ["b"]}, ["mrr@10", "recall@10"]).to_dict("index")
    {'q1': {'mrr@10': 0.5, 'recall@10': 1.0}, 'q2': {'mrr@10': 1.0, 'recall@10': 0.5}}
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    parsed = [_parse(m) for m in metrics]
    qrels = _check_qrels(qrels)
    if not isinstance(run, Mapping):
        raise TypeError(f"run must be a dict {{qid: {{docid: score}}}} or {{qid: [docid, ...]}}, "
                        f"got {type(run).__name__}")
    if qrels and run and not set(qrels) & {str(q) for q in run}:
        warnings.warn(f"no query id of the run is in the qrels (run has e.g. {next(iter(run))!r}, qrels "
                      f"{next(iter(qrels))!r}): every query scores 0; check both use the same ids", stacklevel=2)
    ks = [k for _, _, k in parsed]
    depth = None if None in ks else max(ks, default=0)
    qids, *arrays = _grades(qrels, run, depth)
    columns = {name: _metric(kind, k, *arrays) for name, kind, k in parsed}  # in order, without repeats
    return pd.DataFrame(columns, index=pd.Index(qids, name="query", dtype=object), columns=list(columns))


def summary(df: pd.DataFrame) -> pd.Series:
    """Return the mean of each metric column over the queries (the number usually reported).

    >>> summary(pd.DataFrame({"ndcg@10": [1.0, 0.5]})).to_dict()
    {'ndcg@10': 0.75}
    """
    if len(df) == 0:
        raise ValueError("no queries to summarise: the qrels were empty")
    return df.select_dtypes("number").mean().rename("mean")


def _one(metric: str, qrels: Qrels, run: Run) -> pd.Series:
    return evaluate(qrels, run, [metric]).iloc[:, 0]


def recall_at_k(qrels: Qrels, run: Run, k: int = 10) -> pd.Series:
    """Return per-query recall@k: the share of each query's relevant documents found in the top k.

    >>> recall_at_k({"q": {"a": 1, "b": 1}}, {"q": ["a", "x"]}, k=2).to_dict()
    {'q': 0.5}
    """
    return _one(f"recall@{k}", qrels, run)


def precision_at_k(qrels: Qrels, run: Run, k: int = 10) -> pd.Series:
    """Return per-query precision@k: relevant documents in the top k, divided by k.

    >>> precision_at_k({"q": {"a": 1}}, {"q": ["a", "x"]}, k=4).to_dict()
    {'q': 0.25}
    """
    return _one(f"precision@{k}", qrels, run)


def mrr_at_k(qrels: Qrels, run: Run, k: int = 10) -> pd.Series:
    """Return per-query reciprocal rank: 1 / rank of the first relevant document in the top k, else 0.

    >>> mrr_at_k({"q": {"a": 1}}, {"q": ["x", "y", "a"]}, k=10).to_dict()
    {'q': 0.3333333333333333}
    """
    return _one(f"mrr@{k}", qrels, run)


def hit_rate_at_k(qrels: Qrels, run: Run, k: int = 10) -> pd.Series:
    """Return per-query hit rate: 1.0 if any relevant document is in the top k, else 0.0.

    >>> hit_rate_at_k({"q": {"a": 1}}, {"q": ["x", "a"]}, k=1).to_dict()
    {'q': 0.0}
    """
    return _one(f"hit_rate@{k}", qrels, run)


def ndcg_at_k(qrels: Qrels, run: Run, k: int = 10) -> pd.Series:
    """Return per-query nDCG@k with graded gains and a log2 discount (trec_eval's ndcg_cut).

    >>> ndcg_at_k({"q": {"a": 1}}, {"q": ["x", "a"]}, k=10).round(4).to_dict()   # (1/log2(3)) / 1
    {'q': 0.6309}
    """
    return _one(f"ndcg@{k}", qrels, run)


def run_from_hits(results: Mapping[str, Sequence], level: str = "doc") -> dict[str, dict[str, float]]:
    """Return a run {qid: {id: score}} from retrieved hits {qid: [Hit, ...]}.

    At `level="doc"` a document scores as its best chunk (qrels judge documents, not chunks);
    at `level="chunk"` each chunk id keeps its own score.

    >>> run = run_from_hits({"q1": ragkit.retrieve("What is RAG?", index, backend)})  # doctest: +SKIP
    """
    if level not in ("doc", "chunk"):
        raise ValueError(f"level must be 'doc' or 'chunk', got {level!r}")
    run: dict[str, dict[str, float]] = {}
    for qid, hits in results.items():
        scores: dict[str, float] = {}
        for hit in hits:
            key = hit.chunk.doc_id if level == "doc" else hit.chunk.id
            scores[key] = max(scores.get(key, -math.inf), float(hit.score))
        run[str(qid)] = scores
    return run
