"""The embedding cache returns only what it can vouch for (issue 14, finding 2): vectors are keyed by
the backend that made them, every row read is checked, bad rows are embedded again with one
warning, and a cache that cannot be written is used read-only or skipped with one clear line."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import DEMO
from faultserver import FaultServer, Reply, embeddings_json
from test_cache import TEXTS, CountingBackend
from ragkit import BackendError, config
from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.cache import EmbeddingCache, text_key


def impostor(dim=384, model=config.LOCAL_EMBEDDING_MODEL):
    """A reply function: a server that answers under the local model's name with vectors of its own."""
    rng = np.random.default_rng(7)

    def reply(seen):
        vectors = rng.normal(size=(len(seen.json["input"]), dim))
        return Reply(200, embeddings_json(vectors, model=model))
    return reply


@pytest.fixture
def server():
    s = FaultServer().start()
    yield s
    s.shutdown()


def test_a_server_answering_under_the_local_models_name_never_fills_the_local_cache(server, local_backend,
                                                                                    tmp_path):
    server.default = impostor()
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with OpenRouterBackend(server.url, retry_budget=5) as http:
        assert http.embedding_model == local_backend.embedding_model  # the same name...
        assert cache.embed(http, TEXTS, progress=False).embedded == len(TEXTS)
        assert cache.embed(http, TEXTS, progress=False).cached == len(TEXTS)  # ...its own vectors stay its own
    mine = cache.embed(local_backend, TEXTS, progress=False)
    assert (mine.embedded, mine.cached) == (len(TEXTS), 0)
    np.testing.assert_allclose(mine.vectors, local_backend.embed(TEXTS).vectors, atol=1e-6)


