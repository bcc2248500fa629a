"""The pipeline as a notebook calls it: every stage reported, bad input refused clearly."""
from __future__ import annotations

import numpy as np
import pytest

import ragkit
from ragkit.types import Embeddings


def test_every_stage_is_reported(local_backend, demo_index):
    result = ragkit.ask("What does a reranker do?", demo_index, local_backend, k_retrieve=10, k_keep=3)
    assert len(result.retrieved) == len(result.reranked) == 10 and 1 <= len(result.kept) <= 3
    assert set(result.timings) == set(result.usage) == {"retrieve", "rerank", "generate"}
    assert result.usage["retrieve"].requests == 1 and result.usage["rerank"].requests == 1
    assert all(h.score >= result.threshold for h in result.kept)
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["chunk", "title", "dense_rank", "dense_score"]
    assert frame["kept"].sum() == len(result.kept)


# What a newcomer asks of the demo corpus first: each question must find its section and clear the
# relevance threshold (with a stemmer that left "hallucinate" and "hallucinates" apart, the first
# one scored 0.04 and was answered "not in the sources"); an off-topic question must keep nothing.
@pytest.mark.parametrize("question, title", [
    ("Why do LLMs hallucinate?", "Generating a grounded answer"),
    ("What does a reranker do?", "Reranking"),
    ("How should I chunk documents?", "Chunking documents"),
    ("What is nDCG?", "Evaluating retrieval and answers"),
])
def test_the_demo_corpus_answers_questions_on_its_topics(local_backend, demo_index, question, title):
    result = ragkit.ask(question, demo_index, local_backend, answer=False)
    assert result.kept, [(h.chunk.title, round(h.score, 3)) for h in result.reranked[:3]]
    assert result.kept[0].chunk.title == title


def test_an_off_topic_question_keeps_no_source(local_backend, demo_index):
    result = ragkit.ask("How do I install numpy with pip?", demo_index, local_backend, answer=False)
    assert result.kept == [] and result.reranked[0].score < result.threshold


def test_a_refusal_notes_the_closest_passage_and_the_threshold_that_keeps_it(local_backend, demo_index):
    refused = ragkit.ask("What is hallucination?", demo_index, local_backend, threshold=0.99)
    best = refused.reranked[0]
    assert refused.answer.mode == "not_in_context" and refused.usage["generate"].requests == 0
    note = refused.answer.notes[-1]
    assert f"{best.chunk.label!r}, scored {best.score:.3f}, under the threshold 0.99" in note
    lower = float(note.rpartition("a threshold of ")[2].split()[0])
    assert best.score - 0.001 < lower <= best.score and refused.threshold_to_answer == lower
    assert ragkit.ask("What is hallucination?", demo_index, local_backend, threshold=lower, answer=False).kept


def test_without_rerank_the_embedding_order_is_kept(local_backend, demo_index):
    result = ragkit.ask("What does a reranker do?", demo_index, local_backend, use_rerank=False, answer=False)
    assert result.reranked == result.retrieved and "rerank" not in result.timings
    assert result.answer is None


def test_k_larger_than_the_corpus_returns_the_whole_corpus(local_backend, demo_index):
    result = ragkit.ask("chunking", demo_index, local_backend, k_retrieve=1000, k_keep=5, answer=False)
    assert len(result.retrieved) == len(demo_index)


@pytest.mark.parametrize("question", ["", "   ", None, 42])
def test_empty_or_non_text_questions_are_refused(local_backend, demo_index, question):
    with pytest.raises(ValueError, match="question is empty"):
        ragkit.ask(question, demo_index, local_backend)


def test_keep_more_than_retrieved_is_refused(local_backend, demo_index):
    with pytest.raises(ValueError, match="k_keep <= k_retrieve"):
        ragkit.ask("anything", demo_index, local_backend, k_retrieve=3, k_keep=5)


def test_an_index_from_another_model_is_refused_before_any_generation(local_backend):
    index = ragkit.VectorIndex(np.ones((2, 8)), [ragkit.Chunk(f"a#{i}", "a", "A", "t", i, 0, 1) for i in range(2)],
                               "some/other-model")
    with pytest.raises(ragkit.EmbeddingModelMismatch, match="rebuild the index"):
        ragkit.ask("anything", index, local_backend)
    assert isinstance(local_backend.embed(["x"]), Embeddings)


def test_duplicate_document_ids_are_refused():
    docs = [ragkit.Document("same", "One text."), ragkit.Document("same", "Another text.")]
    with pytest.raises(ValueError, match="same"):
        ragkit.chunk_documents(docs)


def test_empty_corpus_is_refused(local_backend):
    with pytest.raises(ValueError):
        ragkit.chunk_documents([])
    with pytest.raises(ValueError, match="corpus is empty"):
        ragkit.build_index([], local_backend)
