"""Load on `ragkit serve`: N concurrent learners on loopback, each asking like a notebook does.

Each simulated learner repeats: embed a question, rerank 10 passages, and every `chat_every`
rounds a short chat completion. Prints requests/s, p50/p95 latency per endpoint and the failures.
Bounded: a fixed number of rounds per learner and a deadline; it stops by itself. Loopback only.

Run: python benchmarks/load.py [--clients 30] [--rounds 10]
"""
from __future__ import annotations

import argparse
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ragkit.backends.openrouter import OpenRouterBackend

PASSAGES = [f"Passage {i} explains how retrieval, reranking and generation fit together, part {i}."
            for i in range(10)]


def run_load(base_url: str, clients: int = 30, rounds: int = 10, chat_every: int = 5,
             deadline_s: float = 300.0) -> dict:
    """Return {"requests", "failures", "seconds", "rps", "latency": {endpoint: (p50, p95)}}."""
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def timed(name, fn):
        start = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # counted, reported, never hidden
            with lock:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
            return
        with lock:
            latencies[name].append(time.perf_counter() - start)

    def learner(i: int) -> None:
        with OpenRouterBackend(base_url, timeout=120, max_retries=0) as b:
            for r in range(rounds):
                if time.monotonic() > stop_at:
                    return
                q = f"learner {i} question {r}: what does a reranker do?"
                timed("embeddings", lambda: b.embed([q]))
                timed("rerank", lambda: b.rerank(q, PASSAGES, top_n=3))
                if chat_every and r % chat_every == 0:
                    timed("chat", lambda: b.chat([{"role": "user", "content": "Say OK."}], max_tokens=4))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(learner, range(clients)))
    seconds = time.perf_counter() - start
    n = sum(len(v) for v in latencies.values()) + len(failures)
    return {"requests": n, "failures": failures, "seconds": seconds, "rps": n / seconds,
            "latency": {k: (float(np.percentile(v, 50)), float(np.percentile(v, 95)))
                        for k, v in sorted(latencies.items())}}


def report(result: dict) -> str:
    lines = [f"{result['requests']} requests in {result['seconds']:.1f} s: {result['rps']:.1f} requests/s, "
             f"{len(result['failures'])} failed"]
    for name, (p50, p95) in result["latency"].items():
        lines.append(f"  {name:11} p50 {p50 * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms")
    lines += [f"  failure: {f}" for f in result["failures"][:5]]
    return "\n".join(lines)


if __name__ == "__main__":
    from ragkit.backends.local import LocalBackend
    from ragkit.backends.server import make_server

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args()
    server = make_server(LocalBackend(), port=0, quiet=True).start()
    try:
        print(report(run_load(server.base_url, a.clients, a.rounds)))
    finally:
        server.shutdown()