def test_offline_ragkit_index_after_an_impostor_server_embeds_again(server, tmp_path):
    server.default = impostor()
    env = {**os.environ, "RAGKIT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("OPENROUTER_API_KEY", None)
    shutil.copytree(DEMO, tmp_path / "docs")
    online = subprocess.run([sys.executable, "-m", "ragkit.cli", "index", "docs", "--index", "served"],
                            cwd=tmp_path, env={**env, "RAGKIT_BASE_URL": server.url}, capture_output=True, text=True)
    assert online.returncode == 0, online.stderr
    offline = subprocess.run([sys.executable, "-m", "ragkit.cli", "index", "docs"], cwd=tmp_path,
                             env={k: v for k, v in env.items() if k != "RAGKIT_BASE_URL"}, capture_output=True,
                             text=True)
    assert offline.returncode == 0, offline.stderr
    assert " 0 from the cache" in offline.stderr and " 0 embedded now" not in offline.stderr, offline.stderr


def rows_of(path, table="embeddings"):
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT key, dim, vector FROM {table}").fetchall()


@pytest.mark.parametrize("damage, why", [
    (lambda v: np.concatenate([v, v]) / np.sqrt(2), "changed since it was written"),       # 768-d in place
    (lambda v: np.full_like(v, np.nan), "changed since it was written"),                   # NaN in place
    (lambda v: np.roll(v, 1), "changed since it was written"),                             # same norm, moved
])
def test_a_row_overwritten_in_place_is_embedded_again_with_one_warning(local_backend, tmp_path, damage, why):
    path = tmp_path / "c.sqlite"
    EmbeddingCache(path).embed(local_backend, TEXTS[:5], progress=False)
    key, _, blob = rows_of(path)[0]
    bad = damage(np.frombuffer(blob, dtype=np.float32)).astype(np.float32)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE embeddings SET vector = ?, dim = ? WHERE key = ?", (bad.tobytes(), bad.shape[0], key))
    counting = CountingBackend(local_backend)
    with pytest.warns(UserWarning, match=rf"^1 cached vectors could not be used \(1 {why}\); embedded them again"):
        result = EmbeddingCache(path).embed(counting, TEXTS[:5], progress=False)
    assert (result.embedded, result.cached, counting.calls) == (1, 4, 1)
    np.testing.assert_allclose(result.vectors, local_backend.embed(TEXTS[:5]).vectors, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: the next run warns no more
        assert EmbeddingCache(path).embed(counting, TEXTS[:5], progress=False).embedded == 0


@pytest.mark.parametrize("vector, why", [
    (np.full(384, np.nan, dtype=np.float32), "not finite"),
    (np.ones(384, dtype=np.float32), "not of unit length"),
    (np.ones(768, dtype=np.float32) / np.sqrt(768), "of another dimension than the backend's"),
])
def test_a_bad_vector_written_by_anyone_is_never_returned(local_backend, tmp_path, vector, why):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    cache.put(local_backend.embedding_model, ["odd one"], [vector], origin="local")
    with pytest.warns(UserWarning, match=why):
        result = cache.embed(local_backend, ["odd one", "fine"], progress=False)
    assert result.vectors.shape == (2, 384) and np.isfinite(result.vectors).all() and result.embedded == 2


def test_a_server_that_changes_dimension_between_batches_is_a_clear_error(server, tmp_path):
    calls = iter([2, 3, 3])
    server.default = lambda seen: Reply(200, embeddings_json(np.eye(next(calls))[: len(seen.json["input"])]
                                                             + 0.1, model="test/embed"))
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with OpenRouterBackend(server.url, embedding_model="test/embed", retry_budget=5) as http:
        with pytest.raises(BackendError, match="answered 2-d vectors for one batch and 3-d for another"):
            cache.embed(http, ["a", "b", "c", "d"], batch_size=2, progress=False)
    assert len(cache) == 2  # the first batch is kept


def test_non_finite_vectors_from_a_backend_are_refused_and_not_cached(local_backend, tmp_path):
    class NaNBackend(CountingBackend):
        def embed(self, texts):
            e = super().embed(texts)
            return type(e)(np.full_like(e.vectors, np.nan), e.model, e.usage)

    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with pytest.raises(BackendError, match="not one finite, non-zero vector each"):
        cache.embed(NaNBackend(local_backend), ["a"], progress=False)
    assert len(cache) == 0


def legacy_cache(path, model, texts, vectors):
    """A cache file as ragkit wrote it before vectors were keyed by origin."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE vectors (key TEXT PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL, "
                   "vector BLOB NOT NULL)")
        db.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?)",
                       [(text_key(model, t), model, v.shape[0], v.astype(np.float32).tobytes())
                        for t, v in zip(texts, vectors)])


def test_an_older_cache_of_the_local_model_keeps_working_after_a_check(local_backend, tmp_path):
    from ragkit.cache import LEGACY_SAMPLE

    texts = [f"an older text {i}" for i in range(LEGACY_SAMPLE + 8)]
    path = tmp_path / "old.sqlite"
    legacy_cache(path, local_backend.embedding_model, texts, local_backend.embed(texts).vectors)
    counting = CountingBackend(local_backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = EmbeddingCache(path).embed(counting, texts, progress=False)
    assert (result.cached, result.embedded) == (len(texts), 0)
    assert counting.texts_seen == sorted(texts)[:LEGACY_SAMPLE]  # one batch, to check the old vectors
    assert len(rows_of(path)) == len(texts) and rows_of(path, "vectors") == []  # moved under its origin
    again = CountingBackend(local_backend)
    EmbeddingCache(path).embed(again, texts, progress=False)
    assert again.calls == 0


def test_an_older_cache_filled_by_another_server_is_dropped_with_a_word(local_backend, tmp_path):
    texts = [f"an older text {i}" for i in range(10)]
    path = tmp_path / "old.sqlite"
    rng = np.random.default_rng(0)
    fake = rng.normal(size=(10, 384))
    legacy_cache(path, local_backend.embedding_model, texts, fake / np.linalg.norm(fake, axis=1, keepdims=True))
    with pytest.warns(UserWarning, match=r"10 vectors an older ragkit cached for 'local/all-MiniLM-L6-v2-int8' "
                                         r"did not come from local \(10 of the 10 checked differ\)"):
        result = EmbeddingCache(path).embed(local_backend, texts, progress=False)
    assert result.embedded == 10
    np.testing.assert_allclose(result.vectors, local_backend.embed(texts).vectors, atol=1e-6)
    assert rows_of(path, "vectors") == []


# -- a cache that cannot be written ------------------------------------------------------------

def unprivileged(args, **kwargs):
    """Run a command as a user the file permissions apply to (root drops the capabilities that ignore them)."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be made to apply")
        drop = "-dac_override,-dac_read_search,-fowner"
        args = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


EMBED = ("import sys, warnings; from ragkit.cache import EmbeddingCache; from ragkit.backends import LocalBackend\n"
         "warnings.simplefilter('always')\n"
         "r = EmbeddingCache(sys.argv[1]).embed(LocalBackend(), ['one', 'two', 'three'], progress=False)\n"
         "print(r.cached, r.embedded, r.vectors.shape)")


@pytest.mark.parametrize("lock", ["file", "folder"])
def test_a_read_only_cache_is_used_read_only_with_one_line(local_backend, tmp_path, lock):
    folder = tmp_path / "cache"
    folder.mkdir()
    cache = EmbeddingCache(folder / "c.sqlite")
    cache.embed(local_backend, ["one", "two"], progress=False)
    cache.close()  # as another user's finished run leaves it
    (folder / "c.sqlite").chmod(0o444) if lock == "file" else folder.chmod(0o555)
    try:
        out = unprivileged([sys.executable, "-c", EMBED, str(folder / "c.sqlite")])
    finally:
        folder.chmod(0o755)
        (folder / "c.sqlite").chmod(0o644)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.split() == ["2", "1", "(3,", "384)"]  # what it held is used, the rest embedded
    lines = [line for line in out.stderr.splitlines() if "UserWarning" in line]
    assert len(lines) == 1 and "cannot be written" in lines[0] and "saving nothing new" in lines[0], out.stderr
    assert "moved" not in out.stderr and not list(folder.glob("*.corrupt-*"))


def test_a_cache_folder_that_cannot_be_made_is_skipped_with_one_line(tmp_path):
    tmp_path.chmod(0o555)
    try:
        out = unprivileged([sys.executable, "-c", EMBED, str(tmp_path / "new" / "c.sqlite")])
    finally:
        tmp_path.chmod(0o755)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.split() == ["0", "3", "(3,", "384)"]
    lines = [line for line in out.stderr.splitlines() if "UserWarning" in line]
    assert len(lines) == 1 and "going on without it" in lines[0], out.stderr


def test_ragkit_index_with_a_read_only_cache_says_so_in_one_line(local_backend, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    shutil.copytree(DEMO, tmp_path / "docs")
    env = {**os.environ, "RAGKIT_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    try:
        out = unprivileged([sys.executable, "-m", "ragkit.cli", "index", "docs"], cwd=tmp_path, env=env)
    finally:
        cache.chmod(0o755)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    said = [line for line in out.stderr.splitlines() if "cache" in line and "cannot be written" in line]
    assert len(said) == 1 and said[0].startswith("ragkit: "), out.stderr
