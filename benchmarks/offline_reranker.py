"""Offline rerankers on SciFact: which one beats embedding-only ranking, by how much, at what cost.

No cross-encoder weights can be had offline, so ragkit's offline reranker is built from the packaged
embedding model (all-MiniLM-L6-v2) and cheap lexical features. This script measures each candidate on
the 300 SciFact test queries: retrieve the dense top-N (N = 50 and 100) over the 5,183 abstracts, rerank
them, report nDCG@10 and recall@10, and the time per query when the reranker has to embed the N
passages itself (as it does behind `/rerank`: it only ever sees texts).

    python benchmarks/offline_reranker.py            # the table (about 3 minutes, plus 4 the first time)
    python benchmarks/offline_reranker.py --fit      # refit ragkit.rerankers' weights on the train split

The first run embeds the corpus once (token vectors, float16, about 1 GB) into --cache (default: the
system temp folder), never into the repo. Every score comes from `ragkit.rerankers`' own functions,
fed cached token vectors instead of recomputing them (the timing rows recompute them).
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

from ragkit.embeddings import LocalEmbedder

from ragkit import rerankers as rerank

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


# ---------------------------------------------------------------------------------------------- data

def load_scifact(folder: Path):
    """Return (doc ids, doc texts, {query id: text}, {split: {query id: set of doc positions}})."""
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    ids = [r["_id"] for r in rows]
    texts = [f"{r['title']} {r['text']}".strip() for r in rows]
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


class TokenStore:
    """Token vectors of many texts in one float16 array, cached on disk under a key of the texts."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray):
        self.tokens, self.offsets = tokens, offsets

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def dense(self) -> np.ndarray:
        """Unit mean-pooled vectors: exactly what `LocalEmbedder.embed` returns."""
        means = np.stack([self[i].astype(np.float32).mean(axis=0) for i in range(len(self.offsets) - 1)])
        return rerank._unit(means)

    @classmethod
    def build(cls, texts: list[str], embedder: LocalEmbedder, cache: Path, label: str) -> "TokenStore":
        key = hashlib.sha256("\x00".join([embedder.name, *texts]).encode()).hexdigest()[:16]
        tok_file, off_file = cache / f"{label}-{key}.tok.npy", cache / f"{label}-{key}.off.npy"
        if tok_file.exists() and off_file.exists():
            return cls(np.load(tok_file, mmap_mode="r"), np.load(off_file))
        cache.mkdir(parents=True, exist_ok=True)
        started, parts = time.perf_counter(), []
        for start in range(0, len(texts), 512):
            parts += [v.astype(np.float16) for v in embedder.token_vectors(texts[start : start + 512])]
            print(f"  embedded {start + len(parts[start:]):,}/{len(texts):,} {label} texts "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        for path, array in ((tok_file, np.concatenate(parts)), (off_file, offsets)):
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, array)
            os.replace(tmp, path)
        return cls(np.load(tok_file, mmap_mode="r"), offsets)


# ------------------------------------------------------------------------------------------- metrics

def ndcg_recall_at_10(ranked: np.ndarray, relevant: set[int]) -> tuple[float, float]:
    """Return (nDCG@10, recall@10) of a ranked list of doc positions, binary relevance."""
    gains = np.array([1.0 if d in relevant else 0.0 for d in ranked[:10]])
    dcg = (gains / np.log2(np.arange(2, len(gains) + 2))).sum()
    ideal = (1.0 / np.log2(np.arange(2, min(len(relevant), 10) + 2))).sum()
    return dcg / ideal, gains.sum() / len(relevant)


def order(scores: np.ndarray) -> np.ndarray:
    """Best first; ties keep the retriever's order."""
    return np.lexsort((np.arange(len(scores)), -scores))


# ------------------------------------------------------------------------------------------ features

class Candidates:
    """Each query's dense top-N and the offline reranker's features for them."""

    def __init__(self, qids, queries, qrels, qtok: TokenStore, dtok: TokenStore, dense: np.ndarray,
                 texts: list[str], n: int):
        self.qids, self.n, self.rel = qids, n, [qrels[q] for q in qids]
        self.cand, self.X = [], []
        for j, q in enumerate(qids):
            qvec = rerank._unit(qtok[j].astype(np.float32).mean(axis=0))
            cand = np.argsort(-(dense @ qvec), kind="stable")[:n]
            self.cand.append(cand)
            self.X.append(rerank.features(qtok[j], [dtok[i] for i in cand], queries[q], [texts[i] for i in cand]))

    def evaluate(self, score) -> tuple[float, float]:
        """Mean (nDCG@10, recall@10) when candidates are ranked by `score(X)`."""
        m = [ndcg_recall_at_10(c[order(score(x))], r) for c, x, r in zip(self.cand, self.X, self.rel)]
        return tuple(np.mean(m, axis=0))

    def labels(self) -> np.ndarray:
        return np.concatenate([[i in r for i in c] for c, r in zip(self.cand, self.rel)]).astype(int)


