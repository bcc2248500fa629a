"""Evaluate: how good is a ranking? Retrieval metrics, per query, that agree with trec_eval.

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
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "PairedResult",
    "answer_checks",
    "answer_summary",
    "evaluate",
    "hit_rate_at_k",
    "judge_answer",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_test",
    "precision_at_k",
    "ranking",
    "read_qrels_tsv",
    "read_trec_run",
    "recall_at_k",
    "run_from_hits",
    "summary",
    "token_f1",
    "write_trec_run",
]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, "Mapping[str, float] | Sequence[str]"]

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@10")

# --------------------------------------------------------------------------------------------------
# Ranking: from scores to an order, with trec_eval's tie rule.


def _as_scores(qid: str, entry) -> tuple[list[str], np.ndarray]:
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


def _order(docids: list[str], scores: np.ndarray) -> np.ndarray:
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
        docids, scores = _as_scores(str(qid), entry)
        out[str(qid)] = [docids[i] for i in _order(docids, scores)]
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
        docids, scores = _as_scores(qid, entry)  # validate every query, even ones we ignore
        if qid not in position:
            continue
        order = _order(docids, scores)[:depth]
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


# --------------------------------------------------------------------------------------------------
# Is system A really better than system B? A paired test over the same queries.


@dataclass(frozen=True)
class PairedResult:
    """Mean per-query difference a - b, its bootstrap confidence interval and a two-sided p-value."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int  # queries compared
    confidence: float = 0.95

    def __str__(self) -> str:
        return (f"mean difference {self.mean_diff:+.4f} ({self.confidence:.0%} CI {self.ci_low:+.4f} to "
                f"{self.ci_high:+.4f}), p = {self.p_value:.4f}, n = {self.n} queries")

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a one-row DataFrame."""
        return pd.DataFrame([self.__dict__])


def _paired(a, b) -> np.ndarray:
    """Return the per-query differences a - b, aligned on query id when both are Series."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if a.index.has_duplicates or b.index.has_duplicates:
            raise ValueError("a query appears twice in a or b; pass one score per query")
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        if len(only_a) or len(only_b):
            raise ValueError(f"a and b must score the same queries: {len(only_a)} only in a "
                             f"(e.g. {list(only_a[:3])}), {len(only_b)} only in b (e.g. {list(only_b[:3])}); "
                             "evaluate both runs with the same qrels")
        b = b.reindex(a.index)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be two 1-d series of per-query scores of one length, got shapes "
                         f"{a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("no queries to compare")
    d = a - b
    if not np.all(np.isfinite(d)):
        raise ValueError("a or b holds NaN or infinite scores; evaluate() gives every query a number")
    return d


def paired_test(a, b, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> PairedResult:
    """Return how much a beats b on average, how sure we can be (CI), and a p-value.

    `a` and `b` are per-query scores of two systems on the same queries, e.g. two `evaluate(...)`
    columns (pandas Series are matched by query id). With d = a - b per query:

    - confidence interval: paired bootstrap percentile interval of mean(d) (resample queries
      with replacement `n_resamples` times);
    - p-value: two-sided paired randomisation test: if a and b were interchangeable, each d
      would be as likely to be -d; p is the share of random sign flips whose |mean| is at least
      the observed |mean(d)|, counting the observed one, (hits + 1) / (n_resamples + 1). With
      2**n <= n_resamples (n < 14 by default) all 2**n sign flips are enumerated: an exact p.

    The same `seed` gives the same numbers.

    >>> r = paired_test([0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5])
    >>> round(r.mean_diff, 3), r.p_value    # exact: only 2 of 16 sign flips reach |mean| 0.25
    (0.25, 0.125)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, e.g. 0.95; got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    d = _paired(a, b)
    n = len(d)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    batch = max(1, 4_000_000 // n)  # resamples per block: bounded memory for many queries

    means = np.empty(n_resamples)
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        means[start : start + size] = d[rng.integers(0, n, size=(size, n))].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])

    tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))  # float noise must not decide a tie
    if 2**n <= n_resamples:  # exact: every assignment of signs once
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        p = float(np.mean(np.abs(signs @ d) / n >= abs(observed) - tolerance))
    else:
        hits = 0
        for start in range(0, n_resamples, batch):
            size = min(batch, n_resamples - start)
            signs = 1 - 2 * rng.integers(0, 2, size=(size, n), dtype=np.int8)
            hits += int(np.count_nonzero(np.abs(signs @ d) / n >= abs(observed) - tolerance))
        p = (hits + 1) / (n_resamples + 1)
    return PairedResult(observed, float(low), float(high), min(1.0, p), n, confidence)


# --------------------------------------------------------------------------------------------------
# Files: TREC run files (what trec_eval and ranx read) and BEIR qrels.

_SPACE = re.compile(r"\s")


def write_trec_run(run: Run, path: str | Path, tag: str = "ragkit", depth: int = 100) -> Path:
    """Write the top `depth` of each query as a TREC run file, `qid Q0 docid rank score tag` per line.

    Scores are written exactly (shortest round-trip form), so trec_eval re-sorting by score gives
    back the same order; a ranked-list run gets scores n, n-1, ..., 1.

    >>> write_trec_run({"q1": {"d1": 0.9, "d2": 0.3}}, "runs/bm25.trec", tag="bm25")  # doctest: +SKIP
    PosixPath('runs/bm25.trec')
    """
    if not tag or _SPACE.search(tag):
        raise ValueError(f"tag {tag!r} must be one word without spaces, e.g. 'bm25'")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    lines = []
    for qid, entry in run.items():
        qid = str(qid)
        docids, scores = _as_scores(qid, entry)
        for name, value in [("query id", qid)] + [("doc id", d) for d in docids]:
            if not value or _SPACE.search(value):
                raise ValueError(f"{name} {value!r} is empty or has white space; a TREC run file cannot hold it")
        for rank, j in enumerate(_order(docids, scores)[:depth], start=1):
            lines.append(f"{qid} Q0 {docids[j]} {rank} {float(scores[j])!r} {tag}\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Return the run {qid: {docid: score}} of a TREC run file (`qid Q0 docid rank score tag`).

    The rank column is ignored, as trec_eval ignores it: the order comes from the scores.

    >>> read_trec_run("runs/bm25.trec")["q1"]  # doctest: +SKIP
    {'d1': 0.9, 'd2': 0.3}
    """
    path = Path(path)
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{path}:{number}: expected 6 fields 'qid Q0 docid rank score tag', "
                                 f"got {len(fields)}: {line.strip()[:80]!r}")
            qid, _, docid, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise ValueError(f"{path}:{number}: score {score!r} is not a number") from None
            docs = run.setdefault(qid, {})
            if docid in docs:
                raise ValueError(f"{path}:{number}: {docid!r} appears twice for query {qid!r}")
            docs[docid] = value
    return run


