"""The vector index: exact top-k, the model check, safe save/load."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from ragkit.types import Embeddings
from ragkit.types import Chunk
from ragkit.errors import EmbeddingModelMismatch, IndexFileError
from ragkit.index import VectorIndex
from ragkit.vectors import top_k


def chunks(n):
    return [Chunk(f"d{i}#0", f"d{i}", f"title {i}", f"text {i}", 0, 0, 6) for i in range(n)]


def small_index(n=50, dim=8, seed=0, model="m/one"):
    rng = np.random.default_rng(seed)
    return VectorIndex(rng.normal(size=(n, dim)), chunks(n), model)


@settings(max_examples=200, deadline=None)
@given(scores=arrays(np.float32, st.integers(1, 60), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, -1.0])),
       k=st.integers(1, 70))
def test_top_k_equals_a_brute_force_sort_with_ties_by_index(scores, k):
    expected = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    assert top_k(scores, k).tolist() == expected


def test_search_returns_the_nearest_vectors_best_first():
    index = small_index()
    query = Embeddings(index.vectors[[7]], "m/one")
    hits = index.search(query, k=3)
    assert hits[0].chunk.id == "d7#0" and hits[0].rank == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_k_larger_than_the_index_returns_everything():
    assert len(small_index(n=4).search(Embeddings(np.ones((1, 8), np.float32), "m/one"), k=100)) == 4


def test_vectors_are_normalised():
    index = VectorIndex(np.array([[3.0, 4.0], [0.0, 2.0]]), chunks(2), "m")
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, rtol=1e-6)
    assert index.vectors.dtype == np.float32


@pytest.mark.parametrize("model, dim", [("m/other", 8), ("m/one", 16)])
def test_query_from_another_model_is_refused(model, dim):
    index = small_index()
    with pytest.raises(EmbeddingModelMismatch, match=r"index built with 'm/one' \(8-d\)"):
        index.search(Embeddings(np.ones((1, dim), np.float32), model), k=3)


def test_raw_arrays_are_refused_by_search():
    with pytest.raises(TypeError, match="backend.embed"):
        small_index().search(np.ones((1, 8)), k=3)


def test_save_and_load_round_trip(tmp_path):
    index = small_index()
    loaded = VectorIndex.load(index.save(tmp_path / "idx"))
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert loaded.chunks == index.chunks and loaded.model == index.model


def test_missing_index_names_the_fix(tmp_path):
    with pytest.raises(IndexFileError, match="ragkit index"):
        VectorIndex.load(tmp_path / "nothing-here")


def test_tampered_vectors_are_detected(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    vectors = np.load(folder / "vectors.npy")
    vectors[0, 0] += 1
    np.save(folder / "vectors.npy", vectors)
    with pytest.raises(IndexFileError, match="vectors.npy does not match"):
        VectorIndex.load(folder)


def test_pickled_arrays_are_never_loaded(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    np.save(folder / "vectors.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(IndexFileError, match="damaged"):
        VectorIndex.load(folder)


def test_garbage_metadata_is_rejected(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    (folder / "index.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(IndexFileError, match="not a ragkit index"):
        VectorIndex.load(folder)
    (folder / "index.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="damaged"):
        VectorIndex.load(folder)


def test_search_all_matches_one_search_per_query():
    index = small_index()
    queries = Embeddings(index.vectors[[3, 9, 27]] + 0.05, "m/one")
    together = index.search_all(queries, k=4)
    for row, hits in enumerate(together):
        alone = index.search(Embeddings(queries.vectors[[row]], "m/one"), k=4)
        assert [(h.chunk.id, h.rank) for h in hits] == [(h.chunk.id, h.rank) for h in alone]
        assert [h.score for h in hits] == pytest.approx([h.score for h in alone])
