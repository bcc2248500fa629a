"""Offline rerankers on SciFact: which one beats the first stage, by how much, at what cost.

No cross-encoder weights can be had offline, so ragkit's offline reranker is built from the packaged
embedding model (all-MiniLM-L6-v2) and cheap lexical features. This script measures it on the 300
SciFact test queries: retrieve each query's dense top 20 (what `ragkit ask` reranks) and hybrid top 20
and 30 (dense + BM25, score fusion, as `ragkit eval`) over the 5,183 abstracts, rerank them, and
report nDCG@10, with the time per query when the reranker has to read the passages itself (as it
does behind `/rerank`: it only ever sees texts).

    python benchmarks/offline_reranker.py            # the table (about 2 minutes, plus 10 the first time)
    python benchmarks/offline_reranker.py --fit      # refit ragkit.rerankers.offline's weights on the train split

`--fit` chooses the regularisation by 5-fold cross-validation on the train split, folds grouped so
that claims sharing a relevant abstract stay in one fold (SciFact has many: a model scored on
queries whose abstracts it was trained on learns the abstracts, not relevance), then fits on all
of train and prints the weights as code. Test is never looked at.

The first run reads the corpus once (`ragkit.rerankers.offline.read`: token vectors of every window,
float16, about 1.4 GB) into --cache (default: the system temp folder), never into the repo. Every
score comes from `ragkit.rerankers.offline`'s own functions, fed cached readings instead of recomputing them
(the timing rows recompute them).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ragkit.rerankers import offline as rerank
from ragkit.embedder import LocalEmbedder
from ragkit.hybrid import score_fusion
from ragkit.lexical import BM25Index
from ragkit.vectors import sigmoid

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
FIT_ON = (("dense", 20), ("hybrid", 30))  # the candidate sets the weights are fitted on
C_GRID = (0.1, 1.0, 10.0)


# ---------------------------------------------------------------------------------------------- data

def load_scifact(folder: Path):
    """Return (doc ids, doc texts, {query id: text}, {split: {query id: set of doc positions}}).

    A text is the title line, then the abstract: what `ragkit eval` indexes (`lexical.indexed_text`).
    """
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    ids = [r["_id"] for r in rows]
    texts = [f"{r['title']}\n{r['text']}" if r["title"] else r["text"] for r in rows]
    position = {d: i for i, d in enumerate(ids)}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = {q["_id"]: q["text"] for q in map(json.loads, f)}
    qrels = {}
    for split in ("train", "test"):
        rel: dict[str, set[int]] = {}
        for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            qid, did, score = line.split("\t")
            if int(score) > 0:
                rel.setdefault(qid, set()).add(position[did])
        qrels[split] = rel
    return ids, texts, queries, qrels


def _cached_arrays(cache: Path, name: str, make) -> dict[str, np.ndarray]:
    files = {}
    if cache.is_dir():
        files = {p.name[len(name) + 1 : -4]: p for p in cache.glob(f"{name}.*.npy")}
    if not files:
        cache.mkdir(parents=True, exist_ok=True)
        for key, array in make().items():
            path = cache / f"{name}.{key}.npy"
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, array)
            os.replace(tmp, path)
        files = {p.name[len(name) + 1 : -4]: p for p in cache.glob(f"{name}.*.npy")}
    return {k: np.load(p, mmap_mode="r") for k, p in files.items()}


class ReadingStore:
    """`rerankers.offline.read` of many texts, as flat float16 arrays with offsets, cached on disk."""

    FIELDS = ("tokens", "windows", "sentences")

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.a = arrays

    def __len__(self) -> int:
        return len(self.a["title"])

    def __getitem__(self, i: int) -> rerank.Reading:
        parts = {f: self.a[f][self.a[f"{f}_off"][i] : self.a[f"{f}_off"][i + 1]] for f in self.FIELDS}
        return rerank.Reading(parts["tokens"], parts["windows"], parts["sentences"], self.a["title"][i])

    def dense(self) -> np.ndarray:
        """Each text's embedding (its first window's mean-pooled vector), float32."""
        return self.a["windows"][self.a["windows_off"][:-1]].astype(np.float32)

    @classmethod
    def build(cls, texts: list[str], embedder: LocalEmbedder, cache: Path, label: str) -> "ReadingStore":
        key = hashlib.sha256("\x00".join([embedder.name, str(rerank.WINDOW), str(rerank.STRIDE), *texts])
                             .encode()).hexdigest()[:16]

        def make():
            started, parts = time.perf_counter(), []
            for start in range(0, len(texts), 256):
                parts += rerank.read(embedder, texts[start : start + 256])
                print(f"  read {len(parts):,}/{len(texts):,} {label} texts ({time.perf_counter() - started:.0f} s)",
                      flush=True)
            out = {"title": np.stack([p.title for p in parts])}
            for f in cls.FIELDS:
                arrays = [getattr(p, f) for p in parts]
                out[f] = np.concatenate(arrays)
                out[f"{f}_off"] = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
            return out

        return cls(_cached_arrays(cache, f"{label}-readings-{key}", make))


# ------------------------------------------------------------------------------------------- metrics

def ndcg_at_10(ranked: np.ndarray, relevant: set[int]) -> float:
    """Return nDCG@10 of a ranked list of doc positions, binary relevance."""
    gains = np.array([1.0 if d in relevant else 0.0 for d in ranked[:10]])
    dcg = (gains / np.log2(np.arange(2, len(gains) + 2))).sum()
    ideal = (1.0 / np.log2(np.arange(2, min(len(relevant), 10) + 2))).sum()
    return dcg / ideal


def order(scores: np.ndarray) -> np.ndarray:
    """Best first; ties keep the retriever's order."""
    return np.lexsort((np.arange(len(scores)), -scores))


