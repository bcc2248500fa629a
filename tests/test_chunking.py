"""Chunking: exact offsets, sizes in model word pieces, no text lost, clear errors."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ragkit.documents import load_documents
from ragkit.types import Chunk, Document
from ragkit.chunking import (
    METHODS,
    by_heading,
    by_paragraph,
    by_sentence,
    by_tokens,
    chunk_documents,
    chunks_frame,
)
from ragkit.embedder import count_tokens, load_tokenizer

TOKENIZER = load_tokenizer()
TOKENIZER.no_truncation()


def token_starts(text: str) -> list[int]:
    """Char offset where each model word piece of `text` starts (independent of ragkit.chunking)."""
    return [s for s, _ in TOKENIZER.encode(text, add_special_tokens=False).offsets]


def pieces_in(chunk: Chunk, starts: list[int]) -> list[int]:
    """Indices of the document's word pieces that start inside the chunk."""
    return [i for i, s in enumerate(starts) if chunk.start <= s < chunk.end]


def check_chunks(doc: Document, chunks: list[Chunk]) -> None:
    """Invariants every chunker keeps: exact offsets, stripped text, ids, positions, token counts."""
    starts = token_starts(doc.text)
    for i, c in enumerate(chunks):
        assert c.text == doc.text[c.start : c.end]
        assert c.text and c.text == c.text.strip()
        assert (c.position, c.id, c.doc_id) == (i, f"{doc.id}#{i}", doc.id)
        assert (c.title, c.source) == (doc.title, doc.source)
        assert c.n_tokens == len(pieces_in(c, starts))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def uncovered(doc: Document, chunks: list[Chunk]) -> list[int]:
    """Offsets of non-whitespace characters that lie in no chunk."""
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    return [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]


MARKDOWN = """Preamble line.

# Install

Use pip.

```python
# a comment, not a heading
```

## From source

Clone the repository.

# Usage
Call it.
"""


# ---------------------------------------------------------------------------------------------------
# Hand cases, one method at a time.


def test_by_paragraph_one_chunk_per_paragraph_with_exact_offsets():
    text = "  First paragraph here.\n\nSecond one,\nover two lines.  \n \n\n\tThird.\n"
    doc = Document("notes.txt", text, title="Notes", source="data/notes.txt")
    chunks = by_paragraph(doc)
    assert [c.text for c in chunks] == ["First paragraph here.", "Second one,\nover two lines.", "Third."]
    assert [(c.start, c.end) for c in chunks] == [(2, 23), (25, 52), (59, 65)]
    assert [c.id for c in chunks] == ["notes.txt#0", "notes.txt#1", "notes.txt#2"]
    assert [c.n_tokens for c in chunks] == count_tokens([c.text for c in chunks])
    check_chunks(doc, chunks)


def test_long_paragraph_is_split_by_sentence_and_never_exceeds_max_tokens():
    sentences = ["The cat sat on the mat.", "It was warm there!", "Why move at all?", "Then it slept."]
    doc = Document("p", " ".join(sentences) + "\n\nShort.")
    chunks = by_paragraph(doc, max_tokens=8)
    assert [c.text for c in chunks] == sentences + ["Short."]
    assert max(c.n_tokens for c in chunks) <= 8
    check_chunks(doc, chunks)
    # Sentences are packed back together up to the limit, but never across paragraphs.
    packed = by_paragraph(doc, max_tokens=12)
    assert [c.text for c in packed] == [
        "The cat sat on the mat. It was warm there!",
        "Why move at all? Then it slept.",
        "Short.",
    ]


def test_overlong_sentence_is_cut_into_word_aligned_windows():
    doc = Document("w", "tokenization " * 30)  # 2 word pieces per word, no sentence boundary
    for chunker in (by_paragraph, by_sentence, by_heading):
        chunks = chunker(doc, max_tokens=9)
        check_chunks(doc, chunks)
        assert [c.n_tokens for c in chunks] == [8] * 7 + [4]  # 4 whole words: no word cut in half
        assert count_tokens([c.text for c in chunks]) == [c.n_tokens for c in chunks]
        assert not uncovered(doc, chunks)


