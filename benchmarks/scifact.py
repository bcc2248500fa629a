"""SciFact: ragkit's retrieval configurations next to the published figures, on a 2-core CPU, offline.

    python benchmarks/scifact.py                 # about 1 minute with warm caches, 8-10 the first time

What it prints:
1. The `ragkit eval` table on SciFact test (300 claims, 5,183 abstracts; nDCG@10, recall@100, MRR@10,
   queries/s) next to the published nDCG@10 of the same kinds of system:
   - BM25 (Elasticsearch): 0.665; BM25 top 100 reranked by a MiniLM cross-encoder: 0.688.
     Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information Retrieval
     Models", NeurIPS 2021 Datasets and Benchmarks, Table 2 (SciFact row).
   - all-MiniLM-L6-v2, the embedding model ragkit ships (int8 here): about 0.645. MTEB leaderboard,
     Muennighoff et al., "MTEB: Massive Text Embedding Benchmark", EACL 2023 (SciFact retrieval).
2. The paired test of the best configuration, and of the plain hybrid, against dense (embedding-only).
3. Why score fusion: it and reciprocal rank fusion on the train split (where the choice was made)
   and, for the record, on test.
4. Indexing throughput and retrieval latency, one query at a time.
5. The generalisation check: the same configurations on the workbook's own Python-reference
   questions (document-level, heading chunks): the default (`dense+rerank`) and the hybrid must not
   lose more than 0.01 nDCG@10 to the better of dense and BM25.

Caches go where ragkit keeps them ($RAGKIT_CACHE_DIR, default ~/.cache/ragkit), never the repo.
"""
from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from ragkit.eval.benchmark import ASK_K, CONFIGS, benchmark_beir
from ragkit.eval import evaluate
from ragkit.hybrid import rrf, score_fusion
from ragkit.backends.local import LocalBackend
from ragkit.rerankers import LocalReranker

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"

PUBLISHED = {  # nDCG@10 on SciFact test, see the module docstring for the sources
    "dense": ("all-MiniLM-L6-v2 (MTEB)", 0.645),
    "bm25": ("BM25, Elasticsearch (BEIR)", 0.665),
    "bm25+rerank": ("BM25 top 100 + MiniLM cross-encoder (BEIR)", 0.688),
}


def show_table(report) -> None:
    print(report)
    print(f"\n{'config':16s} {'nDCG@10':>8s}   published nDCG@10")
    for config, row in report.table.iterrows():
        label, value = PUBLISHED.get(config, ("", None))
        print(f"{config:16s} {row['ndcg@10']:8.4f}   " + (f"{value:.3f}  {label}" if value else ""))


def show_paired(report) -> None:
    best = report.table["ndcg@10"].idxmax()
    print(f"\nPaired tests on SciFact test (nDCG@10, {report.info['queries']} queries; bootstrap CI, "
          "randomisation p):")
    for config in dict.fromkeys([best, "hybrid"]):
        print(f"  {config} vs dense: {report.paired(config, 'dense')}")


def show_fusion_choice(data: Path, test_report, backend) -> None:
    """Score fusion vs RRF on train (the choice) and test (the record), from the same rankings."""
    print("\nFusion of the dense and BM25 top 100, nDCG@10 (chosen on train; nothing fitted):")
    train = benchmark_beir(data, split="train", configs="dense,bm25,hybrid", backend=backend, progress=False)
    for split, report in (("train", train), ("test", test_report)):
        dense, bm25 = report.rankings["dense"], report.rankings["bm25"]
        chunks = report.retrievers["dense"].chunks
        scores = {}
        for name, (indices, values) in {"score fusion (equal weights)": score_fusion([dense, bm25]),
                                        "reciprocal rank fusion, k=60": rrf([dense[0], bm25[0]], k=60),
                                        "reciprocal rank fusion, k=10": rrf([dense[0], bm25[0]], k=10)}.items():
            run = {q: {chunks[i].doc_id: float(s) for i, s in zip(row_i, row_s)}
                   for q, row_i, row_s in zip(report.qids, indices, values)}
            scores[name] = evaluate(report.qrels, run, ["ndcg@10"])["ndcg@10"].mean()
        line = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
        print(f"  {split} ({len(report.qids)} queries): dense {report.table.loc['dense', 'ndcg@10']:.4f}, "
              f"bm25 {report.table.loc['bm25', 'ndcg@10']:.4f}; {line}")


def show_speed(report, backend, n: int = 30) -> None:
    """Indexing throughput, and latency of one query at a time (median and 90th percentile, ms)."""
    index, bm25 = report.retrievers["dense"], report.retrievers["bm25"]
    texts = [bm25.text(c) for c in index.chunks]
    sample = texts[:: max(1, len(texts) // 256)][:256]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "longer than 256 word pieces": as in the run itself
        backend.embedder.embed(sample)
    per_doc = (time.perf_counter() - start) / len(sample)
    start = time.perf_counter()
    type(bm25)(text=bm25.text).fit(index.chunks)
    bm25_seconds = time.perf_counter() - start
    info = report.info
    print(f"\nIndexing {len(texts):,} abstracts (this run embedded {info['embedded']:,} and read "
          f"{info['embeddings_cached']:,} from the cache, in {info['seconds']['embed corpus']:.0f} s):")
    print(f"  dense: {1 / per_doc:.1f} abstracts/s ({len(sample)} embedded afresh; the whole corpus "
          f"~{per_doc * len(texts) / 60:.1f} min); BM25: {len(texts) / bm25_seconds:,.0f} abstracts/s "
          f"({bm25_seconds:.1f} s for all)")

    queries = report.queries[:: max(1, len(report.queries) // n)][:n]
    reranker = LocalReranker(backend.embedder, cache_mb=0)  # no cache: the cost `ragkit ask` pays
    times: dict[str, list[float]] = {k: [] for k in ("dense", "bm25", "hybrid", f"rerank top {ASK_K}")}
    for q in queries:
        t0 = time.perf_counter()
        dense = index.search_vectors(index.check_query(backend.embed([q])), 100)
        t1 = time.perf_counter()
        lexical = bm25.search_arrays([q], 100)
        t2 = time.perf_counter()
        score_fusion([dense, lexical])
        t3 = time.perf_counter()
        reranker.score(q, [texts[i] for i in dense[0][0, :ASK_K]])
        t4 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, (t1 - t0) + (t2 - t1) + (t3 - t2), t4 - t3)):
            times[key].append(value * 1000)
    print(f"Latency, one query at a time ({len(queries)} test queries), ms: "
          + "; ".join(f"{k} {np.median(v):.1f} (p90 {np.percentile(v, 90):.1f})" for k, v in times.items()))


def show_python_reference(backend) -> None:
    from domains import check, labelled_sets, run  # the same check on both Python sets: benchmarks/domains.py

    reference = next(s for s in labelled_sets() if s.name == "python-reference")
    report = run(reference, list(CONFIGS), backend)
    print()
    print(report)
    for config in ("dense+rerank", "hybrid"):
        check(reference.name, report, config)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SCIFACT, help="SciFact in BEIR layout")
    ap.add_argument("--k", type=int, default=ASK_K, help="candidates reranked per query")
    args = ap.parse_args(argv)

    backend = LocalBackend()
    started = time.perf_counter()
    report = benchmark_beir(args.data, split="test", backend=backend, rerank_top=args.k)
    print(f"(ragkit eval's work: {time.perf_counter() - started:.0f} s)\n")
    show_table(report)
    show_paired(report)
    show_fusion_choice(args.data, report, backend)
    show_speed(report, backend)
    show_python_reference(backend)


if __name__ == "__main__":
    main()