# -------------------------------------------------------------------------------------- first stage

def first_stages(qvecs: np.ndarray, queries: list[str], dense: np.ndarray, bm25: BM25Index,
                 depth: int = 100) -> dict[str, np.ndarray]:
    """Each query's dense, BM25 and hybrid top `depth` (doc positions), as `ragkit eval` ranks them."""
    s = qvecs @ dense.T
    d_i = np.argsort(-s, axis=1, kind="stable")[:, :depth]
    d = (d_i, np.take_along_axis(s, d_i, axis=1).astype(np.float64))
    b = bm25.search_arrays(queries, depth)
    return {"dense": d[0], "bm25": b[0], "hybrid": score_fusion([d, b])[0]}


class Candidates:
    """Each query's top n of one first stage, and the offline reranker's features for them."""

    def __init__(self, name: str, n: int, ranked: np.ndarray, queries: list[str], qtok, readings: ReadingStore,
                 texts: list[str], rel: list[set[int]]):
        self.name, self.n, self.rel = name, n, rel
        self.cand = [row[:n] for row in ranked]
        self.X = [rerank.features(qtok[j], [readings[i] for i in c], queries[j], [texts[i] for i in c])
                  for j, c in enumerate(self.cand)]

    @property
    def label(self) -> str:
        return f"{self.name} top {self.n}"

    def labels(self, rows=None) -> list[np.ndarray]:
        rows = range(len(self.cand)) if rows is None else rows
        return [np.array([i in self.rel[j] for i in self.cand[j]], dtype=int) for j in rows]

    def ndcg(self, score, rows=None) -> float:
        """Mean nDCG@10 (over `rows`, default all queries) when candidates are ranked by `score(X)`."""
        rows = range(len(self.cand)) if rows is None else rows
        return float(np.mean([ndcg_at_10(self.cand[j][order(score(self.X[j]))], self.rel[j]) for j in rows]))


def learned(x: np.ndarray) -> np.ndarray:
    return x @ rerank.WEIGHTS + rerank.BIAS


def timing(queries: list[str], docs_per_query: list[list[str]], embedder: LocalEmbedder) -> dict[str, float]:
    """Milliseconds per query for the reranker to score texts as `/rerank` would: uncached, then cached."""
    def per_query(fn) -> float:
        t = time.perf_counter()
        for q, docs in zip(queries, docs_per_query):
            fn(q, docs)
        return (time.perf_counter() - t) * 1000 / len(queries)

    uncached = rerank.LocalReranker(embedder, cache_mb=0)
    cached = rerank.LocalReranker(embedder, cache_mb=1024)
    uncached.score(queries[0], docs_per_query[0][:2])  # load the model
    return {"uncached": per_query(uncached.score), "cache fill": per_query(cached.score),
            "cached": per_query(cached.score)}


