"""Generation: the prompt, and the checks that carry what a small model cannot."""
from __future__ import annotations


from ragkit.types import Completion, Usage
from ragkit.types import Chunk
from ragkit.checks import NOT_IN_CONTEXT, check_answer, cited_numbers, contradicts, split_sentences, support
from ragkit.generate import Answer, build_messages, generate
from ragkit.types import Hit


def hit(n, text, title="T"):
    return Hit(Chunk(f"doc{n}#0", f"doc{n}", title, text, 0, 0, len(text), source=f"doc{n}.md"), 0.5, n)


HITS = [
    hit(1, "Green tea is made from leaves that are not oxidised.", "Tea"),
    hit(2, "A reranker scores each candidate passage again against the question with a cross-encoder "
           "and reorders them.", "Reranking"),
]


class ScriptedChat:
    """A chat backend that answers with a fixed text (the embedder is the real one)."""

    name = "scripted"
    chat_model = "scripted/model"

    def __init__(self, reply, embedder=None):
        self.reply, self.embedder, self.calls = reply, embedder, 0
        self.usage = Usage()

    def chat(self, messages, **kwargs):
        self.calls += 1
        self.messages = messages
        return Completion(self.reply, "scripted/model", Usage(requests=1))

    def embed(self, texts):
        return self.embedder.embed(texts)


def test_prompt_numbers_every_source_with_its_title():
    messages = build_messages("What does a reranker do?", HITS)
    last = messages[-1]["content"]
    assert "[1] Tea: Green tea" in last and "[2] Reranking: A reranker" in last
    assert last.endswith("Question: What does a reranker do?")
    assert messages[0]["role"] == "system" and "[2]" in messages[0]["content"]


def test_citation_parsing():
    assert cited_numbers("a [1] b [2, 3] c [12]") == [1, 2, 3, 12]
    assert split_sentences("One thing [1]. Another thing [2]! A third?") == \
        ["One thing [1].", "Another thing [2]!", "A third?"]


def test_support_counts_content_words():
    assert support("Rerankers reorder candidate passages.", HITS[1].chunk.text) == 1.0
    assert support("The moon is made of cheese.", HITS[1].chunk.text) == 0.0


def test_valid_supported_answer_is_kept_as_written():
    raw = "A reranker scores each candidate passage again and reorders them [2]."
    text, cited, mode, notes = check_answer("q", raw, HITS)
    assert (text, cited, mode, notes) == (raw, [2], "generated", [])


def test_citation_to_a_missing_source_is_removed_and_reported():
    text, cited, mode, notes = check_answer("q", "A reranker reorders candidate passages [7].", HITS)
    assert cited == [2] and "[7]" not in text and "[2]" in text
    assert mode == "checked" and any("only 2 sources" in n for n in notes)


def test_wrong_citation_is_replaced_by_the_supporting_source():
    text, cited, mode, _ = check_answer("q", "A reranker reorders candidate passages [1].", HITS)
    assert cited == [2] and text.endswith("[2].")


def test_unsupported_sentence_is_dropped_in_strict_mode_and_flagged_otherwise():
    raw = "A reranker reorders candidate passages [2]. It was invented on the moon in 1802 [2]."
    strict = check_answer("q", raw, HITS, strict=True)
    assert "moon" not in strict[0] and strict[2] == "checked"
    lenient = check_answer("q", raw, HITS, strict=False)
    assert "moon" in lenient[0] and any("unsupported" in n for n in lenient[3])


def test_repeated_sentences_are_removed():
    raw = "A reranker reorders passages [2]. A reranker reorders passages [2]."
    assert check_answer("q", raw, HITS)[0] == "A reranker reorders passages [2]."


def test_model_saying_not_in_context_is_respected():
    assert check_answer("q", NOT_IN_CONTEXT, HITS)[2] == "not_in_context"


def test_strict_checking_is_the_default_for_local_models_only():
    from ragkit.generate import is_small_local_model

    assert is_small_local_model("local/SmolLM2-135M-Instruct-Q4_1")
    assert not is_small_local_model("google/gemini-2.5-flash-lite")


def test_no_sources_means_no_model_call():
    chat = ScriptedChat("anything")
    answer = generate("What is the capital of France?", [], chat)
    assert answer.text == NOT_IN_CONTEXT and answer.mode == "not_in_context" and chat.calls == 0


def test_unsupported_model_output_falls_back_to_quoted_source_sentences(local_backend):
    chat = ScriptedChat("A reranker is a statistical tool for data quality.", embedder=local_backend)
    answer = generate("What does a reranker do?", HITS, chat, strict=True)
    assert answer.mode == "extractive"
    assert "cross-encoder" in answer.text and "[2]" in answer.text
    assert 2 in [c.number for c in answer.citations]
    assert answer.raw == "A reranker is a statistical tool for data quality."
    assert any("closest to the question" in n for n in answer.notes)


def test_every_citation_maps_to_a_source_it_was_given(local_backend, demo_index):
    from ragkit.pipeline import ask

    result = ask("What does a reranker do?", demo_index, local_backend)
    answer = result.answer
    assert answer.citations, answer
    for c in answer.citations:
        assert f"[{c.number}]" in answer.text
        assert c.hit is result.kept[c.number - 1]
    assert answer.mode in {"generated", "checked", "extractive"}


def test_structured_answer_is_valid_json_with_checked_sources(local_backend):
    from ragkit.generate import structured_answer

    answer = structured_answer("What does a reranker do?", HITS, local_backend)
    data = answer.to_dict()
    assert isinstance(answer, Answer) and data["mode"] == answer.mode in {"generated", "checked", "extractive"}
    assert data["answer"] and set(data["sources"]) <= {1, 2}
    assert all(isinstance(n, int) for n in data["model_sources"])
    assert structured_answer("anything?", [], local_backend).mode == "not_in_context"


def test_a_sentence_that_flips_its_source_is_dropped_though_every_word_is_sourced():
    hits = [hit(1, "A reranker reads the question with each candidate and reorders them.")]
    text, cited, mode, notes = check_answer("What does a reranker do?",
                                            "A reranker does not reorder the candidates [1]. It reorders them [1].", hits)
    assert text == "It reorders them [1]." and mode == "checked"
    assert any("says the opposite of source [1]" in n for n in notes), notes
    # a negation the source has too is no contradiction
    assert contradicts("Embeddings cannot see word order.", "Embeddings cannot see word order, mostly.") is None
