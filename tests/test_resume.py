"""A build killed half-way keeps what it embedded: the next run embeds only what is missing."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

from ragkit.eval.datasets import python_reference


def test_killed_index_build_resumes_with_only_the_missing_chunks(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for d in python_reference():
        (docs / f"{d.id}.txt").write_text(d.text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in {"OPENROUTER_API_KEY", "RAGKIT_BASE_URL"}}
    env["RAGKIT_CACHE_DIR"] = str(tmp_path / "cache")
    cache_file = tmp_path / "cache" / "embeddings.sqlite"
    cmd = [sys.executable, "-m", "ragkit.cli", "index", str(docs), "--index", str(tmp_path / "index")]

    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = 0
    deadline = time.monotonic() + 120
    while stored < 128 and time.monotonic() < deadline:  # wait for two batches to be committed
        time.sleep(0.05)
        if cache_file.exists():
            try:
                with sqlite3.connect(cache_file, timeout=1) as db:
                    stored = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the build finished before it could be interrupted"
    assert not (tmp_path / "index" / "index.json").exists()
    with sqlite3.connect(cache_file) as db:
        kept = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    assert kept >= 128

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    counts = re.search(r"as (\d+) chunks .*: (\d+) embedded now, (\d+) from the cache", second.stderr)
    chunks, embedded, cached = map(int, counts.groups())
    assert cached >= kept and embedded > 0  # cached counts repeated texts once per chunk
    with sqlite3.connect(cache_file) as db:
        assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == kept + embedded

    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert ": 0 embedded now" in third.stderr
