"""Vector stores side by side: the in-memory exact index, PostgreSQL + pgvector (HNSW), Milvus Lite (exact).

Two data sets: N synthetic 384-d unit vectors (default 100,000; drawn around 1,000 cluster centres,
so that neighbours exist, as in real embeddings) and the SciFact corpus (5,183 abstracts, one chunk
each, embedded by ragkit's local MiniLM through the embedding cache: the first run embeds them, a
few minutes on 2 cores; later runs read the cache). Queries: 200 held-out synthetic points / the
300 SciFact test claims. For each store, in a fresh process:

- insert/s: chunks (vector + metadata) written per second by `write_index`, including the ANN index
  build (pgvector builds HNSW after loading)
- p50/p95 ms: one query at a time, k=10 (as `ragkit ask` retrieves), after 10 warm-up queries
- recall@10: share of the exact top 10 (numpy, float32) the store returns; exact search gives 1
- memory MB: what the store holds in RAM: for the in-memory index, the process's growth when it is
  loaded; for Milvus Lite (its engine is a process the client starts) the growth of this process and
  its children from opening the written file to after the queries; for Postgres, the growth of its
  server processes' PSS from before the insert to after the queries (its page cache, shared_buffers,
  is 128 MB by default)
- disk MB: the saved folder / table + indexes / Milvus Lite file

The pgvector row "exact" is the same table searched with the index switched off (a full scan). Milvus
Lite always scans exactly (see ragkit/stores/milvus.py: its engine refuses HNSW and its IVF_FLAT probes too
little), so it has no ANN row and no break-even point: its scan grows with n like the in-memory one.
Rows marked "1 thread" run with OMP/OpenBLAS limited to one thread: on 2 cores that other work
keeps busy, waking a second BLAS/OpenMP thread for one small query costs more than it saves.

Run: python benchmarks/stores.py [--n 100000] [--queries 200] [--no-scifact] [--json results.json]
                                [--milvus-url http://127.0.0.1:19530]   (a running Milvus server: one more row)
Targets (issue 8): recall@10 >= 0.95 against exact on SciFact for both databases; p95 < 20 ms on
100k vectors on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
K = 10
ONE_THREAD = ", 1 thread"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# label -> (store, ANN?, insert the data in this run?, query it?); rows without insert reuse the data
# written above. Milvus Lite is queried after reopening its file, as a new process would.
STORES = {
    "in-memory exact": ("memory", False, True, True),
    f"in-memory exact{ONE_THREAD}": ("memory", False, True, True),
    "pgvector HNSW": ("pgvector", True, True, True),
    "pgvector exact (same table)": ("pgvector", False, False, True),
    "Milvus Lite exact: writing": ("milvus", False, True, False),
    "Milvus Lite exact": ("milvus", False, False, True),
    f"Milvus Lite exact{ONE_THREAD}": ("milvus", False, False, True),
    "Milvus server HNSW": ("milvus-server", True, True, True),  # only with --milvus-url
}


def synthetic(n: int, dim: int = 384, queries: int = 200, seed: int = 0):
    """Return (index, query vectors): unit vectors around 1,000 centres, cosine ~0.5 within a cluster."""
    from ragkit.types import Chunk
    from ragkit.index import VectorIndex
    from ragkit.vectors import normalize

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)

    def draw(m):
        return normalize(centres[rng.integers(0, len(centres), m)] + rng.normal(size=(m, dim)).astype(np.float32))

    vectors = draw(n)
    chunks = [Chunk(f"doc{i // 10}#{i % 10}", f"doc{i // 10}", f"Document {i // 10}", f"synthetic chunk {i}",
                    i % 10, 0, 18, source=f"source{i % 50}.md") for i in range(n)]
    return VectorIndex(vectors, chunks, "synthetic/random-384"), draw(queries)


def scifact():
    """Return (index, query vectors) for SciFact: one chunk per abstract, the test claims as queries."""
    from ragkit.cache import EmbeddingCache
    from ragkit.types import Chunk
    from ragkit.eval.datasets import load_beir
    from ragkit.index import VectorIndex, embedding_text
    from ragkit.backends.local import LocalBackend

    ds = load_beir(SCIFACT, split="test", progress=False)
    chunks = [Chunk(f"{d.id}#0", d.id, d.title, d.text, 0, 0, len(d.text), source=d.source)
              for d in ds.documents()]
    backend = LocalBackend()
    embedded = EmbeddingCache().embed(backend, [embedding_text(c) for c in chunks], progress=True)
    queries = EmbeddingCache().embed(backend, list(ds.queries.values()), progress=False)
    print(f"scifact: {len(chunks)} abstracts ({embedded.embedded} embedded now, {embedded.cached} cached), "
          f"{len(ds.queries)} queries", file=sys.stderr)
    return VectorIndex(embedded.vectors, chunks, embedded.model), queries.vectors


def rss_mb() -> float:
    """Return the resident memory of this process and its children (Milvus Lite's engine is one)."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def postgres_pss_mb(pid: int) -> float:
    import psutil

    main = psutil.Process(pid)
    return sum(p.memory_full_info().pss for p in [main, *main.children(recursive=True)]) / 2**20


def folder_mb(path: Path) -> float:
    """Return the size of a folder's files, or of a file."""
    path = Path(path)
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def latencies(store, queries: np.ndarray, model: str, where: dict | None = None) -> tuple[list[float], list[list[str]]]:
    """Return each query's search time (ms) and the ids it found, one query at a time, after 10 warm-up queries."""
    from ragkit.types import Embeddings

    for q in queries[:10]:  # warm-up: caches, plans, index pages
        store.search(Embeddings(q[None], model), k=K, where=where)
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = store.search(Embeddings(q[None], model), k=K, where=where)
        times.append((time.perf_counter() - start) * 1000)
        found.append([h.chunk.id for h in hits])
    return times, found


def run(label: str, data: str, work: str, pg_url: str, pg_pid: int, milvus_url: str | None, out) -> None:
    """Measure one store on one saved data set, in this (fresh) process; put a result row on `out`."""
    from ragkit.index import VectorIndex
    from ragkit.stores import MemoryStore, write_index

    kind, ann, insert, query = STORES[label]
    before = rss_mb()
    index = VectorIndex.load(Path(data) / "index")
    loaded = rss_mb()
    queries = np.load(Path(data) / "queries.npy")
    truth = np.load(Path(data) / "truth.npy", allow_pickle=False)
    row = {"store": label, "n": len(index)}
    table = f"bench_{Path(data).name}"
    start = time.perf_counter()
    if kind == "memory":
        store = MemoryStore(Path(work) / f"memory-{Path(data).name}")
        write_index(store, index)  # builds the matrix and saves the folder
        row["memory_mb"] = loaded - before
        disk = lambda: folder_mb(store.path)  # noqa: E731
    elif kind == "pgvector":
        from ragkit.stores.postgres import PostgresStore

        store = PostgresStore(pg_url, table=table, ann=ann)
        if insert:
            store.clear()
            base = postgres_pss_mb(pg_pid)
            write_index(store, index, batch_size=5000)
        size = f"SELECT pg_total_relation_size('{table}')"  # the table, its TOAST and its indexes
        disk = lambda: store.conn.execute(size).fetchone()[0] / 2**20  # noqa: E731
    elif kind == "milvus-server":
        from ragkit.stores.milvus import MilvusStore

        store = MilvusStore(milvus_url, collection=table, ann=ann)
        store.clear()
        write_index(store, index, batch_size=2000)  # returns once the server searches every row through HNSW
        disk = lambda: None  # noqa: E731
    else:
        from ragkit.stores.milvus import MilvusStore

        base = rss_mb()
        file = Path(work) / f"milvus-{Path(data).name}.db"  # one per data set: its size is the disk MB
        store = MilvusStore(str(file), collection=table, ann=ann)
        if insert:
            store.clear()
            write_index(store, index, batch_size=2000)
        disk = lambda: folder_mb(file)  # noqa: E731
    if insert:
        row["insert_per_s"] = len(index) / (time.perf_counter() - start)
    if query:
        times, found = latencies(store, queries, index.model)
        row["p50_ms"], row["p95_ms"] = float(np.percentile(times, 50)), float(np.percentile(times, 95))
        row["recall@10"] = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth.tolist())]))
    if insert and kind == "pgvector":
        row["memory_mb"] = postgres_pss_mb(pg_pid) - base
    elif query and kind == "milvus" and not label.endswith(ONE_THREAD):
        row["memory_mb"] = rss_mb() - base  # what serving the reopened collection holds
    row["disk_mb"] = disk()
    store.close()
    out.put(row)


