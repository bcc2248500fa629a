"""Indexing 10,000 chunks through a server that fails every few requests loses nothing.

The server answers embeddings correctly, except that it fails in a repeating pattern: 503, 429
(with Retry-After), a dropped connection, a body cut short mid-transfer, and two 200s that are valid
HTTP but not the answer: a JSON body cut short (its Content-Length says so) and a proxy's HTML page.
The client retries within its budget; at the end every text is in the cache exactly once, and the
requests add up.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from collections import Counter

import numpy as np

from faultserver import FaultServer, Reply, embeddings_json
from ragkit.cache import EmbeddingCache
from ragkit.backends.openrouter import OpenRouterBackend

FAULTS = [Reply(503, {"error": {"code": 503, "message": "overloaded"}}),
          Reply(429, {"error": {"code": 429, "message": "slow down"}}, headers={"Retry-After": "0"}),
          Reply(drop=True),
          Reply(200, body=b'{"object": "list", "data": [{"index": 0, "embedd', cut_at=30),
          Reply(200, body=b'{"object": "list", "data": [{"index": 0, "embedd'),
          Reply(200, body=b"<html><body>Gateway busy</body></html>", headers={"Content-Type": "text/html"})]


def vector(text: str) -> np.ndarray:
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest, dtype=np.uint8)[:8].astype(np.float32) + 1.0


def flaky_embeddings(every: int = 3):
    """A reply function: every `every`-th request fails (cycling through FAULTS), others answer."""
    counter, lock, faults = itertools.count(1), threading.Lock(), itertools.cycle(FAULTS)
    answered: Counter = Counter()

    def reply(seen):
        with lock:
            n = next(counter)
            if n % every == 0:
                return next(faults)
        texts = seen.json["input"]
        answered.update(texts)
        return Reply(200, embeddings_json([vector(t) for t in texts]))

    return reply, answered


def test_ten_thousand_chunks_through_a_failing_server_are_each_cached_once(tmp_path):
    server = FaultServer().start()
    reply, answered = flaky_embeddings(every=3)
    server.default = reply
    texts = [f"chunk {i}: a passage about topic {i % 97}" for i in range(10_000)]
    try:
        backend = OpenRouterBackend(server.url, embedding_model="test/embed", rerank_model="test/rerank",
                                    chat_model="test/chat", batch_size=100, timeout=2.0,
                                    backoff=0.001, max_backoff=0.005, retry_budget=30)
        cache = EmbeddingCache(tmp_path / "c.sqlite")
        result = cache.embed(backend, texts, batch_size=100, progress=False)
    finally:
        server.shutdown()
    assert result.embedded == 10_000 and len(cache) == 10_000
    assert set(answered) == set(texts) and max(answered.values()) == 1  # none embedded twice
    # 100 batches answered; every 3rd request failed, so the 100th success is request 149
    assert backend.usage.requests == 100 and len(server.requests) == 149
    stored = np.vstack(cache.get("test/embed", texts[:50], origin=backend.origin))
    expected = np.vstack([vector(t) for t in texts[:50]])
    np.testing.assert_allclose(stored, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)
    again = cache.embed(backend, texts, batch_size=100, progress=False)
    assert again.embedded == 0
