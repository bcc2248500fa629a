"""Benchmark: retrieval configurations compared on labelled queries, the code behind `ragkit eval`.

Seven configurations, each scored per query by `ragkit.eval.metrics` (nDCG@10, recall@100, MRR@10):

- `dense`: cosine similarity of embeddings over the whole index (`ragkit.index.VectorIndex`)
- `bm25`: BM25 over words (`ragkit.lexical.BM25Index`)
- `hybrid`: the dense and BM25 top 100, fused by normalised score fusion (`ragkit.hybrid.score_fusion`)
- `dense+rerank`, `bm25+rerank`, `hybrid+rerank`: that configuration's top N (default 20) reordered
  by the reranker (offline: `local/minilm-maxsim+lexical`), the rest of its top 100 after them in
  their first-stage order. `dense+rerank` with N = 20 is what `ragkit ask` and the notebooks do: the
  one configuration marked `default`.
- `hybrid+rerank@30`: the same with the hybrid top 30 reranked, whatever N is. The reranker's
  weights were fitted on SciFact's train split and this depth chosen by cross-validation there
  (held-out nDCG@10 on train: 0.746 reranking the hybrid top 20, 0.753 the top 30, 0.752 the top 100).

Each configuration returns its top 100 chunks per query; a document scores as its best chunk
(`eval.metrics.run_from_hits`' rule), since the judgements are about documents.

Caches, under `$RAGKIT_CACHE_DIR` (default ~/.cache/ragkit), so a second run skips the model work:
- corpus embeddings: `EmbeddingCache` (384 float32 = 1.5 KB per chunk);
- the reranker's per-(query, passage) numbers: `cache.PairCache` (`rerank-pairs.sqlite`), through
  `rerankers.cached.CachedReranker`. For the offline
  reranker these are the five that need the model (`rerankers.offline.PAIR_SCORES`: cosine, MaxSim, best
  window, best sentence, title; five float64 under a 16-byte key, about 70 bytes a pair on disk:
  780 KB for SciFact's 11,294 pairs);
  the others depend on the query's words or the whole candidate set (BM25 within the candidates,
  word overlap, gaps to the best) and are recomputed, in milliseconds. Nothing is kept per chunk
  (per-token vectors would be about 200 KB a chunk).

The reranker reads what the retrievers read (`lexical.indexed_text`: the title line, then the text),
as it did when its weights were fitted.

Queries/s is what one query costs in this process without any cache: the queries are embedded
afresh (batched) and searched; reranking is timed on `TIMING_QUERIES` queries with caches off (the
MiniLM pass over their N candidates, as `ragkit ask` pays it) and added per query.

>>> report = benchmark_beir("../shared/data/scifact")                 # doctest: +SKIP
>>> print(report)                                                     # doctest: +SKIP
>>> report.paired("hybrid", "dense")                                  # doctest: +SKIP
"""
from __future__ import annotations

import inspect
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..backends import LocalBackend
from ..cache import EmbeddingCache, PairCache
from ..embedder import LocalEmbedder
from ..hybrid import score_fusion
from ..index import VectorIndex
from ..lexical import B, K1, STEMMER, BM25Index, as_chunks, indexed_text
from ..pipeline import ask
from ..rerankers import LocalReranker
from ..rerankers.cached import CachedReranker
from ..types import Chunk
from ..vectors import best_first
from .beir import load_beir
from .metrics import evaluate
from .paired import PairedResult, paired_test
from .trec import write_trec_run

__all__ = ["CONFIGS", "DEFAULT_CONFIG", "DEPTH", "METRICS", "Report", "benchmark", "benchmark_beir",
           "parse_configs", "seconds_per_query"]

CONFIGS = ("dense", "bm25", "hybrid", "dense+rerank", "bm25+rerank", "hybrid+rerank", "hybrid+rerank@30")
DEFAULT_CONFIG = "dense+rerank"
ASK_K = inspect.signature(ask).parameters["k_retrieve"].default  # what `ragkit ask` reranks: 20
DEPTH = 100  # chunks per query in each ranking and run file
METRICS = ("ndcg@10", "recall@100", "mrr@10")
TIMING_QUERIES = 5