def measure(name: str, index, queries: np.ndarray, work: Path, pg, milvus_url: str | None) -> list[dict]:
    """Save the data set, compute the exact top 10, and run every store on it in its own process."""
    data = work / name
    index.save(data / "index")
    np.save(data / "queries.npy", queries)
    ids = np.array([c.id for c in index.chunks])
    np.save(data / "truth.npy", ids[index.search_vectors(queries, K)[0]].astype(str))
    rows = []
    ctx = multiprocessing.get_context("spawn")
    for label in STORES:
        if STORES[label][0] == "milvus-server" and not milvus_url:
            continue
        out = ctx.Queue()
        env = {var: "1" for var in THREAD_VARIABLES} if label.endswith(ONE_THREAD) else {}
        saved = {var: os.environ.get(var) for var in env}
        os.environ.update(env)  # a spawned process starts with this environment
        proc = ctx.Process(target=run, args=(label, str(data), str(work), pg.url, pg.server.get_pid(),
                                             milvus_url, out))
        start = time.perf_counter()
        proc.start()
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var)
            else:
                os.environ[var] = value
        row = out.get()
        proc.join()
        row.update(data=name, seconds=time.perf_counter() - start)
        print(f"{name:10} {label:32} done in {row['seconds']:.0f} s", file=sys.stderr)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| data | vectors | store | insert/s | p50 ms | p95 ms | recall@10 | memory MB | disk MB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        lines.append(f"| {r['data']} | {r['n']:,} | {r['store']} | {fmt(r.get('insert_per_s'), ',.0f')} | "
                     f"{fmt(r.get('p50_ms'), '.2f')} | {fmt(r.get('p95_ms'), '.2f')} | "
                     f"{fmt(r.get('recall@10'), '.3f')} | "
                     f"{fmt(r.get('memory_mb'), '.0f')} | {fmt(r.get('disk_mb'), '.0f')} |")
    return "\n".join(lines)