def test_by_tokens_windows_overlap_by_exactly_the_requested_tokens():
    doc = Document("t", " ".join(f"word{i}" for i in range(100)))  # "word12" is 3 pieces
    starts = token_starts(doc.text)
    chunks = by_tokens(doc, size=20, overlap=5)
    check_chunks(doc, chunks)
    spans = [pieces_in(c, starts) for c in chunks]
    assert all(len(s) == 20 for s in spans[:-1]) and 0 < len(spans[-1]) <= 20
    assert all(len(set(a) & set(b)) == 5 for a, b in zip(spans, spans[1:]))
    assert spans[0][0] == 0 and spans[-1][-1] == len(starts) - 1
    assert [c.text for c in by_tokens(Document("s", "one two three four five"), size=3, overlap=1)] == [
        "one two three",
        "three four five",
    ]


def test_by_tokens_without_overlap_tiles_the_text():
    doc = Document("t", "a b c d e f g")
    assert [c.text for c in by_tokens(doc, size=3, overlap=0)] == ["a b c", "d e f", "g"]


@pytest.mark.parametrize("overlap", [10, 12, -1])
def test_by_tokens_rejects_overlap_not_below_size(overlap):
    with pytest.raises(ValueError, match=rf"overlap \({overlap}\).*size is 10"):
        by_tokens(Document("t", "text"), size=10, overlap=overlap)


def test_by_sentence_handles_abbreviations_initials_numbers_and_cjk():
    text = (
        "Dr. Lee met J. R. Smith, e.g. at noon. Pi is about 3.14 here. Wait... what? Yes!\n"
        "No full stop at the end of this line\n\n"
        "中文句子。第二句！"
    )
    doc = Document("s", text)
    chunks = by_sentence(doc, max_tokens=1)  # every sentence alone (the long ones cut into words)
    check_chunks(doc, chunks)
    texts = [c.text for c in by_sentence(doc, max_tokens=256)]
    assert texts == [text]  # everything fits: one chunk
    # Sentences of 17, 8 + 6 + 2, 9 + 5 and 4 word pieces, packed greedily up to 17:
    assert [c.text for c in by_sentence(doc, max_tokens=17)] == [
        "Dr. Lee met J. R. Smith, e.g. at noon.",
        "Pi is about 3.14 here. Wait... what? Yes!",
        "No full stop at the end of this line\n\n中文句子。",
        "第二句！",
    ]


def test_by_heading_labels_markdown_sections_with_their_path():
    doc = Document("guide.md", MARKDOWN, title="Guide")
    chunks = by_heading(doc)
    check_chunks(doc, chunks)
    assert [(c.section, c.text.splitlines()[0]) for c in chunks] == [
        ("", "Preamble line."),
        ("Install", "# Install"),
        ("Install > From source", "## From source"),
        ("Usage", "# Usage"),
    ]
    assert "# a comment, not a heading" in chunks[1].text  # fenced code is not a heading
    assert chunks[3].text == "# Usage\nCall it."


def test_by_heading_reads_rest_and_setext_underlines():
    rst = "=======\n Guide\n=======\n\nIntro.\n\nInstall\n-------\nUse pip.\n\nWindows\n~~~~~~~\nUse WSL.\n"
    chunks = by_heading(Document("g.rst", rst))
    assert [c.section for c in chunks] == ["Guide", "Guide > Install", "Guide > Install > Windows"]
    assert chunks[0].text.startswith("=======\n Guide")
    setext = "Title\n=====\nIntro.\n\nPart\n----\nBody.\n"
    assert [c.section for c in by_heading(Document("s.md", setext))] == ["Title", "Title > Part"]


def test_long_section_is_split_and_every_part_keeps_its_section():
    body = "\n\n".join(f"Paragraph {i} says something short." for i in range(10))
    doc = Document("d", f"# Top\n\n## Long part\n\n{body}\n\n## Next\nEnd.")
    chunks = by_heading(doc, max_tokens=16)
    check_chunks(doc, chunks)
    assert max(c.n_tokens for c in chunks) <= 16
    long_part = [c for c in chunks if c.section == "Top > Long part"]
    assert len(long_part) > 3 and long_part[0].text.startswith("## Long part")
    assert chunks[-1].section == "Top > Next"


def test_chunking_is_deterministic():
    doc = Document("guide.md", MARKDOWN)
    for name in METHODS:
        assert chunk_documents([doc], name) == chunk_documents([doc], name)