def rerank_depth(config: str, rerank_top: int = ASK_K) -> int | None:
    """Return how many candidates a configuration reranks (None: it does not rerank).

    `base+rerank` reranks `rerank_top`; `base+rerank@N` reranks N.

    >>> rerank_depth("hybrid+rerank"), rerank_depth("hybrid+rerank@30"), rerank_depth("bm25")
    (20, 30, None)
    """
    if "+rerank" not in config:
        return None
    _, _, depth = config.partition("@")
    return int(depth) if depth else rerank_top


def parse_configs(spec: str | Sequence[str] | None) -> list[str]:
    """Return the configuration names of a comma-separated list (None: all), checked, in table order.

    Besides CONFIGS, `base+rerank@N` reranks a first stage's top N (e.g. `dense+rerank@50`); such
    names come after the others, in the order given.

    >>> parse_configs("bm25, dense+rerank@50, dense+rerank")
    ['bm25', 'dense+rerank', 'dense+rerank@50']
    """
    if spec is None:
        return list(CONFIGS)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    deeper = [n for n in dict.fromkeys(names)
              if n not in CONFIGS and re.fullmatch(r"(dense|bm25|hybrid)\+rerank@[1-9]\d*", n)]
    unknown = [n for n in names if n not in CONFIGS and n not in deeper]
    if unknown or not names:
        raise ValueError(f"unknown configuration {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {','.join(CONFIGS)} (or base+rerank@N)")
    return [c for c in CONFIGS if c in names] + deeper


# --------------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    """Per configuration: mean metrics and queries/s (`table`), per-query metrics, and the runs.

    `table` has one row per configuration (index `config`) and columns nDCG@10, recall@100, MRR@10
    (as `METRICS`), `qps` and `default`. `runs[config]` is `{qid: {doc id: score}}`, top 100;
    `rankings[config]` the same as arrays of chunk positions and scores, one row per `qids` entry.
    """

    name: str
    table: pd.DataFrame
    per_query: dict[str, pd.DataFrame]
    runs: dict[str, dict[str, dict[str, float]]]
    info: dict = field(default_factory=dict)
    retrievers: dict = field(default_factory=dict, repr=False)  # the VectorIndex, BM25Index, reranker
    rankings: dict = field(default_factory=dict, repr=False)  # config -> (chunk indices, scores), queries x 100
    qids: list = field(default_factory=list, repr=False)  # the rows of the rankings
    queries: list = field(default_factory=list, repr=False)  # their texts
    qrels: dict = field(default_factory=dict, repr=False)  # the judgements scored against

    def to_frame(self) -> pd.DataFrame:
        """Return the table (a copy), for a notebook."""
        return self.table.copy()

    def to_json(self) -> list[dict]:
        """Return the table as a list of objects: config, ndcg@10, recall@100, mrr@10, qps, default."""
        return [{"config": config, **{m: round(float(row[m]), 4) for m in METRICS},
                 "qps": round(float(row["qps"]), 2), "default": bool(row["default"])}
                for config, row in self.table.iterrows()]

    def paired(self, a: str, b: str = "dense", metric: str = "ndcg@10", **options) -> PairedResult:
        """Return the paired test of configuration a against b on `metric`, over the same queries."""
        for c in (a, b):
            if c not in self.per_query:
                raise ValueError(f"{c!r} was not run; this report has {', '.join(self.per_query)}")
        return paired_test(self.per_query[a][metric], self.per_query[b][metric], **options)

    def write_runs(self, folder: str | Path) -> list[Path]:
        """Write one TREC run file per configuration, `{folder}/{config}.trec`, top 100 per query."""
        return [write_trec_run(run, Path(folder) / f"{config}.trec", tag=config, depth=DEPTH)
                for config, run in self.runs.items()]

    def __str__(self) -> str:
        i = self.info
        parts = []
        if i.get("embedding_model") and self.table.index.str.match("dense|hybrid").any():
            parts.append(f"embeddings {i['embedding_model']}")
        if self.table.index.str.match("bm25|hybrid").any():
            parts.append(f"BM25 k1={i['bm25']['k1']} b={i['bm25']['b']}, stemmer {i['bm25']['stemmer']}")
        if i.get("reranker"):
            deeper = [c for c in self.table.index if "@" in c]
            parts.append(f"reranker {i['reranker']} on the top {i['reranked']}"
                         + "".join(f" ({c}: top {rerank_depth(c)})" for c in deeper))
        lines = [f"{self.name}: {i['queries']:,} queries, {i['documents']:,} documents"
                 + (f" ({i['chunks']:,} chunks)" if i["chunks"] != i["documents"] else ""),
                 "; ".join(parts), "",
                 f"{'config':16s} {'nDCG@10':>8s} {'recall@100':>10s} {'MRR@10':>7s} {'queries/s':>10s}"]
        for config, row in self.table.iterrows():
            mark = " *" if row["default"] else ""
            lines.append(f"{config + mark:16s} {row['ndcg@10']:8.4f} {row['recall@100']:10.4f} "
                         f"{row['mrr@10']:7.4f} {row['qps']:10.1f}")
        if self.table["default"].any():
            lines.append(f"* the default of `ragkit ask` and the notebooks: dense top {ASK_K}, reranked")
        elif DEFAULT_CONFIG in self.table.index:
            lines.append(f"(no row is the default: `ragkit ask` reranks the dense top {ASK_K})")
        if i.get("rerank_seconds") is not None:
            timed = i.get("rerank_seconds_by_depth") or {i["reranked"]: i["rerank_seconds"]}
            lines.append("queries/s without caches; reranking timed at " + ", ".join(
                f"{s * 1000:.0f} ms a query for the top {n}" for n, s in timed.items())
                + f" ({i['timing_queries']} queries)")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Running the configurations


def seconds_per_query(reranker, queries: Sequence[str], candidates: Sequence[Sequence[str]]) -> float:
    """Return the mean time `reranker` takes for one query's candidates, with no cache at all."""
    fresh = reranker.uncached() if hasattr(reranker, "uncached") else reranker
    fresh.score(queries[0], list(candidates[0][:1]))  # load the model outside the timing
    start = time.perf_counter()
    for q, docs in zip(queries, candidates):
        fresh.score(q, list(docs))
    return (time.perf_counter() - start) / max(1, len(queries))