def payoff(rows: list[dict]) -> str:
    """Where the in-memory exact scan (linear in n) becomes slower than a database's HNSW search."""
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        by = {r["store"]: r for r in rows if r["data"] == data}
        mem = by[f"in-memory exact{ONE_THREAD}"]
        db = "pgvector HNSW"
        n = mem["n"] * by[db]["p50_ms"] / mem["p50_ms"]
        out.append(f"{data}: in-memory exact p50 {mem['p50_ms']:.2f} ms at {mem['n']:,} vectors grows "
                   f"linearly; {db} p50 {by[db]['p50_ms']:.2f} ms -> equal at about {n:,.0f} vectors")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="synthetic vectors (default 100000)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--no-scifact", action="store_true")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--milvus-url", help="also measure a running Milvus server, e.g. http://127.0.0.1:19530")
    args = p.parse_args()

    from ragkit.stores.postgres import start_postgres

    work = Path(tempfile.mkdtemp(prefix="ragkit-bench-stores-"))
    pg = start_postgres(work / "pgdata")
    rows = []
    try:
        if not args.no_scifact and SCIFACT.exists():
            rows += measure("scifact", *scifact(), work, pg, args.milvus_url)
        rows += measure("synthetic", *synthetic(args.n, queries=args.queries), work, pg, args.milvus_url)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    print()
    print(payoff(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
