"""Metadata filters in every store: how fast a filtered search is, and whether it still finds the true top 10.

A filter inside an approximate (HNSW) search is the hard case: the graph is walked as without a filter,
and the candidates that fail it are thrown away, so a filter that keeps 1% of the rows leaves few. pgvector
0.8 walks on until k rows pass (`hnsw.iterative_scan`, which `PostgresStore` switches on), and still missed
half of the true top 10 for a filter keeping 0.8% of 100,000 rows, taking 39 ms. So `PostgresStore` scores
the rows that pass exactly when the planner expects few (`EXACT_ROWS`, `EXACT_SHARE`; B-tree indexes on the
filtered columns make that fast). An exact scan (the in-memory index, Milvus Lite, pgvector with its index
off) has no such problem and gets cheaper the fewer rows pass.

Data: N synthetic 384-d unit vectors (`stores.synthetic`: around 1,000 centres; default 100,000), ten
chunks per document, each document dated on a random day of 2015 to 2024. Filters, by the share of rows they
keep: ten years' first half (about 50%), one year (10%), one month (0.8%), one day (0.03%), and one source
file (2%). For each store and filter, in one process so that the ratios are measured in the same run:

- p50 / p95 ms of one query at a time, k=10, after 10 warm-up queries, and p50 as a ratio to the same store
  searched without a filter (the baseline of this run);
- recall@10: the share of the exact filtered top 10 (numpy over the rows that pass) the store returns.

Run: python benchmarks/filters.py [--n 100000] [--queries 100] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stores import K, latencies, synthetic  # noqa: E402  (this folder's store benchmark: the same data, timed alike)

FILTERS = {
    "none": None,
    "2015-2019 (50%)": {"date": {"from": "2015", "to": "2019"}},
    "one year (10%)": {"date": "2024"},
    "one source (2%)": {"source": "source7.md"},
    "one month (0.8%)": {"date": "2024-06"},
    "one day (0.03%)": {"date": "2024-06-15"},
}


def dated(index, seed: int = 0):
    """Return the index with each document (ten chunks) dated on a random day of 2015 to 2024."""
    from ragkit.index import VectorIndex

    days = np.datetime64("2015-01-01") + np.random.default_rng(seed).integers(0, 3653, len(index) // 10 + 1)
    chunks = [replace(c, date=str(days[i // 10])) for i, c in enumerate(index.chunks)]
    return VectorIndex(index.vectors, chunks, index.model)


def exact_truth(index, queries: np.ndarray, where: dict | None) -> tuple[list[set[str]], float]:
    """The true top 10 among the rows a filter keeps, by brute force, and the share of rows it keeps."""
    from ragkit.stores import check_where

    keep = np.ones(len(index), dtype=bool)
    for name, allowed in check_where(where).items():
        if name == "date":
            keep &= allowed.mask(np.array([c.date for c in index.chunks]))
        else:
            keep &= np.isin(np.array([getattr(c, name) for c in index.chunks]), allowed)
    rows = np.flatnonzero(keep)
    scores = queries @ index.vectors[rows].T
    best = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [{index.chunks[rows[i]].id for i in row} for row in best], keep.mean()


def stores(index, work: Path, pg_url: str):
    """Yield (label, store) for each store, each holding the index."""
    from ragkit.stores import MemoryStore, write_index
    from ragkit.stores.milvus import MilvusStore
    from ragkit.stores.postgres import PostgresStore

    yield "in-memory exact", MemoryStore(index=index)
    pg = PostgresStore(pg_url, table="bench_filters", ann=True)
    pg.clear()
    start = time.perf_counter()
    write_index(pg, index, batch_size=5000)
    print(f"pgvector: written and indexed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    yield "pgvector HNSW (iterative scan)", pg
    pg.close()
    exact = PostgresStore(pg_url, table="bench_filters", ann=False)
    yield "pgvector exact (same table)", exact
    exact.close()
    milvus = MilvusStore(str(work / "filters.db"), collection="bench_filters")
    start = time.perf_counter()
    write_index(milvus, index, batch_size=2000)
    print(f"Milvus Lite: written in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    yield "Milvus Lite exact", milvus
    milvus.close()


def measure(index, queries: np.ndarray, work: Path, pg_url: str) -> list[dict]:
    truths = {name: exact_truth(index, queries, where) for name, where in FILTERS.items()}
    rows = []
    for label, store in stores(index, work, pg_url):
        baseline = None
        for name, where in FILTERS.items():
            times, found = latencies(store, queries, index.model, where)
            truth, share = truths[name]
            p50 = float(np.percentile(times, 50))
            baseline = baseline or p50
            rows.append({"store": label, "filter": name, "kept": float(share), "p50_ms": p50,
                         "p95_ms": float(np.percentile(times, 95)), "vs_unfiltered": p50 / baseline,
                         "recall@10": float(np.mean([len(set(f) & t) / max(len(t), 1) for f, t in zip(found, truth)]))})
            print(f"{label:32} {name:18} p50 {p50:7.2f} ms  recall@10 {rows[-1]['recall@10']:.3f}", file=sys.stderr)
    return rows


def table(rows: list[dict], n: int) -> str:
    lines = [f"{n:,} vectors, k={K}; p50 as a ratio to the same store without a filter, measured in this run",
             "", "| store | filter | rows kept | p50 ms | p95 ms | p50 vs no filter | recall@10 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['store']} | {r['filter']} | {r['kept']:.2%} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
                     f"{r['vs_unfiltered']:.2f}x | {r['recall@10']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="synthetic vectors (default 100000)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()

    from ragkit.stores.postgres import start_postgres

    index, queries = synthetic(args.n, queries=args.queries)
    index = dated(index)
    work = Path(tempfile.mkdtemp(prefix="ragkit-bench-filters-"))
    pg = start_postgres(work / "pgdata")
    try:
        rows = measure(index, queries, work, pg.url)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, len(index)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
