"""`ragkit serve` answers a room of concurrent learners, each from their own address, without a failed call
(the figures themselves come from benchmarks/load.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragkit.backends.server import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from load import report, run_load  # noqa: E402


@pytest.fixture(scope="module")
def server(local_backend):
    srv = make_server(local_backend, port=0, quiet=True).start()
    yield srv
    srv.shutdown()


def test_thirty_concurrent_learners_get_every_answer(server):
    result = run_load(server.base_url, clients=30, rounds=2, chat_every=2, deadline_s=240)
    print(report(result))
    assert result["failures"] == []
    assert result["requests"] == 30 * 2 * 2 + 30  # embed + rerank per round, one chat each
    assert set(result["latency"]) == {"embeddings", "rerank", "chat"}