def _embed_corpus(chunks: list[Chunk], texts: list[str], backend, cache: EmbeddingCache, progress: bool,
                  info: dict) -> VectorIndex:
    """Return the vector index of the texts, embedded through the cache; note what it cost in `info`."""
    with warnings.catch_warnings(record=True) as caught:  # one line below, not a warning per batch
        warnings.simplefilter("always")
        embedded = cache.embed(backend, texts, progress=progress)
    long, limit = 0, ""
    for w in caught:
        if m := re.match(r"(\d+) of \d+ texts are longer than (\d+)", str(w.message)):
            long, limit = long + int(m.group(1)), m.group(2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if long and progress:
        print(f"ragkit: {long:,} of the {embedded.embedded:,} passages embedded are longer than the model "
              f"reads ({limit} word pieces): it embedded their beginning (as BEIR's published runs do)",
              file=sys.stderr)
    info.update(embedded=embedded.embedded, embeddings_cached=embedded.cached)
    return VectorIndex(embedded.vectors, chunks, embedded.model)


def _embed_queries(backend, index: VectorIndex, texts: list[str]) -> np.ndarray:
    # In batches, each checked against the index's model (EmbeddingModelMismatch otherwise).
    return np.vstack([index.check_query(backend.embed(texts[s : s + 64])) for s in range(0, len(texts), 64)])


def _search_dense(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [index.search_vectors(queries[s : s + 256], k) for s in range(0, len(queries), 256)]
    return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])


def _rerank(first: tuple[np.ndarray, np.ndarray], n: int, queries: list[str], texts: list[str],
            scorer: CachedReranker) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each row's top n by the reranker; the rest keeps its order, scored below them all."""
    indices, _ = first
    out_i = indices.copy()
    out_s = np.zeros(indices.shape)
    for row, (query, ranked) in enumerate(zip(queries, indices)):
        candidates = ranked[:n][ranked[:n] >= 0]  # -1 pads a row that has fewer candidates
        s = scorer.score(query, [texts[i] for i in candidates])
        order = best_first(s)  # ties keep the first-stage order
        out_i[row, : len(s)] = candidates[order]
        out_s[row, : len(s)] = s[order]
        out_s[row, len(s):] = s.min() - np.arange(1, indices.shape[1] - len(s) + 1)
    return out_i, out_s