def read_qrels_tsv(path: str | Path) -> dict[str, dict[str, int]]:
    """Return the qrels {qid: {docid: grade}} of a BEIR qrels file (`query-id corpus-id score`, tabs).

    The header line is optional. A pair listed twice keeps its last grade, as BEIR's loader does.

    >>> read_qrels_tsv("scifact/qrels/test.tsv")["1"]  # doctest: +SKIP
    {'31715818': 1}
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated fields 'query-id corpus-id score', "
                                 f"got {len(fields)}: {line.strip()[:80]!r}")
            qid, docid, grade = (x.strip() for x in fields)
            if number == 1 and (qid, docid, grade) == ("query-id", "corpus-id", "score"):
                continue
            try:
                qrels.setdefault(qid, {})[docid] = int(grade)
            except ValueError:
                raise ValueError(f"{path}:{number}: grade {grade!r} is not an integer") from None
    return qrels


# --------------------------------------------------------------------------------------------------
# Answers: are the citations right, is "not in the sources" said when it should be, how close to gold?

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITES = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_PUNCT = re.compile(r"[^\w\s]|_")


def answer_tokens(text: str) -> list[str]:
    """Return the tokens token F1 compares: lower case, citations, punctuation and articles removed.

    The normalisation of SQuAD's official evaluation (Rajpurkar et al., 2016), plus `[n]` citations.

    >>> answer_tokens("The __debug__ flag is False [2].")
    ['debug', 'flag', 'is', 'false']
    """
    text = _PUNCT.sub(" ", _CITES.sub(" ", text.lower()))
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, gold: str) -> float:
    """Return the token F1 of an answer against a gold answer (0..1; 1 when both are empty).

    Precision: the answer's tokens found in the gold one (counted with multiplicity); recall: the
    gold tokens found in the answer; F1 their harmonic mean.

    >>> round(token_f1("Under -O, assert statements are removed [1].", "Assert statements are removed under -O."), 3)
    1.0
    >>> round(token_f1("It raises an error.", "It raises AssertionError."), 3)
    0.667
    """
    a, g = Counter(answer_tokens(answer)), Counter(answer_tokens(gold))
    if not a or not g:
        return float(a == g)
    common = sum((a & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "supported": {"type": "boolean"},
        "correct": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": 300},
    },
    "required": ["supported", "correct", "reason"],
    "additionalProperties": False,
}

JUDGE_PROMPT = (
    "You grade answers written by a question-answering system from numbered sources. Be strict.\n"
    "- supported: true only if every claim in the answer is stated in the sources it cites.\n"
    "- correct: true only if the answer answers the question and agrees with the reference answer "
    "(if there is no reference answer, judge from the sources alone).\n"
    "Reply with JSON: supported, correct, and a one-sentence reason."
)


def judge_answer(answer, backend, gold: str | None = None, max_tokens: int = 200) -> dict:
    """Return {"supported", "correct", "reason"}: an LLM's verdict on a checked answer, at temperature 0.

    `answer` is a `ragkit.generate.Answer`; its cited sources (all sources if it cites none) go to
    the judge with the question and, if given, the gold answer. Use a stronger model than the one
    that wrote the answer (an online one: a 135M model is no judge). A reply that is not the JSON
    asked for raises BackendError.

    >>> judge = ragkit.OpenRouterBackend.from_env(chat_model="openai/gpt-4o-mini")    # doctest: +SKIP
    >>> judge_answer(result.answer, judge, gold="Under -O assert statements are removed.")  # doctest: +SKIP
    {'supported': True, 'correct': True, 'reason': 'Source [1] says so and it matches the reference.'}
    """
    from .generate import format_source, json_reply

    cited = [(c.number, c.hit) for c in answer.citations] or list(enumerate(answer.sources, start=1))
    sources = "\n".join(format_source(n, hit) for n, hit in cited) or "(none)"
    reference = f"\n\nReference answer: {gold}" if gold else ""
    messages = [{"role": "system", "content": JUDGE_PROMPT},
                {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {answer.question}{reference}"
                                            f"\n\nAnswer to grade: {answer.text}"}]
    completion = backend.chat(messages, json=JUDGE_SCHEMA, max_tokens=max_tokens, temperature=0.0)
    return json_reply(completion, "verdict", lambda d: {
        "supported": _boolean(d["supported"]), "correct": _boolean(d["correct"]), "reason": str(d["reason"])})


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def answer_checks(questions: Sequence, index, backend, *, judge=None, progress: bool = True,
                  **ask_options) -> pd.DataFrame:
    """Return one row per question: how the full pipeline (`ragkit.ask`) answered it, checked.

    `questions` are `ragkit.datasets.Question`s (gold answer, relevant doc ids, answerable or not).
    Columns: id, answerable, mode, answer, refused ("not in the sources"), citations (how many),
    cites_relevant (any citation from a relevant document; NaN when none cited), citation_precision
    (share of citations from relevant documents), token_f1 (answerable questions only; a refusal
    scores 0), seconds; with a `judge` backend also judge_supported, judge_correct, judge_reason
    (for answers that are not refusals). `answer_summary` turns it into the headline rates.

    >>> checks = answer_checks(load_questions()[:5], index, backend)     # doctest: +SKIP
    >>> answer_summary(checks)                                          # doctest: +SKIP
    """
    import time

    from .cache import progress_bar
    from .pipeline import ask

    rows = []
    bar = progress_bar(progress, len(questions), "answering", unit="question")
    try:
        for q in questions:
            start = time.perf_counter()
            answer = ask(q.question, index, backend, **ask_options).answer
            seconds = time.perf_counter() - start
            refused = answer.mode == "not_in_context"
            relevant = [c.hit.chunk.doc_id in q.relevant for c in answer.citations]
            row = {"id": q.id, "answerable": q.answerable, "mode": answer.mode, "answer": answer.text,
                   "refused": refused, "citations": len(relevant),
                   "cites_relevant": float(any(relevant)) if relevant else np.nan,
                   "citation_precision": float(np.mean(relevant)) if relevant else np.nan,
                   "token_f1": (0.0 if refused else token_f1(answer.text, q.answer)) if q.answerable else np.nan,
                   "seconds": seconds}
            if judge is not None:
                verdict = ({"supported": np.nan, "correct": np.nan, "reason": ""} if refused else
                           judge_answer(answer, judge, gold=q.answer if q.answerable else None))
                row.update({f"judge_{k}": v for k, v in verdict.items()})
            rows.append(row)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows).set_index("id")


def answer_summary(checks: pd.DataFrame) -> pd.Series:
    """Return the headline rates of `answer_checks` (each 0..1, NaN when no question counts).

    - answered: answerable questions not refused;
    - cites a relevant document / citation precision: over answered answerable questions;
    - refused when absent: unanswerable questions answered "not in the sources" (higher is better);
    - token F1: mean over answerable questions, refusals scoring 0;
    - judge: supported / correct: share of the judged answers (when a judge was used).
    """
    answerable, absent = checks[checks["answerable"]], checks[~checks["answerable"]]
    answered = answerable[~answerable["refused"]]
    out = {"questions": float(len(checks)),
           "answered": answerable["refused"].eq(False).mean() if len(answerable) else np.nan,
           "cites a relevant document": answered["cites_relevant"].fillna(0).mean() if len(answered) else np.nan,
           "citation precision": answered["citation_precision"].mean(),
           "refused when absent": absent["refused"].mean() if len(absent) else np.nan,
           "token F1": answerable["token_f1"].mean()}
    for name in ("supported", "correct"):
        if f"judge_{name}" in checks:
            out[f"judge: {name}"] = checks[f"judge_{name}"].astype(float).mean()
    return pd.Series(out, name="answers")
