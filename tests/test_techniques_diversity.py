"""Maximal marginal relevance and near-duplicate removal (`ragkit.techniques.diversity`): the arithmetic
on toy vectors worked by hand, the edges (empty, k past the end, ties), a property over random lists,
and the real embedder's view of a reworded copy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.techniques.diversity import dedupe_hits, hit_vectors, mmr, mmr_hits, near_duplicates
from ragkit.types import Chunk, Hit
from ragkit.vectors import unit


def angles(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane at these angles: cos(i, j) is the cosine of the angle between them."""
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


def hits_of(texts, scores=None, titles=None) -> list[Hit]:
    scores = scores or [1.0 - i / 10 for i in range(len(texts))]
    titles = titles or [f"doc{i}" for i in range(len(texts))]
    return [Hit(Chunk(f"{d}#0", d, d, t, 0, 0, len(t)), s, r)
            for r, (t, s, d) in enumerate(zip(texts, scores, titles), start=1)]


def test_mmr_by_hand():
    """0 deg, 10 deg, 90 deg; relevance 1.0, 0.9, 0.6 -> scaled 1, 0.75, 0. cos(0,1) = cos 10 = 0.9848.

    lambda 0.7, after 0: row 1 scores .7*.75 - .3*.9848 = 0.2296, row 2 .7*0 - .3*0 = 0 -> 1 then 2.
    lambda 0.4, after 0: row 1 scores .4*.75 - .6*.9848 = -0.2909, row 2 0 -> 2, then 1.
    """
    v, rel = angles(0, 10, 90), np.array([1.0, 0.9, 0.6])
    assert mmr(v, rel, lambda_=0.7).tolist() == [0, 1, 2]
    assert mmr(v, rel, lambda_=0.4).tolist() == [0, 2, 1]
    # The crossover: .75 * lam = (1 - lam) * 0.9848 at lam = 0.5677; either side of it the order flips.
    assert mmr(v, rel, lambda_=0.56).tolist() == [0, 2, 1]
    assert mmr(v, rel, lambda_=0.58).tolist() == [0, 1, 2]


def test_relevance_is_scaled_so_lambda_means_the_same_for_any_scores():
    """A reranker's logits and the same order as cosines give the same picks: only the scaled scores count."""
    v = angles(0, 10, 90, 100)
    cosines = np.array([0.8, 0.7, 0.5, 0.4])
    logits = cosines * 20 - 3   # an affine map keeps min-max scaled scores exactly
    # Scaled 1, .75, .25, 0. lambda .5, after row 0: row 1 .375 - .5 cos 10 = -0.117, row 2 .125 - .5 cos 90
    # = 0.125, row 3 0 - .5 cos 100 = +0.087 -> 2; then row 1 -0.117 beats row 3 0 - .5 cos 10 = -0.492.
    assert mmr(v, logits, lambda_=0.5).tolist() == mmr(v, cosines, lambda_=0.5).tolist() == [0, 2, 1, 3]


def test_lambda_one_is_the_input_order_and_lambda_zero_the_most_different():
    v = angles(0, 5, 12, 80, 90)  # two clusters: 0-12 degrees and 80-90
    rel = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert mmr(v, rel, lambda_=1.0).tolist() == [0, 1, 2, 3, 4]
    # Novelty alone: after the most relevant (0 deg), the farthest (90), then the one whose nearest
    # pick is farthest: 5 deg is 5 from 0, 12 is 12 from 0, 80 is 10 from 90 -> 12, then 80, then 5.
    assert mmr(v, rel, lambda_=0.0).tolist() == [0, 4, 2, 3, 1]
    # With the input out of order, lambda 1 is the relevance order, ties to the earlier row.
    assert mmr(v, np.array([0.2, 0.9, 0.2, 0.5, 0.9]), lambda_=1.0).tolist() == [1, 4, 3, 0, 2]


def test_mmr_edges():
    v, rel = angles(0, 45, 90), np.array([3.0, 2.0, 1.0])
    assert mmr(v, rel, k=10).tolist() == [0, 1, 2]            # k past the end: all, once each
    assert mmr(v, rel, k=1).tolist() == [0]
    assert mmr(v, rel, k=0).tolist() == []
    assert mmr(np.empty((0, 2)), np.empty(0), k=5).shape == (0,)
    assert mmr(v, np.ones(3), lambda_=1.0).tolist() == [0, 1, 2]   # all equal: scaled to 1, ties to earlier
    with pytest.raises(ValueError, match="one score per row"):
        mmr(v, rel[:2])
    with pytest.raises(ValueError, match=r"lambda_ must be in \[0, 1\]"):
        mmr(v, rel, lambda_=1.5)
    with pytest.raises(ValueError, match="k must be >= 0"):
        mmr(v, rel, k=-1)