COL = {name: j for j, name in enumerate(rerank.FEATURES)}


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() or 1.0)


def learned(x: np.ndarray) -> np.ndarray:
    return x @ rerank.WEIGHTS + rerank.BIAS


RERANKERS = {
    # name: (score function of the feature matrix, what it costs on the fly)
    "embedding only (dense cosine)": (lambda x: x[:, COL["cosine"]], "none"),
    "BM25 within candidates": (lambda x: x[:, COL["bm25_rel"]], "lexical"),
    "MiniLM MaxSim (late interaction)": (lambda x: x[:, COL["maxsim"]], "minilm"),
    "cosine + MaxSim + BM25, z-scores summed": (
        lambda x: zscore(x[:, COL["cosine"]]) + zscore(x[:, COL["maxsim"]]) + zscore(x[:, COL["bm25_rel"]]),
        "minilm"),
    "local/minilm-maxsim+lexical (LR, train)": (learned, "minilm"),
}


def timing(queries: list[str], docs_per_query: list[list[str]], embedder: LocalEmbedder) -> dict[str, float]:
    """Milliseconds per query of each kind of work, computed from texts as `/rerank` would."""
    def per_query(fn) -> float:
        t = time.perf_counter()
        for q, docs in zip(queries, docs_per_query):
            fn(q, docs)
        return (time.perf_counter() - t) * 1000 / len(queries)

    uncached = rerank.LocalReranker(embedder, cache_mb=0)
    cached = rerank.LocalReranker(embedder, cache_mb=1024)
    uncached.score(queries[0], docs_per_query[0][:2])  # load the model
    return {"none": 0.0, "lexical": per_query(rerank.bm25_within), "minilm": per_query(uncached.score),
            "cache fill": per_query(cached.score), "cached": per_query(cached.score)}


# ------------------------------------------------------------------------------------------ threshold

def top_scores(c: Candidates, qtok, dtok, texts, queries) -> dict[str, np.ndarray]:
    """The learned reranker's best score per query in three situations (queries with a relevant
    passage among their candidates only):

    - answerable: the best score among the relevant candidates (should be kept)
    - near-topic: the relevant candidates removed, the best of the rest (should be dropped)
    - other-topic: the query faced the next query's candidates (should be dropped)
    """
    out: dict[str, list[float]] = {"answerable": [], "near-topic": [], "other-topic": []}
    for j, (cand, x, rel) in enumerate(zip(c.cand, c.X, c.rel)):
        is_rel = np.array([i in rel for i in cand])
        if not is_rel.any() or is_rel.all():
            continue
        q = queries[c.qids[j]]
        out["answerable"].append(rerank._sigmoid(learned(x))[is_rel].max())
        for kind, docs in (("near-topic", cand[~is_rel]), ("other-topic", c.cand[(j + 1) % len(c.cand)])):
            xk = rerank.features(qtok[j], [dtok[i] for i in docs], q, [texts[i] for i in docs])
            out[kind].append(rerank._sigmoid(learned(xk)).max())
    return {k: np.array(v) for k, v in out.items()}


def threshold_rates(tops: dict[str, np.ndarray], t: float) -> dict[str, float]:
    """Share of answerable queries whose relevant passage is kept (score >= t), and of unanswerable
    ones whose every candidate is dropped, at threshold t."""
    return {"answerable: relevant kept": float(np.mean(tops["answerable"] >= t)),
            "near-topic: all dropped": float(np.mean(tops["near-topic"] < t)),
            "other-topic: all dropped": float(np.mean(tops["other-topic"] < t))}


def balanced_accuracy(rates: dict[str, float]) -> float:
    """Kept-when-answerable and dropped-when-unanswerable weigh the same; both unanswerable kinds
    count equally."""
    return (rates["answerable: relevant kept"]
            + (rates["near-topic: all dropped"] + rates["other-topic: all dropped"]) / 2) / 2


