"""Shared fixtures: a clean environment per test, and the real local models loaded once."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DEMO = REPO / "ragkit" / "data" / "demo"

_ENV = ["OPENROUTER_API_KEY", "RAGKIT_API_KEY", "RAGKIT_BASE_URL", "RAGKIT_EMBEDDING_MODEL", "RAGKIT_RERANK_MODEL",
        "RAGKIT_CHAT_MODEL", "RAGKIT_INDEX", "RAGKIT_STORE"]


# The chat model fetched once by `make setup` (`ragkit warmup`), shared by every test: a private cache
# per test must not fetch it again (tests/test_weights.py fetches it for real, into its own folder).
MODELS_DIR = str(__import__("ragkit.config").config.settings().models_dir)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path_factory):
    """No key, no base URL, and a private cache: each test starts as a newcomer would."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("RAGKIT_MODELS_DIR", MODELS_DIR)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def scratch_tmpdir(monkeypatch):
    """A TMPDIR for a notebook's kernel, removed afterwards: chapters 1 and 7 make temp folders.

    Outside pytest's root-only tree, because chapter 7 starts PostgreSQL, which runs as its own user.
    """
    scratch = Path(tempfile.mkdtemp(prefix="ragkit-notebook-"))
    monkeypatch.setenv("TMPDIR", str(scratch))
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def local_backend():
    """The real local backend (MiniLM, the offline reranker, SmolLM2), loaded once per run."""
    from ragkit.backends.local import LocalBackend

    return LocalBackend()


@pytest.fixture(scope="session")
def demo_chunks():
    from ragkit.chunking import chunk_documents
    from ragkit.documents import load_documents

    return chunk_documents(load_documents([DEMO]), "heading")


@pytest.fixture(scope="session")
def demo_index(local_backend, demo_chunks, tmp_path_factory):
    from ragkit.cache import EmbeddingCache
    from ragkit.index import build_index

    cache = EmbeddingCache(tmp_path_factory.mktemp("demo-cache") / "emb.sqlite")
    return build_index(demo_chunks, local_backend, cache, progress=False)


def write_files(folder: Path, files: dict) -> Path:
    """Write {relative path: str or bytes} under `folder` (folders made as needed); return it."""
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return folder
