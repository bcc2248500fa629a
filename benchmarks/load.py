"""Load on `ragkit serve`: concurrent learners on loopback, each asking as a notebook does.

Each simulated learner has its own loopback address (127.0.0.2, 127.0.0.3, ...), as learners in a room
have their own machines, so the per-client cap applies per learner. It repeats: embed a question,
rerank 10 passages, and every `chat_every` rounds a short chat. Calls go through ragkit's own client,
which retries a 429 as its `Retry-After` says. Three measurements, printed as figures:

1. 30 learners: failed calls (target 0) and p50/p95 latency per endpoint;
2. 100 learners: every call answered in the end, how many 429s the server sent on the way;
3. a hung-up stream: a short chat alone, then right after a client opened a long stream and hung
   up (target: at most 2 s more than alone).

Bounded: a fixed number of rounds per learner and a deadline; it stops by itself. Loopback only.

Run: python benchmarks/load.py [--clients 30] [--crowd 100] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from ragkit.backends.openrouter import OpenRouterBackend

PASSAGES = [f"Passage {i} explains how retrieval, reranking and generation fit together, part {i}."
            for i in range(10)]


def learner_address(i: int) -> str:
    """Return learner i's own loopback address: 127.0.0.2 onwards."""
    n = i + 2
    return f"127.0.{n // 254}.{n % 254 + 1}" if n >= 254 else f"127.0.0.{n}"


def run_load(base_url: str, clients: int = 30, rounds: int = 3, chat_every: int = 1,
             deadline_s: float = 600.0, retry_budget: float = 300.0) -> dict:
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
        transport = httpx.HTTPTransport(local_address=learner_address(i))
        with OpenRouterBackend(base_url, timeout=120, max_retries=50, backoff=0.5, max_backoff=8,
                               retry_budget=retry_budget, transport=transport) as b:
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
    lines = [f"{result['requests']} calls in {result['seconds']:.1f} s: {result['rps']:.1f} calls/s, "
             f"{len(result['failures'])} failed"]
    for name, (p50, p95) in result["latency"].items():
        lines.append(f"  {name:11} p50 {p50 * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms")
    lines += [f"  failure: {f}" for f in result["failures"][:5]]
    return "\n".join(lines)


def short_chat(url: str) -> float:
    """Return the seconds one short chat takes."""
    start = time.perf_counter()
    httpx.post(url + "/v1/chat/completions", timeout=300,
               json={"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 4}).raise_for_status()
    return time.perf_counter() - start


def hang_up_delay(url: str) -> tuple[float, float]:
    """Return (a short chat alone, the same chat right after another client hung up on a long stream)."""
    alone = float(np.median([short_chat(url) for _ in range(3)]))
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", url + "/v1/chat/completions", json={"stream": True, "max_tokens": 3000, "messages": [
                {"role": "user", "content": "Write a very long story about a dragon."}]}) as r:
            lines = r.iter_lines()
            for _ in range(3):
                next(lines)
    return alone, short_chat(url)


if __name__ == "__main__":
    from ragkit.backends.local import LocalBackend
    from ragkit.backends.server import make_server

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--crowd", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    log = io.StringIO()
    server = make_server(LocalBackend(), port=0, log=log).start()
    try:
        short_chat(server.url)  # load the models first
        print(f"== {a.clients} concurrent learners, {a.rounds} rounds (embed + rerank + short chat each)")
        print(report(run_load(server.base_url, a.clients, a.rounds)))
        before = log.getvalue().count(" 429 ")
        print(f"== {a.crowd} concurrent learners, {a.rounds} rounds")
        crowd = run_load(server.base_url, a.crowd, a.rounds)
        print(report(crowd))
        expected = a.crowd * a.rounds * 3
        print(f"  answered {crowd['requests'] - len(crowd['failures'])} of {expected} calls; the server sent "
              f"{log.getvalue().count(' 429 ') - before} 429s (queue full or per-client cap), each retried")
        alone, after = hang_up_delay(server.url)
        print(f"== hung-up stream: a short chat alone {alone:.2f} s, after a hang-up {after:.2f} s "
              f"(+{after - alone:.2f} s; target <= 2 s)")
    finally:
        server.shutdown()