def print_rates(all_tops: dict[int, dict[str, np.ndarray]], thresholds) -> None:
    print(f"{'threshold':>9s} {'n':>4s} " + " ".join(f"{k:>26s}" for k in threshold_rates(
        next(iter(all_tops.values())), 0.5)) + f" {'balanced acc':>13s}")
    for t in thresholds:
        for n, tops in all_tops.items():
            rates = threshold_rates(tops, t)
            print(f"{t:9.2f} {n:4d} " + " ".join(f"{v:26.3f}" for v in rates.values())
                  + f" {balanced_accuracy(rates):13.3f}")


def fit(train: list[Candidates], qtok, dtok, texts, queries) -> None:
    """Fit the logistic regression and the threshold on the train split; print them as code."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([np.concatenate(c.X) for c in train])
    y = np.concatenate([c.labels() for c in train])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(X, y)
    rerank.WEIGHTS, rerank.BIAS = model.coef_[0].copy(), float(model.intercept_[0])
    tops = {c.n: top_scores(c, qtok, dtok, texts, queries) for c in train}
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    mean_bacc = [np.mean([balanced_accuracy(threshold_rates(t_, t)) for t_ in tops.values()]) for t in grid]
    best = float(grid[int(np.argmax(mean_bacc))])
    print_rates(tops, [0.1, 0.2, 0.3, 0.4, 0.5, best])
    print(f"# fitted on {len({q for c in train for q in c.qids})} train queries, "
          f"{len(y):,} pairs ({y.sum():,} relevant); candidate sets of {[c.n for c in train]}")
    print(f"WEIGHTS = np.array([{', '.join(f'{w:.4f}' for w in rerank.WEIGHTS)}])")
    print(f"BIAS = {rerank.BIAS:.4f}")
    print(f"THRESHOLD = {best:.2f}  # train balanced accuracy {max(mean_bacc):.3f}")


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SCIFACT, help="SciFact in BEIR layout")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ragkit-bench",
                    help="where the corpus token vectors are cached (not the repo)")
    ap.add_argument("--top", default="50,100", help="candidate set sizes to rerank")
    ap.add_argument("--timing-queries", type=int, default=8, help="test queries timed on the fly")
    ap.add_argument("--fit", action="store_true", help="refit the weights on train and print them")
    args = ap.parse_args(argv)

    ids, texts, queries, qrels = load_scifact(args.data)
    embedder = LocalEmbedder().load()
    print(f"SciFact: {len(texts):,} abstracts; test {len(qrels['test'])} queries, train {len(qrels['train'])}")
    dtok = TokenStore.build(texts, embedder, args.cache, "scifact-corpus")
    dense = dtok.dense()
    split = "train" if args.fit else "test"
    qids = sorted(qrels[split])
    qtok = TokenStore.build([queries[q] for q in qids], embedder, args.cache, f"scifact-{split}-queries")
    sizes = [20, 50, 100] if args.fit else [int(n) for n in args.top.split(",")]
    started = time.perf_counter()
    sets = {n: Candidates(qids, queries, qrels[split], qtok, dtok, dense, texts, n) for n in sizes}
    print(f"features for {len(qids)} {split} queries x {sizes} candidates: {time.perf_counter() - started:.0f} s")
    if args.fit:
        fit(list(sets.values()), qtok, dtok, texts, queries)
        return

    sample = list(range(0, len(qids), max(1, len(qids) // args.timing_queries)))[: args.timing_queries]
    for n, c in sets.items():
        ms = timing([queries[qids[j]] for j in sample], [[texts[i] for i in c.cand[j]] for j in sample], embedder)
        in_top = np.mean([len(set(cand) & r) / len(r) for cand, r in zip(c.cand, c.rel)])
        print(f"\nSciFact test, {len(qids)} queries, dense top-{n} reranked (recall@{n} of the candidates: {in_top:.3f})")
        print(f"{'reranker':44s} {'nDCG@10':>8s} {'recall@10':>10s} {'ms/query':>9s}")
        for name, (score, cost) in RERANKERS.items():
            nd, rc = c.evaluate(score)
            print(f"{name:44s} {nd:8.4f} {rc:10.4f} {ms[cost]:9.0f}")
        print(f"(ms/query: {len(sample)} test queries, the reranker embedding the passages itself, as behind "
              f"/rerank; embedding only reuses the retriever's scores. The same query and passages again, "
              f"token vectors cached: {ms['cached']:.0f} ms)")
    tops = {n: top_scores(c, qtok, dtok, texts, queries) for n, c in sets.items()}
    print(f"\nThe threshold (local/minilm-maxsim+lexical score; ragkit uses {rerank.THRESHOLD}), SciFact test:")
    print_rates(tops, sorted({0.2, 0.3, rerank.THRESHOLD}))

if __name__ == "__main__":
    main()