def test_unusual_unicode_keeps_offsets_exact():
    text = (
        "Emoji 👋🏽 and flags 🇳🇱 here.\n\nשלום עולם, RTL text.\n\nzero\u200bwidth\u200d joiner, "
        "e\u0301 accents.\n\n日本語の文には空白がありません。次の文。\n\n한국어 문장입니다. \ufeffBOM."
    )
    doc = Document("u", text)
    for chunker in (by_paragraph, by_sentence, by_heading):
        for max_tokens in (1, 3, 256):
            chunks = chunker(doc, max_tokens=max_tokens)
            check_chunks(doc, chunks)
            assert not uncovered(doc, chunks)
    for size, overlap in [(1, 0), (4, 2), (256, 32)]:
        chunks = by_tokens(doc, size=size, overlap=overlap)
        check_chunks(doc, chunks)
        assert not uncovered(doc, chunks)


def test_a_character_that_is_several_word_pieces_is_never_cut():
    # A Hangul syllable is several word pieces on one character: a chunk may exceed the limit then.
    doc = Document("k", "각각각")
    assert len(token_starts(doc.text)) > 3
    chunks = by_tokens(doc, size=1, overlap=0)
    assert [c.text for c in chunks] == ["각", "각", "각"]
    check_chunks(doc, chunks)


# ---------------------------------------------------------------------------------------------------
# chunk_documents: dispatch and errors.


def test_chunk_documents_dispatches_by_name_and_passes_options():
    docs = [Document("a", "Alpha one. Alpha two."), Document("b", MARKDOWN)]
    chunks = chunk_documents(docs, method="sentence", max_tokens=3)
    assert chunks == by_sentence(docs[0], max_tokens=3) + by_sentence(docs[1], max_tokens=3)
    assert chunk_documents(docs, "tokens", size=8, overlap=2)[0] == by_tokens(docs[0], 8, 2)[0]
    assert [c.section for c in chunk_documents(docs[1:], "heading")][1] == "Install"


def test_chunk_documents_errors_say_what_to_do():
    doc = Document("a", "text")
    with pytest.raises(ValueError, match=r"no documents"):
        chunk_documents([])
    with pytest.raises(ValueError, match=r"unknown chunking method 'words'.*'heading', 'paragraph'"):
        chunk_documents([doc], method="words")
    with pytest.raises(TypeError, match=r"docs\[1\] is a str, not a Document"):
        chunk_documents([doc, "raw text"])
    with pytest.raises(TypeError, match=r"docs\[0\] is a dict"):
        chunk_documents([{"id": "x", "text": "y"}])
    with pytest.raises(TypeError, match=r"pass \[doc\]"):
        chunk_documents(doc)
    with pytest.raises(TypeError, match=r"takes options \['max_tokens', 'tokenizer'\], not \['size'\]"):
        chunk_documents([doc], "paragraph", size=10)
    with pytest.raises(ValueError, match=r"two documents have id 'a'"):
        chunk_documents([doc, Document("a", "other")])
    with pytest.raises(ValueError, match=r"max_tokens must be a positive"):
        by_paragraph(doc, max_tokens=0)
    with pytest.raises(TypeError, match=r"expected a Document, got str"):
        by_tokens("raw text")
    with pytest.raises(TypeError, match=r"Document.text must be str, got bytes; decode it"):
        Document("b", b"bytes")
    with pytest.raises(ValueError, match=r"no_truncation"):
        by_paragraph(doc, tokenizer=load_tokenizer())


def test_whitespace_only_document_is_skipped_with_a_warning():
    docs = [Document("blank", " \n\t\n"), Document("real", "Real text.")]
    with pytest.warns(UserWarning, match=r"'blank' has no text"):
        chunks = chunk_documents(docs)
    assert [c.id for c in chunks] == ["real#0"]
    assert by_paragraph(docs[0]) == []


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_one_megabyte_document_is_chunked_completely(method):
    paragraph = (
        "Retrieval finds passages; generation writes the answer. e.g. this one has 12.5 words! "
        "Ünïcödé, 中文, 👋🏽 and a verylongwordwithoutanyspacesatallinsideit.\n"
    )
    text = "".join(f"# Part {i}\n\n{paragraph * (i % 7 + 1)}\n" for i in range(2900))
    assert len(text) > 1_000_000
    doc = Document("big", text)
    chunks = METHODS[method](doc)
    assert not uncovered(doc, chunks)
    assert all(c.text == text[c.start : c.end] and c.n_tokens <= 256 for c in chunks)