# ------------------------------------------------------------------------------------------- fitting

def groups_of(rel: list[set[int]]) -> np.ndarray:
    """One group id per query: queries sharing a relevant doc (directly or through others) share one."""
    parent = list(range(len(rel)))

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    owner: dict[int, int] = {}
    for j, docs in enumerate(rel):
        for d in docs:
            if d in owner:
                parent[root(j)] = root(owner[d])
            else:
                owner[d] = j
    return np.array([root(j) for j in range(len(rel))])


def grouped_folds(groups: np.ndarray, k: int = 5, seeds=(0, 1)):
    """(train rows, held-out rows) of k folds over groups, for each seed."""
    ids = np.unique(groups)
    for seed in seeds:
        shuffled = np.random.default_rng(seed).permutation(ids)
        for f in range(k):
            held = np.flatnonzero(np.isin(groups, shuffled[f::k]))
            yield np.setdiff1d(np.arange(len(groups)), held), held


def fit_lr(sets: list[Candidates], rows, C: float):
    """Return (weights, bias) on the raw features: logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X = np.concatenate([c.X[j] for c in sets for j in rows])
    y = np.concatenate([lab for c in sets for lab in c.labels(rows)])
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X), y)
    w = model.coef_[0] / scaler.scale_
    return w, float(model.intercept_[0] - w @ scaler.mean_)


def cross_validate(sets: list[Candidates], groups: np.ndarray) -> dict[float, dict[str, float]]:
    """Mean held-out nDCG@10 per candidate set, for each C of C_GRID."""
    out = {}
    for C in C_GRID:
        totals = {c.label: 0.0 for c in sets}
        runs = 0
        for train_rows, held in grouped_folds(groups):
            w, b = fit_lr(sets, train_rows, C)
            for c in sets:
                totals[c.label] += c.ndcg(lambda x: x @ w + b, held) * len(held)
            runs += len(held)
        out[C] = {k: v / runs for k, v in totals.items()}
        print(f"  C={C:<5g} " + ", ".join(f"{k} {v:.4f}" for k, v in out[C].items()), flush=True)
    return out


def top_scores(c: Candidates, qtok, readings, texts, queries) -> dict[str, np.ndarray]:
    """The learned reranker's best score per query in three situations (queries with a relevant
    passage among their candidates only):

    - answerable: the best score among the relevant candidates (should be kept)
    - near-topic: the relevant candidates removed, the best of the rest (should be dropped)
    - other-topic: the query faced the next query's candidates (should be dropped)
    """
    out: dict[str, list[float]] = {"answerable": [], "near-topic": [], "other-topic": []}
    for j, (cand, x) in enumerate(zip(c.cand, c.X)):
        is_rel = np.array([i in c.rel[j] for i in cand])
        if not is_rel.any() or is_rel.all():
            continue
        out["answerable"].append(sigmoid(learned(x))[is_rel].max())
        for kind, docs in (("near-topic", cand[~is_rel]), ("other-topic", c.cand[(j + 1) % len(c.cand)])):
            xk = rerank.features(qtok[j], [readings[i] for i in docs], queries[j], [texts[i] for i in docs])
            out[kind].append(sigmoid(learned(xk)).max())
    return {k: np.array(v) for k, v in out.items()}


def threshold_rates(tops: dict[str, np.ndarray], t: float) -> dict[str, float]:
    """Share of answerable queries whose relevant passage is kept (score >= t), and of unanswerable
    ones whose every candidate is dropped, at threshold t."""
    return {"answerable: relevant kept": float(np.mean(tops["answerable"] >= t)),
            "near-topic: all dropped": float(np.mean(tops["near-topic"] < t)),
            "other-topic: all dropped": float(np.mean(tops["other-topic"] < t))}


def print_rates(tops: dict[str, np.ndarray], thresholds) -> None:
    print(f"{'threshold':>9s} " + " ".join(f"{k:>26s}" for k in threshold_rates(tops, 0.5)))
    for t in thresholds:
        print(f"{t:9.2f} " + " ".join(f"{v:26.3f}" for v in threshold_rates(tops, t).values()))


def fit(sets: list[Candidates], rel: list[set[int]]) -> None:
    """Choose C by grouped cross-validation on train, fit on all of train, print the weights as code."""
    groups = groups_of(rel)
    print(f"grouped 5-fold cross-validation on train ({len(np.unique(groups))} groups of queries "
          f"sharing relevant abstracts), held-out nDCG@10:")
    cv = cross_validate(sets, groups)
    best = max(cv, key=lambda C: np.mean(list(cv[C].values())))
    w, b = fit_lr(sets, range(len(rel)), best)
    n_pairs = sum(len(x) for c in sets for x in c.X)
    print(f"# fitted on {len(rel)} train queries, {n_pairs:,} (query, passage) pairs; candidates "
          f"{', '.join(c.label for c in sets)}; C={best:g} (cross-validated: "
          + ", ".join(f"{k} {v:.4f}" for k, v in cv[best].items()) + ")")
    print(f"WEIGHTS = np.array([{', '.join(f'{x:.4f}' for x in w)}])")
    print(f"BIAS = {b:.4f}")


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SCIFACT, help="SciFact in BEIR layout")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ragkit-bench",
                    help="where the corpus readings are cached (not the repo)")
    ap.add_argument("--timing-queries", type=int, default=8, help="test queries timed on the fly")
    ap.add_argument("--fit", action="store_true", help="refit the weights on train and print them")
    args = ap.parse_args(argv)

    ids, texts, queries, qrels = load_scifact(args.data)
    embedder = LocalEmbedder().load()
    print(f"SciFact: {len(texts):,} abstracts; test {len(qrels['test'])} queries, train {len(qrels['train'])}")
    readings = ReadingStore.build(texts, embedder, args.cache, "scifact-corpus")
    bm25 = BM25Index().fit(texts)
    split = "train" if args.fit else "test"
    qids = sorted(qrels[split])
    qtexts = [queries[q] for q in qids]
    rel = [qrels[split][q] for q in qids]
    qtok = ReadingStore.build(qtexts, embedder, args.cache, f"scifact-{split}-queries")
    qvecs = qtok.dense()
    ranked = first_stages(qvecs, qtexts, readings.dense(), bm25)
    kinds = FIT_ON if args.fit else (("dense", 20), ("hybrid", 20), ("hybrid", 30))
    started = time.perf_counter()
    sets = [Candidates(name, n, ranked[name], qtexts, qtok, readings, texts, rel) for name, n in kinds]
    print(f"features for {len(qids)} {split} queries: {time.perf_counter() - started:.0f} s")
    if args.fit:
        fit(sets, rel)
        return

    sample = list(range(0, len(qids), max(1, len(qids) // args.timing_queries)))[: args.timing_queries]
    print(f"\nSciFact test, {len(qids)} queries, nDCG@10 of the first stage's top n, reranked:")
    print(f"{'candidates':16s} {'first stage':>11s} {'dense cosine':>12s} {'MaxSim':>7s} "
          f"{'BM25 within':>11s} {rerank.LocalReranker.name:>28s} {'ms/query':>9s}")
    col = {name: j for j, name in enumerate(rerank.FEATURES)}
    for c in sets:
        ms = timing([qtexts[j] for j in sample], [[texts[i] for i in c.cand[j]] for j in sample], embedder)
        first, cosine = c.ndcg(lambda x: -np.arange(len(x))), c.ndcg(lambda x: x[:, col["cosine"]])
        print(f"{c.label:16s} {first:11.4f} {cosine:12.4f} {c.ndcg(lambda x: x[:, col['maxsim']]):7.4f} "
              f"{c.ndcg(lambda x: x[:, col['bm25_rel']]):11.4f} {c.ndcg(learned):28.4f} {ms['uncached']:9.0f}")
    print(f"(ms/query: {len(sample)} test queries, the reranker reading the passages itself, as behind /rerank; "
          f"the same again with its cache warm: {ms['cached']:.0f} ms)")
    tops = top_scores(sets[0], qtok, readings, texts, qtexts)
    print(f"\nThe threshold (local/minilm-maxsim+lexical score; ragkit uses {rerank.THRESHOLD}), SciFact test, "
          f"{sets[0].label}:")
    print_rates(tops, sorted({0.1, 0.2, 0.3, 0.5, rerank.THRESHOLD}))


if __name__ == "__main__":
    main()
