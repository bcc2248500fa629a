"""The embedding cache: nothing embedded twice, nothing lost on interrupt, corrupt files survived."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ragkit.types import Embeddings, Usage
from ragkit.cache import EmbeddingCache


class CountingBackend:
    """Wraps the real local backend; counts embed calls and can fail on the n-th one."""

    def __init__(self, inner, fail_on_call: int | None = None, answer_model: str | None = None):
        self.inner, self.fail_on_call, self.answer_model = inner, fail_on_call, answer_model
        self.embedding_model, self.origin = inner.embedding_model, inner.origin
        self.calls = 0
        self.texts_seen: list[str] = []

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise ConnectionError("simulated network failure")
        self.texts_seen.extend(texts)
        result = self.inner.embed(texts)
        return Embeddings(result.vectors, self.answer_model or result.model, Usage(requests=1))


TEXTS = [f"sentence number {i} about retrieval" for i in range(25)]


def test_second_build_makes_no_embedding_calls(local_backend, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = CountingBackend(local_backend)
    a = cache.embed(first, TEXTS, batch_size=10, progress=False)
    assert (first.calls, a.embedded, a.cached) == (3, 25, 0)
    second = CountingBackend(local_backend)
    b = cache.embed(second, TEXTS, batch_size=10, progress=False)
    assert (second.calls, b.embedded, b.cached) == (0, 0, 25)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.vectors.shape == (25, 384) and a.vectors.dtype == np.float32


def test_interrupted_build_resumes_with_only_the_missing_texts(local_backend, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    failing = CountingBackend(local_backend, fail_on_call=3)
    with pytest.raises(ConnectionError):
        cache.embed(failing, TEXTS, batch_size=10, progress=False)
    assert len(cache) == 20  # the two batches that came back were kept
    resumed = CountingBackend(local_backend)
    result = cache.embed(resumed, TEXTS, batch_size=10, progress=False)
    assert resumed.texts_seen == TEXTS[20:]
    assert (result.embedded, result.cached) == (5, 20)


def test_cache_survives_reopening_the_file(local_backend, tmp_path):
    path = tmp_path / "c.sqlite"
    EmbeddingCache(path).embed(local_backend, TEXTS[:3], progress=False)
    again = CountingBackend(local_backend)
    EmbeddingCache(path).embed(again, TEXTS[:3], progress=False)
    assert again.calls == 0


def test_duplicate_texts_are_embedded_once(local_backend, tmp_path):
    counting = CountingBackend(local_backend)
    result = EmbeddingCache(tmp_path / "c.sqlite").embed(counting, ["same", "same", "other"], progress=False)
    assert counting.texts_seen == ["same", "other"]
    np.testing.assert_array_equal(result.vectors[0], result.vectors[1])


def test_corrupt_cache_file_is_set_aside_with_a_warning(local_backend, tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.warns(UserWarning, match="unreadable"):
        cache = EmbeddingCache(path)
    result = cache.embed(local_backend, TEXTS[:2], progress=False)
    assert result.embedded == 2
    assert list(tmp_path.glob("c.sqlite.corrupt-*")), "the damaged file is kept for inspection"


def test_damaged_row_is_treated_as_missing(local_backend, tmp_path):
    path = tmp_path / "c.sqlite"
    cache = EmbeddingCache(path)
    cache.embed(local_backend, ["a text"], progress=False)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE embeddings SET vector = X'00'")
    counting = CountingBackend(local_backend)
    with pytest.warns(UserWarning, match="1 cached vectors could not be used"):
        EmbeddingCache(path).embed(counting, ["a text"], progress=False)
    assert counting.calls == 1


def test_vectors_are_keyed_by_model(local_backend, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    cache.embed(local_backend, ["a text"], progress=False)
    assert cache.get("some/other-model", ["a text"], origin="local") == [None]


def test_backend_answering_with_another_model_is_refused(local_backend, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="RAGKIT_EMBEDDING_MODEL"):
        cache.embed(CountingBackend(local_backend, answer_model="x/other"), ["a"], progress=False)
    assert len(cache) == 0


@pytest.mark.parametrize("bad, error", [([], ValueError), ("a string", TypeError), ([None], TypeError),
                                        (["ok", "  "], ValueError), ([b"bytes"], TypeError)])
def test_bad_input_gets_a_clear_error(local_backend, tmp_path, bad, error):
    with pytest.raises(error):
        EmbeddingCache(tmp_path / "c.sqlite").embed(local_backend, bad, progress=False)


def test_build_index_fills_the_cache_it_is_given_even_when_empty(local_backend, demo_chunks, tmp_path):
    from ragkit.index import build_index, embedding_text

    cache = EmbeddingCache(tmp_path / "given.sqlite")
    assert len(cache) == 0  # empty, hence falsy: must still be the one used
    build_index(demo_chunks, local_backend, cache, progress=False)
    assert len(cache) == len({embedding_text(c) for c in demo_chunks})