def _doc_run(qids: list[str], ranking: tuple[np.ndarray, np.ndarray], chunks: list[Chunk]) -> dict:
    """Return {qid: {doc id: score}}: each document at its best chunk's score (rows are best first)."""
    run = {}
    for qid, row_i, row_s in zip(qids, *ranking):
        docs: dict[str, float] = {}
        for i, s in zip(row_i, row_s):
            if i >= 0:  # -1 pads a row with fewer chunks
                docs.setdefault(chunks[i].doc_id, float(s))
        run[qid] = docs
    return run


def benchmark(chunks: Sequence[Chunk], queries: dict[str, str], qrels: dict[str, dict[str, int]],
              configs: Sequence[str] | str | None = None, *, name: str = "benchmark", backend=None,
              reranker=None, cache: EmbeddingCache | None = None, pair_cache: PairCache | None = None,
              rerank_top: int = ASK_K, text: Callable[[Chunk], str] = indexed_text,
              progress: bool = True) -> Report:
    """Return the report of each configuration on the queries: metrics, queries/s, per-query scores, runs.

    `chunks` (or Documents, one chunk each) are what is searched; `queries` {qid: text} and `qrels`
    {qid: {doc id: grade}} judge documents (`chunk.doc_id`). `backend` embeds (default: the local
    models), `reranker` reranks (default: the offline `local/minilm-maxsim+lexical`), `text(chunk)` is
    what all of them read. `cache`/`pair_cache` default to ragkit's caches; `progress` shows tqdm
    bars on stderr for the long steps (embedding the corpus, the reranker's model pass).

    >>> report = benchmark(chunks, {"q1": "what is BM25?"}, {"q1": {"bm25-doc": 1}})   # doctest: +SKIP
    """
    configs = parse_configs(configs)
    if rerank_top < 1:
        raise ValueError(f"the number of candidates to rerank must be at least 1, got {rerank_top}")
    chunks = as_chunks(chunks)
    if not chunks:
        raise ValueError("no documents to search: the corpus is empty")
    qids = [q for q in qrels if q in queries]
    if not qids:
        raise ValueError("no judged queries: none of the qrels' query ids is among the queries")
    run = _Run(chunks, [queries[q] for q in qids], [text(c) for c in chunks], min(DEPTH, len(chunks)), progress)
    run.info.update(queries=len(qids), documents=len({c.doc_id for c in chunks}), chunks=len(chunks))
    qrels = {q: qrels[q] for q in qids}
    if {c.split("+")[0] for c in configs} & {"dense", "hybrid"} or any(rerank_depth(c) for c in configs):
        backend = backend or LocalBackend()
    run.first_stages(configs, backend, cache or EmbeddingCache(), text)
    reranked = {c: min(rerank_depth(c, rerank_top), run.depth) for c in configs if rerank_depth(c)}
    if reranked:
        reranker = reranker or LocalReranker(getattr(backend, "embedder", None) or LocalEmbedder())
        run.rerank_stage(reranked, reranker, pair_cache if pair_cache is not None else PairCache())

    default = DEFAULT_CONFIG if rerank_top == ASK_K else None
    rows, per_query, runs = [], {}, {}
    for c in configs:
        runs[c] = _doc_run(qids, run.rankings[c], chunks)
        per_query[c] = evaluate(qrels, runs[c], METRICS)
        spent = run.seconds[c.split("+")[0]] + len(qids) * run.rerank_seconds.get(reranked.get(c), 0.0)
        rows.append({"config": c, **per_query[c].mean().to_dict(), "qps": len(qids) / max(spent, 1e-9),
                     "default": c == default})
    run.info.update(embedding_model=getattr(backend, "embedding_model", None),
                    bm25={"k1": K1, "b": B, "stemmer": STEMMER}, reranker=getattr(reranker, "name", None),
                    rerank_top=rerank_top, seconds=run.seconds)
    if reranked:
        n = min(rerank_top, run.depth)
        run.info.update(reranked=n, rerank_seconds=run.rerank_seconds.get(n, next(iter(run.rerank_seconds.values()))),
                        rerank_seconds_by_depth=run.rerank_seconds)
    return Report(name, pd.DataFrame(rows).set_index("config"), per_query, runs, run.info, run.retrievers,
                  run.rankings, qids, run.queries, qrels)


