"""The local embedding model: the all-MiniLM-L6-v2 recipe, in input order, honest about truncation."""
from __future__ import annotations


import numpy as np
import pytest

from ragkit.embedder import MAX_TOKENS, count_tokens, counting_tokenizer


def test_vectors_are_unit_length_float32_in_input_order(local_backend):
    texts = ["a much longer sentence about cats sitting on warm mats in the sun", "cats", "dogs bark"]
    together = local_backend.embed(texts).vectors
    assert together.shape == (3, 384) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    for i, t in enumerate(texts):  # batching sorts by length internally; rows must not move
        np.testing.assert_allclose(local_backend.embed([t]).vectors[0], together[i], atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_texts(local_backend):
    v = local_backend.embed(["A man is eating food.", "A man is eating a piece of bread.",
                             "The girl is carrying a baby."]).vectors
    assert v[0] @ v[1] > 0.6 > 0.2 > v[0] @ v[2]


def test_text_beyond_the_model_limit_is_embedded_with_a_warning(local_backend):
    with pytest.warns(UserWarning, match=f"longer than {MAX_TOKENS} word pieces"):
        vectors = local_backend.embed(["word " * 1000]).vectors
    assert np.isfinite(vectors).all()


def test_default_chunks_fit_the_model_with_their_title_line(demo_chunks):
    from ragkit.chunking import chunk_documents
    from ragkit.eval.datasets import python_reference
    from ragkit.index import embedding_text

    chunks = demo_chunks + chunk_documents(python_reference(), "heading")
    lengths = count_tokens([embedding_text(c) for c in chunks])
    assert max(lengths) + 2 <= MAX_TOKENS  # + [CLS] and [SEP]


def test_count_tokens_uses_the_models_word_pieces():
    assert count_tokens(["Retrieval-augmented generation", ""]) == [4, 0]
    assert counting_tokenizer() is counting_tokenizer()