def test_mmr_hits_reorders_keeps_scores_and_reranks():
    hits = hits_of(["a", "a'", "b"], scores=[1.0, 0.9, 0.6])
    out = mmr_hits(hits, angles(0, 10, 90), lambda_=0.4)
    assert [(h.chunk.text, h.score, h.rank) for h in out] == [("a", 1.0, 1), ("b", 0.6, 2), ("a'", 0.9, 3)]
    assert [h.chunk.text for h in mmr_hits(hits, angles(0, 10, 90), k=2, lambda_=0.4)] == ["a", "b"]
    assert mmr_hits([], np.empty((0, 2))) == []
    with pytest.raises(ValueError, match="one row per hit"):
        mmr_hits(hits, angles(0, 10))


def test_duplicates_keep_the_best_ranked_copy():
    """Rows 1 and 3 are copies (cos >= 0.95) of rows 0 and 2 ranked above them: they go, 0 and 2 stay."""
    v = angles(0, 90, 45, 91, 180)   # cos(1, 3) = cos 1 deg = 0.99985
    assert near_duplicates(v).tolist() == [False, False, False, True, False]
    hits = hits_of(["a", "b", "c", "b again", "d"])
    kept = dedupe_hits(hits, v)
    assert [(h.chunk.text, h.rank, h.score) for h in kept] == [("a", 1, 1.0), ("b", 2, 0.9), ("c", 3, 0.8),
                                                               ("d", 4, 0.6)]


def test_a_chain_of_near_copies_judged_against_kept_rows_only():
    """a ~ b (cos 0.966), b ~ c (0.966), a !~ c (0.866) at 0.95: b goes; c is like b only, and b is gone."""
    assert near_duplicates(angles(0, 15, 30), threshold=0.95).tolist() == [False, True, False]
    assert near_duplicates(angles(0, 15, 30), threshold=0.8).tolist() == [False, True, True]


def test_exact_text_is_a_duplicate_even_when_vectors_differ():
    """The same passage under two titles embeds to two vectors; to the reader it is one passage."""
    hits = hits_of(["Tea is a leaf.", "Coffee is a seed.", "Tea  is a leaf.\n"], titles=["tea", "coffee", "faq"])
    far = angles(0, 90, 180)
    assert [h.chunk.id for h in dedupe_hits(hits, far)] == ["tea#0", "coffee#0"]
    assert [h.chunk.id for h in dedupe_hits(hits)] == ["tea#0", "coffee#0"]          # by text alone
    assert near_duplicates(far).tolist() == [False, False, False]                    # vectors alone keep all


def test_dedupe_edges():
    assert dedupe_hits([]) == []
    assert near_duplicates(np.empty((0, 3))).tolist() == []
    assert near_duplicates(angles(0, 0, 0), threshold=1.0).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="threshold is a cosine"):
        near_duplicates(angles(0), threshold=1.5)
    with pytest.raises(ValueError, match="vectors, their texts, or both"):
        near_duplicates(None)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 14), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_mmr_picks_each_row_once_and_first_the_most_relevant(n, k, lambda_, seed):
    rng = np.random.default_rng(seed)
    v, rel = unit(rng.normal(size=(n, 4))), rng.normal(size=n)
    order = mmr(v, rel, k, lambda_)
    assert len(order) == min(k, n) and len(set(order.tolist())) == len(order)
    if k:
        assert order[0] == int(np.argmax(rel))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 15), st.floats(0.0, 0.99), st.integers(0, 2**31 - 1))
def test_kept_rows_are_all_apart_and_every_dropped_row_has_a_kept_copy_above(n, threshold, seed):
    rng = np.random.default_rng(seed)
    v = unit(rng.normal(size=(n, 3)))
    drop = near_duplicates(v, threshold)
    sims = v @ v.T
    kept = np.flatnonzero(~drop)
    assert not drop[0]
    assert all(sims[i, j] < threshold + 1e-9 for i in kept for j in kept if i < j)
    assert all(np.any(sims[i, kept[kept < i]] >= threshold - 1e-9) for i in np.flatnonzero(drop))


def test_the_real_embedder_calls_a_reworded_copy_a_duplicate_and_a_paraphrase_not(local_backend):
    """The figures quoted in the module docstring: moved words 0.96-0.99, shorter paraphrase 0.86-0.87."""
    texts = ["A reranker reads the question and a passage together and scores how well the passage answers it.",
             "BM25 counts how often the words of the question occur in a passage.",
             "A reranker reads the question together with a passage and scores how well that passage answers it.",
             "Rerankers score passages by how well they answer a question."]
    v = local_backend.embed(texts).vectors
    assert 0.95 <= float(v[0] @ v[2]) < 1.0 and float(v[0] @ v[3]) < 0.9
    assert [h.chunk.text for h in dedupe_hits(hits_of(texts), v)] == [texts[0], texts[1], texts[3]]


def test_hit_vectors_finds_each_hits_row_in_the_index(demo_index):
    hits = [Hit(demo_index.chunks[i], 0.5, r) for r, i in enumerate([3, 0, 3], start=1)]
    assert np.array_equal(hit_vectors(demo_index, hits), demo_index.vectors[[3, 0, 3]])
    stray = Hit(Chunk("elsewhere#0", "elsewhere", "", "x", 0, 0, 1), 0.5, 1)
    with pytest.raises(ValueError, match="not in this index.*'elsewhere#0'"):
        hit_vectors(demo_index, [stray])
