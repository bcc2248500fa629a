"""BM25 (ragkit.lexical) and rank fusion (ragkit.hybrid): hand-made corpora, hand-worked numbers."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ragkit.hybrid
import ragkit.lexical
from ragkit.types import Chunk, Document
from ragkit.hybrid import fuse_hits, minmax, rrf, score_fusion
from ragkit.types import Hit
from ragkit.lexical import BM25Index, as_chunks, tokenize

CORPUS = [
    "The cat sat on the mat.",                       # 0
    "Dogs chase cats in the garden.",                # 1
    "A recipe for bread: flour, water, salt.",       # 2
    "Running shoes for runners who run every day.",  # 3
    "The garden is full of flowers.",                # 4
]


def test_tokenize_lowercases_drops_stop_words_and_stems():
    assert tokenize(["The Cats ARE running in the Gardens"]) == [["cat", "run", "garden"]]
    assert tokenize(["The Cats ARE running"], stemmer=None) == [["cats", "running"]]
    assert tokenize(["a I x 42"]) == [["42"]]  # one-character words go, numbers stay


def test_bm25_ranks_a_tiny_corpus_as_expected():
    bm25 = BM25Index().fit(CORPUS)
    hits = bm25.search("cats in a garden", k=3)
    # 1 has both words; 0 (cat) and 4 (garden) have one each, as rare, in as long a text: a tie,
    # which the chunk indexed first wins
    assert [h.chunk.text for h in hits] == [CORPUS[1], CORPUS[0], CORPUS[4]]
    assert hits[1].score == hits[2].score > 0 and [h.rank for h in hits] == [1, 2, 3]
    hits = bm25.search("how do runners run", k=1)  # stems: runner, run; "running" -> run
    assert hits[0].chunk.text == CORPUS[3] and hits[0].rank == 1
    assert bm25.scores("bread")[[0, 1, 3, 4]].tolist() == [0, 0, 0, 0]  # no shared word, no score
    assert not bm25.scores("the of and").any()  # only stop words: every score 0
    assert not bm25.scores("zebra").any()  # a word the corpus lacks


def test_bm25_score_is_the_documented_formula():
    docs = ["apple apple banana", "apple cherry", "banana banana banana banana"]
    k1, b = 1.2, 0.75
    bm25 = BM25Index(k1=k1, b=b, stemmer=None).fit(docs)
    lengths = [3, 2, 4]
    avg = sum(lengths) / 3

    def expected(doc: int, tf: int, df: int) -> float:
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf / (tf + k1 * (1 - b + b * lengths[doc] / avg))  # Lucene: no (k1 + 1)

    got = bm25.scores("apple banana")
    assert got[0] == pytest.approx(expected(0, 2, 2) + expected(0, 1, 2), rel=1e-5)
    assert got[1] == pytest.approx(expected(1, 1, 2), rel=1e-5)
    assert got[2] == pytest.approx(expected(2, 4, 2), rel=1e-5)


def test_bm25_ties_go_to_the_chunk_indexed_first_and_k_is_capped():
    bm25 = BM25Index().fit(["red apples", "green pears", "red apples"])
    indices, scores = bm25.search_arrays(["red apples", "pears"], k=10)
    assert indices.shape == (2, 3)
    assert indices[0].tolist() == [0, 2, 1] and scores[0, 0] == scores[0, 1]
    assert indices[1, 0] == 1


def test_bm25_takes_documents_and_chunks_and_reads_titles():
    docs = [Document("tea", "Steep the leaves for three minutes.", title="Brewing green tea"),
            Document("coffee", "Grind the beans just before brewing.", title="Coffee")]
    bm25 = BM25Index().fit(docs)
    assert bm25.search("green tea", k=1)[0].chunk.doc_id == "tea"  # the words are in the title only
    chunks = as_chunks(docs)
    assert chunks[0].id == "tea#0" and chunks[0].text == docs[0].text
    assert BM25Index().fit(chunks).search_all(["beans", "leaves"], k=1)[1][0].chunk.doc_id == "tea"


def test_bm25_errors_say_what_to_do():
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Index().fit([])
    with pytest.raises(RuntimeError, match="fit"):
        BM25Index().scores("anything")
    with pytest.raises(TypeError, match="list of queries"):
        BM25Index().fit(CORPUS).search_arrays("one string", k=2)
    with pytest.raises(TypeError, match="Chunks, Documents or strings"):
        BM25Index().fit([42])


# --------------------------------------------------------------------------------------------------
# Fusion


def test_rrf_hand_worked():
    indices, scores = rrf([np.array([[0, 1, 2]]), np.array([[2, 0, 3]])], k=60)
    assert indices.tolist() == [[0, 2, 1]]  # width of the widest list; 3 (1/63) is cut
    assert scores[0] == pytest.approx([1 / 61 + 1 / 62, 1 / 61 + 1 / 63, 1 / 62])
    assert rrf([np.array([[5, 7]])], k=0)[1].tolist() == [[1.0, 0.5]]


def test_rrf_ties_go_to_the_lower_index_even_when_sums_run_in_another_order():
    indices, scores = rrf([np.array([[1, 0]]), np.array([[0, 1]])])
    assert indices.tolist() == [[0, 1]] and scores[0, 0] == scores[0, 1]
    # three lists: the same three terms summed in different orders still tie exactly
    lists = [np.array([[4, 3, 2]]), np.array([[2, 4, 3]]), np.array([[3, 2, 4]])]
    indices, scores = rrf(lists)
    assert indices.tolist() == [[2, 3, 4]] and len(set(scores[0])) == 1


def test_score_fusion_hand_worked():
    dense = (np.array([[0, 1, 2]]), np.array([[0.9, 0.8, 0.1]]))  # min-max: 1, 0.875, 0
    bm25 = (np.array([[2, 0, 3]]), np.array([[12.0, 6.0, 3.0]]))  # min-max: 1, 1/3, 0
    indices, scores = score_fusion([dense, bm25])
    assert indices.tolist() == [[0, 2, 1]]
    assert scores[0] == pytest.approx([(1 + 1 / 3) / 2, (0 + 1) / 2, 0.875 / 2])
    indices, scores = score_fusion([dense, bm25], weights=[0.2, 0.8])
    assert indices.tolist() == [[2, 0, 1]] and scores[0] == pytest.approx([0.8, 0.2 + 0.8 / 3, 0.2 * 0.875])


def test_score_fusion_rows_are_queries_and_flat_rows_count_as_best():
    dense = (np.array([[0, 1], [1, 0]]), np.array([[0.5, 0.5], [0.9, 0.1]]))
    bm25 = (np.array([[1, 0], [0, 1]]), np.array([[3.0, 1.0], [2.0, 1.0]]))
    indices, scores = score_fusion([dense, bm25])
    assert indices.tolist() == [[1, 0], [0, 1]]  # row 2: a tie at 0.5, the lower index first
    assert scores.tolist() == [[1.0, 0.5], [0.5, 0.5]]
    assert minmax(np.array([2.0, 2.0])).tolist() == [[1.0, 1.0]]


def test_fusion_errors():
    with pytest.raises(ValueError, match="one row per query"):
        rrf([np.array([[0, 1]]), np.array([[0, 1], [1, 0]])])
    with pytest.raises(ValueError, match="twice"):
        rrf([np.array([[0, 0, 1]])])
    with pytest.raises(ValueError, match="one weight each"):
        score_fusion([(np.array([[0]]), np.array([[1.0]]))], weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="'score' or 'rrf'"):
        fuse_hits([[]], method="borda")


def _hit(cid: str, score: float, rank: int) -> Hit:
    return Hit(Chunk(cid, cid.split("#")[0], cid, "text", 0, 0, 4), score, rank)


def test_fuse_hits_matches_chunks_by_id():
    dense = [_hit("a#0", 0.9, 1), _hit("b#0", 0.7, 2), _hit("c#0", 0.2, 3)]
    bm25 = [_hit("c#0", 9.0, 1), _hit("a#0", 4.0, 2), _hit("d#0", 1.0, 3)]
    fused = fuse_hits([dense, bm25])
    assert [h.chunk.id for h in fused] == ["a#0", "c#0", "b#0"]
    assert [h.rank for h in fused] == [1, 2, 3]
    assert fused[0].score == pytest.approx((1 + 3 / 8) / 2)
    by_rank = fuse_hits([dense, bm25], method="rrf", k=60)
    assert [h.chunk.id for h in by_rank] == ["a#0", "c#0", "b#0"]
    assert by_rank[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fuse_hits([[], []]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.permutations(list(range(8))), min_size=1, max_size=4), st.integers(1, 8),
       st.integers(0, 100))
def test_fused_rows_are_distinct_best_first_and_hold_every_unanimous_winner(perms, depth, k):
    lists = [np.array([p[:depth]]) for p in perms]
    indices, scores = rrf(lists, k=k)
    assert indices.shape == (1, depth)
    assert len(set(indices[0])) == depth
    assert np.all(np.diff(scores[0]) <= 0)
    if all(p[0] == perms[0][0] for p in perms):  # first in every list: first after fusion
        assert indices[0, 0] == perms[0][0]


@pytest.mark.parametrize("module", [ragkit.lexical, ragkit.hybrid])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