@dataclass
class _Run:
    """What `benchmark` builds up: each configuration's ranking (chunk indices and scores, queries x
    depth), the time each stage took, the retrievers, and notes for the report."""

    chunks: list[Chunk]
    queries: list[str]
    texts: list[str]
    depth: int
    progress: bool
    rankings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    retrievers: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    rerank_seconds: dict = field(default_factory=dict)  # per number of candidates reranked

    def timed(self, stage: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        self.seconds[stage] = time.perf_counter() - start
        return out

    def first_stages(self, configs: Sequence[str], backend, cache: EmbeddingCache, text) -> None:
        """Rank by embeddings, by BM25 and by both fused, as far as the configurations need."""
        bases = {c.split("+")[0] for c in configs}
        if bases & {"dense", "hybrid"}:
            index = self.timed("embed corpus", _embed_corpus, self.chunks, self.texts, backend, cache,
                               self.progress, self.info)
            self.retrievers["dense"] = index
            self.rankings["dense"] = self.timed(
                "dense", lambda: _search_dense(index, _embed_queries(backend, index, self.queries), self.depth))
        if bases & {"bm25", "hybrid"}:
            bm25 = self.timed("index bm25", BM25Index(k1=K1, b=B, stemmer=STEMMER, text=text).fit, self.chunks)
            self.retrievers["bm25"] = bm25
            self.rankings["bm25"] = self.timed("bm25", bm25.search_arrays, self.queries, self.depth)
        if "hybrid" in bases:
            self.rankings["hybrid"] = self.timed("hybrid", score_fusion, [self.rankings["dense"], self.rankings["bm25"]])
            self.seconds["hybrid"] += self.seconds["dense"] + self.seconds["bm25"]

    def rerank_stage(self, reranked: dict[str, int], reranker, pair_cache: PairCache) -> None:
        """Rerank each configuration's top N (`reranked`: config -> N), the pair work cached, and time
        what one query costs without any cache."""
        self.retrievers["reranker"] = reranker
        scorer = CachedReranker(reranker, pair_cache)
        pairs = {(q, self.texts[i]) for c, n in reranked.items()
                 for q, row in zip(self.queries, self.rankings[c.split("+")[0]][0]) for i in row[:n]}
        self.timed("reranker features", scorer.prepare, sorted(pairs), self.progress)
        sample = sorted(set(np.linspace(0, len(self.queries) - 1, min(TIMING_QUERIES, len(self.queries))).astype(int)))
        first = self.rankings[next(iter(reranked)).split("+")[0]][0]
        for n in sorted(set(reranked.values())):
            self.rerank_seconds[n] = seconds_per_query(reranker, [self.queries[j] for j in sample],
                                                       [[self.texts[i] for i in first[j, :n]] for j in sample])
        for c, n in reranked.items():
            self.rankings[c] = _rerank(self.rankings[c.split("+")[0]], n, self.queries, self.texts, scorer)
        self.info.update(pairs_computed=scorer.computed, pairs_cached=scorer.reused, timing_queries=len(sample))


def benchmark_beir(path_or_name: str | Path, split: str = "test", configs: Sequence[str] | str | None = None,
                   **options) -> Report:
    """Return the report of each configuration on a BEIR dataset (a folder, or a name to download).

    Each document is one chunk (title and text, of which the embedding model reads the first 256
    word pieces, as in BEIR's published runs). `options` as for `benchmark`.

    >>> print(benchmark_beir("../shared/data/scifact", configs="bm25,hybrid"))   # doctest: +SKIP
    """
    ds = load_beir(path_or_name, split=split, progress=options.get("progress", True))
    return benchmark(as_chunks(ds.documents()), ds.queries, ds.qrels[split], configs,
                     name=f"{ds.name} ({split})", **options)
