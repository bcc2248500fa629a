"""Speed of ragkit's two hot paths, each next to a baseline measured in the same run.

1. Local embedding: `LocalEmbedder.embed` vs a bare onnxruntime loop on the same texts
   (tokenise, run, mean-pool, normalise; batches in input order). Target: overhead under 10%.
2. Exact top-10 search over 100k x 384 unit vectors: `VectorIndex.search_vectors` vs
   (a) the per-document Python cosine loop a first RAG tutorial writes, over vectors kept as the
       lists an API's JSON returns (timed on 20k documents, scaled to n) (target: over 100x faster)
   (b) one bare `matrix @ query` + `argpartition` (target: within 1.5x).
3. One query at a time with pauses between them (a notebook, a served room), over a SciFact-sized
   index (5,183 x 384): `search_vectors` vs bare `matrix @ query` + `argpartition`, p50 and p95.
   BLAS wakes its sleeping threads for every product; ragkit keeps small products in one thread.
   Target: p95 under half the bare one.

Run: python benchmarks/speed.py [--texts 512] [--vectors 100000]
Texts are SciFact abstracts from ../shared/data/scifact when present (else the demo corpus).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from ragkit import config, weights
from ragkit.types import Chunk
from ragkit.embedder import LocalEmbedder, batch_inputs, load_tokenizer
from ragkit.index import VectorIndex

REPO = Path(__file__).resolve().parent.parent
SCIFACT = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def texts(n: int) -> list[str]:
    if SCIFACT.exists():
        with open(SCIFACT, encoding="utf-8") as f:
            rows = [json.loads(line) for _, line in zip(range(n), f)]
        return [f"{r['title']}\n{r['text']}" for r in rows]
    paras = [p for f in sorted((REPO / "ragkit" / "data" / "demo").glob("*.md")) for p in f.read_text().split("\n\n")]
    return (paras * (n // len(paras) + 1))[:n]


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bare_onnx(session, tokenizer, items: list[str], batch: int = 32) -> np.ndarray:
    out = []
    for s in range(0, len(items), batch):
        inputs = batch_inputs(tokenizer.encode_batch(items[s : s + batch]))
        hidden = session.run(None, inputs)[0]
        mask = inputs["attention_mask"][:, :, None]
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.vstack(out)


def embedding(n: int) -> None:
    items = texts(n)
    embedder = LocalEmbedder().load()
    import onnxruntime as ort

    # the baseline: onnxruntime with its default options, the same tokenizer and pooling
    session = ort.InferenceSession(str(weights.embedding_model_path()), providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer()
    bare_onnx(session, tokenizer, items[:32])
    t_bare = best_of(lambda: bare_onnx(session, tokenizer, items), repeat=2)
    t_ragkit = best_of(lambda: embedder.embed(items), repeat=2)
    same = float(np.min(np.sum(bare_onnx(session, tokenizer, items[:64]) * embedder.embed(items[:64]), axis=1)))
    print(f"embedding {n} texts: bare onnxruntime {n / t_bare:7.1f}/s   ragkit {n / t_ragkit:7.1f}/s   "
          f"ragkit/bare time {t_ragkit / t_bare:.2f} (target < 1.10)   min cosine to bare {same:.4f}")


def search(n: int, dim: int = 384, k: int = 10, queries: int = 20) -> None:
    rng = np.random.default_rng(0)
    chunks = [Chunk(f"d{i}#0", f"d{i}", "", "x", 0, 0, 1) for i in range(n)]
    index = VectorIndex(rng.normal(size=(n, dim)).astype(np.float32), chunks, "bench")
    matrix = index.vectors
    qs = index.vectors[rng.integers(0, n, queries)] + 0.01 * rng.normal(size=(queries, dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)

    as_lists = matrix[: min(n, 20_000)].tolist()  # vectors as an API's JSON gives them

    def loop(q):  # the tutorial version: one cosine per document, in Python, then sort
        scores = []
        for i, row in enumerate(as_lists):
            scores.append((np.dot(q, row) / (np.linalg.norm(q) * np.linalg.norm(row)), i))
        scores.sort(reverse=True)
        return [i for _, i in scores[:k]]

    def bare(q):
        s = matrix @ q
        part = np.argpartition(-s, k)[:k]
        return part[np.argsort(-s[part])]

    # the loop is timed on up to 20k documents and scaled linearly to n (it is linear in n)
    t_loop = best_of(lambda: loop(qs[0]), repeat=1) * n / len(as_lists)
    t_bare = best_of(lambda: [bare(q) for q in qs]) / queries
    t_ragkit = best_of(lambda: [index.search_vectors(q[None, :], k) for q in qs]) / queries
    agree = all(index.search_vectors(q[None, :], k)[0][0].tolist() == bare(q).tolist() for q in qs)
    print(f"top-{k} over {n} x {dim}: python loop {t_loop * 1000:8.1f} ms   bare matmul+argpartition "
          f"{t_bare * 1000:6.2f} ms   ragkit {t_ragkit * 1000:6.2f} ms")
    print(f"  ragkit vs loop: {t_loop / t_ragkit:7.0f}x faster (target > 100x)   "
          f"ragkit/bare time: {t_ragkit / t_bare:.2f} (target < 1.5)   same top-{k} as bare: {agree}")


def spaced_queries(n: int = 5_183, dim: int = 384, k: int = 10, queries: int = 200, pause: float = 0.01) -> None:
    rng = np.random.default_rng(1)
    chunks = [Chunk(f"d{i}#0", f"d{i}", "", "x", 0, 0, 1) for i in range(n)]
    index = VectorIndex(rng.normal(size=(n, dim)).astype(np.float32), chunks, "bench")
    qs = rng.normal(size=(queries, dim)).astype(np.float32)

    def bare(q):
        s = index.vectors @ q
        part = np.argpartition(-s, k)[:k]
        return part[np.argsort(-s[part])]

    def spaced(fn) -> tuple[float, float]:
        times = []
        for q in qs:
            time.sleep(pause)  # the machine goes quiet between two questions
            start = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - start)
        return float(np.percentile(times, 50)) * 1000, float(np.percentile(times, 95)) * 1000

    (b50, b95), (r50, r95) = spaced(bare), spaced(lambda q: index.search_vectors(q[None, :], k))
    print(f"one query every {pause * 1000:.0f} ms over {n} x {dim}: bare p50 {b50:.2f} ms p95 {b95:.2f} ms   "
          f"ragkit p50 {r50:.2f} ms p95 {r95:.2f} ms   ragkit/bare p95 {r95 / b95:.2f} (target < 0.5)")


if __name__ == "__main__":
    # SciFact abstracts often exceed 256 word pieces: both sides truncate them the same way
    warnings.filterwarnings("ignore", message=".*longer than 256 word pieces")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=512)
    p.add_argument("--vectors", type=int, default=100_000)
    a = p.parse_args()
    embedding(a.texts)
    search(a.vectors)
    spaced_queries()