# ---------------------------------------------------------------------------------------------------
# Files and tables.


def test_load_documents_reads_a_folder_in_order_and_warns_on_bad_bytes(tmp_path):
    (tmp_path / "guide").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "guide" / "install.md").write_text("Intro\n\n# Installing\n\nUse pip.\n", encoding="utf-8")
    (tmp_path / "b.rst").write_text("Usage\n=====\n\nCall it.\n", encoding="utf-8")
    (tmp_path / "a.txt").write_bytes(b"Caf\xe9 notes\n\nLatin-1, not UTF-8.\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden" / "secret.md").write_text("# no", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"a\.txt is not valid UTF-8"):
        docs = load_documents(tmp_path)
    assert [d.id for d in docs] == ["a.txt", "b.rst", "guide/install.md"]
    assert [d.title for d in docs] == ["Caf\ufffd notes", "Usage", "Installing"]
    assert docs[2].source == str(tmp_path / "guide" / "install.md")
    assert chunk_documents(docs, "heading")[-1].section == "Installing"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = load_documents([tmp_path / "b.rst"])
    assert single[0].id == "b.rst" and single[0].text == "Usage\n=====\n\nCall it.\n"


def test_load_documents_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.md does not exist"):
        load_documents(tmp_path / "missing.md")
    (tmp_path / "page.docx").write_text("<p>hi</p>")
    with pytest.raises(ValueError, match=r"not '\.docx'"):
        load_documents(tmp_path / "page.docx")
    with pytest.raises(ValueError, match=r"no \.txt/\.md/.*/\.pdf files"):
        load_documents(tmp_path)


def test_chunks_frame_has_one_row_per_chunk():
    chunks = by_heading(Document("guide.md", MARKDOWN, title="Guide"))
    frame = chunks_frame(chunks)
    assert list(frame["id"]) == [c.id for c in chunks]
    assert {"text", "section", "n_tokens", "start", "end", "source"} <= set(frame.columns)
    assert len(chunks_frame([])) == 0
    with pytest.raises(TypeError, match=r"chunks\[0\] is a str"):
        chunks_frame(["x"])


# ---------------------------------------------------------------------------------------------------
# Properties, on arbitrary text and on text built from awkward fragments.

FRAGMENTS = [
    "word", "Another", "antidisestablishmentarianism", " ", " ", "\n", "\n\n", "\t", ". ", "! ", "? ",
    "e.g. ", "Dr. ", "J. ", "3.14", "...", "# Head\n", "## Sub\n", "Title\n=====\n", "---\n", "```\n",
    "中文没有空格", "。", "한국어", "👋🏽", "שלום", "\u200b", "\u200d", "e\u0301", "\x0b", "\u2028", "\ufeff",
    "\r\n", "=====\n", "~~~\n", "  indented\n", "(e.g. ", "”", "…",
]
texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(text=texts, method=st.sampled_from(sorted(METHODS)), limit=st.integers(1, 24))
def test_every_character_lands_in_a_chunk_with_exact_offsets(text, method, limit):
    assume(text.strip())
    doc = Document("doc", text)
    options = {"size": limit, "overlap": limit // 3} if method == "tokens" else {"max_tokens": limit}
    chunks = chunk_documents([doc], method, **options)
    check_chunks(doc, chunks)
    assert not uncovered(doc, chunks)
    starts = token_starts(text)
    for c in chunks:  # over the limit only when one character is several word pieces
        assert c.n_tokens <= limit or len({starts[i] for i in pieces_in(c, starts)}) == 1


@PROPERTY
@given(text=texts, size=st.integers(1, 20), data=st.data())
def test_token_windows_share_exactly_overlap_tokens(text, size, data):
    starts = token_starts(text)
    assume(all(a < b for a, b in zip(starts, starts[1:])))  # no character split into several pieces
    overlap = data.draw(st.integers(0, size - 1))
    doc = Document("doc", text)
    spans = [pieces_in(c, starts) for c in by_tokens(doc, size=size, overlap=overlap)]
    assert all(len(s) == size for s in spans[:-1])
    for a, b in zip(spans, spans[1:]):
        assert len(set(a) & set(b)) == overlap and b[0] == a[-1] + 1 - overlap
    assert sorted({i for s in spans for i in s}) == list(range(len(starts)))  # every piece in a window
