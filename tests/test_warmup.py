"""`ragkit warmup --corpora` fills the shared embedding cache with what the workbook's chapters embed, so
that their `build_index` calls (and `ragkit serve`, which embeds through the same cache) embed nothing."""
from __future__ import annotations

import os
import subprocess
import sys

from ragkit import config
from ragkit.cache import EmbeddingCache
from ragkit.chunking import chunk_documents
from ragkit.eval.datasets import demo_corpus, python_reference
from ragkit.index import embedding_text


def test_warmup_corpora_makes_the_chapters_index_from_the_cache(tmp_path):
    env = {**os.environ, "RAGKIT_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "ragkit.cli", "warmup", "--corpora"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert "Python Language Reference, heading chunks" in out.stderr and "already cached" in out.stderr
    cache = EmbeddingCache(tmp_path / "embeddings.sqlite")
    for docs, options in ((demo_corpus(), {}), (demo_corpus(), {"max_tokens": 200}), (python_reference(), {})):
        texts = [embedding_text(c) for c in chunk_documents(docs, "heading", **options)]  # as the notebooks do
        assert all(v is not None for v in cache.get(config.LOCAL_EMBEDDING_MODEL, texts, origin="local"))
