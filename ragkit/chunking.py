"""Chunking: cut documents into passages small enough to embed, retrieve and cite.

A chunk always keeps exact character offsets into its document (`doc.text[c.start:c.end] == c.text`),
so an answer can quote and highlight its source. Sizes are counted in the embedding model's word
pieces (the tokenizer of `ragkit.embedder`), because that model reads at most 256 of them: a longer
chunk would be silently cut off when embedded.

Four ways to cut, from naive to structure-aware:

- `by_tokens`: fixed windows of `size` word pieces, consecutive windows sharing `overlap` of them.
- `by_sentence`: whole sentences, packed together up to `max_tokens`.
- `by_paragraph`: one chunk per paragraph (text between blank lines).
- `by_heading`: one chunk per markdown / reST section, labelled with its heading path.

The last three never drop text: a piece over `max_tokens` is split further, by paragraph, then by
sentence, then into token windows that end at word boundaries where possible.

>>> doc = Document("intro", "RAG retrieves passages.\\n\\nThen it writes an answer from them.")
>>> [(c.id, c.text) for c in by_paragraph(doc)]
[('intro#0', 'RAG retrieves passages.'), ('intro#1', 'Then it writes an answer from them.')]
"""
from __future__ import annotations

import inspect
import re
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from .embedder import counting_tokenizer
from .headings import sections as _sections
from .types import Chunk, Document

__all__ = [
    "by_paragraph",
    "by_tokens",
    "by_sentence",
    "by_heading",
    "chunk_documents",
    "chunks_frame",
    "METHODS",
]

# The embedding model reads 256 word pieces, two of which are [CLS] and [SEP], and ragkit puts the
# chunk's title and section above its text when embedding it: 200 leaves room for both.
DEFAULT_MAX_TOKENS = 200


# --------------------------------------------------------------------------------------------------
# Word pieces: tokenize each document once, then count any span with two binary searches.


@dataclass(frozen=True)
class _Pieces:
    """Where each word piece of one document starts, and where a token window may be cut."""

    starts: np.ndarray  # int64 char offset of each piece, non-decreasing
    cuts: np.ndarray  # piece indices a window may start at: first piece on its character
    words: np.ndarray  # the cuts that also begin a word (not a '##' continuation piece)

    def count(self, start, end):
        """Return how many pieces start inside [start, end) (scalars or arrays)."""
        return np.searchsorted(self.starts, end) - np.searchsorted(self.starts, start)


def _pieces(text: str, tokenizer=None) -> _Pieces:
    tok = tokenizer or counting_tokenizer()
    if tok.truncation is not None:
        raise ValueError(
            f"the tokenizer truncates at {tok.truncation['max_length']} tokens, so long documents would "
            "lose text; call tokenizer.no_truncation() before chunking with it"
        )
    starts, continued = [], []
    for offset, block in _blocks(text):
        enc = tok.encode(block, add_special_tokens=False)
        n = len(enc.ids)
        starts.append(np.asarray(enc.offsets, dtype=np.int64).reshape(n, 2)[:, 0] + offset)
        continued.append(np.fromiter((t.startswith("##") for t in enc.tokens), dtype=bool, count=n))
    starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    n = len(starts)
    # Some characters (Hangul syllables, a few Indic ones) become several pieces on one character;
    # a window boundary can only fall before the first of them.
    cut = np.ones(n, dtype=bool)
    cut[1:] = starts[1:] > starts[:-1]
    word = cut & ~(np.concatenate(continued) if continued else np.zeros(0, dtype=bool))
    return _Pieces(starts, np.flatnonzero(cut), np.flatnonzero(word))


# Characters tokenized at a time: the tokenizer keeps a few hundred bytes per piece while it works,
# so a 20 MB one-line file read whole took 2.7 GB; in blocks, memory stays bounded.
_BLOCK = 1 << 16


def _blocks(text: str, size: int = _BLOCK):
    """Yield (offset, text[offset:end]) in blocks of about `size` characters, each cut after whitespace
    (the tokenizer splits words at whitespace, so the pieces are the same as for the whole text).

    >>> [b for _, b in _blocks("one two three", size=6)]
    ['one ', 'two ', 'three']
    """
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            end = space + 1 if space > start else end
        yield start, text[start:end]
        start = end


_NON_SPACE = re.compile(r"\S")


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Move start/end inwards past whitespace; (end, end) if only whitespace is left."""
    m = _NON_SPACE.search(text, start, end)
    if m is None:
        return end, end
    start = m.start()
    while text[end - 1].isspace():
        end -= 1
    return start, end


def _windows(
    text: str, pieces: _Pieces, start: int, end: int, size: int, overlap: int = 0, snap: bool = False
) -> list[tuple[int, int]]:
    """Cut [start, end) into windows of at most `size` pieces, consecutive ones sharing `overlap`.

    With `snap`, a window ends before a word start when one is in reach, so words stay whole.
    """
    i0, i1 = (int(i) for i in np.searchsorted(pieces.starts, [start, end]))
    a, spans = i0, []
    while True:
        b = a + size
        if b < i1:  # not the last window: end it where a cut is allowed, as late as possible
            b = (
                (snap and _cut_before(pieces.words, a, b))
                or _cut_before(pieces.cuts, a, b)
                or _cut_after(pieces.cuts, b, i1)  # one character is more than `size` pieces
            )
        left = start if a == i0 else int(pieces.starts[a])
        if b >= i1:  # the last window runs to the end of the span
            spans.append(_strip(text, left, end))
            break
        spans.append(_strip(text, left, int(pieces.starts[b])))
        a = _cut_after(pieces.cuts, max(b - overlap, a + 1) - 1, b)  # first cut at or after b - overlap
    return [s for s in spans if s[0] < s[1]]


def _cut_before(cuts: np.ndarray, a: int, b: int) -> int | None:
    """Return the largest cut in (a, b], or None."""
    k = int(np.searchsorted(cuts, b, side="right")) - 1
    return int(cuts[k]) if k >= 0 and cuts[k] > a else None


def _cut_after(cuts: np.ndarray, b: int, limit: int) -> int:
    """Return the smallest cut above b, capped at `limit`."""
    k = int(np.searchsorted(cuts, b, side="right"))
    return min(int(cuts[k]), limit) if k < len(cuts) else limit


# --------------------------------------------------------------------------------------------------
# Splitters: each returns stripped, non-empty spans that together hold every non-space character.

_BLANK_LINE = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(
    r"""[.!?…]+["'”’)\]]*(?=\s)     # . ! ? … (and closing quotes/brackets) before a space
      | [。！？]+[」』”’）]*          # CJK full stops need no space after them
      | \n\s*\n                    # a blank line ends a sentence too (headings, list items)
    """,
    re.VERBOSE,
)
# Words that end in a full stop but rarely end a sentence (compared lowercased, with the stop).
ABBREVIATIONS = frozenset(
    "e.g. i.e. cf. vs. viz. al. approx. ca. dr. mr. mrs. ms. prof. sr. jr. st. fig. figs. eq. "
    "vol. pp. ch. sec.".split()
)


def _split_paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return _split_at(text, start, end, (m.end() for m in _BLANK_LINE.finditer(text, start, end)))


def _split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    ends = _SENTENCE_END.finditer(text, start, end)
    return _split_at(text, start, end, (m.end() for m in ends if _ends_sentence(text, m)))


def _split_at(text: str, start: int, end: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    spans, pos = [], start
    for cut in cuts:
        spans.append(_strip(text, pos, cut))
        pos = cut
    spans.append(_strip(text, pos, end))
    return [s for s in spans if s[0] < s[1]]


def _ends_sentence(text: str, m: re.Match) -> bool:
    stop = m.group()
    if stop[0] not in ".…":
        return True  # ! ? 。 and blank lines always end a sentence
    nxt = _NON_SPACE.search(text, m.end(), m.endpos)
    if nxt is not None and nxt.group().islower():
        return False  # "approx. five", "wait... what": a new sentence starts with a capital
    if stop.startswith(("..", "…")) or m.start() == 0 or text[m.start() - 1].isspace():
        return True
    word = text[max(0, m.start() - 20) : m.start()].split()[-1].lstrip("([{\"'“‘").lower()
    if word + "." in ABBREVIATIONS:
        return False
    return not (len(word) == 1 and word.isalpha())  # an initial, as in "J. R. R. Tolkien"


def _fit(text, pieces, start, end, max_tokens, splitters) -> list[tuple[int, int]]:
    """Return spans of at most `max_tokens` covering [start, end): split with each splitter in turn,
    then into word-aligned token windows, packing neighbouring small pieces back together."""
    start, end = _strip(text, start, end)
    if start >= end:
        return []
    if pieces.count(start, end) <= max_tokens:
        return [(start, end)]
    if not splitters:
        return _windows(text, pieces, start, end, max_tokens, snap=True)
    parts = []
    for s, e in splitters[0](text, start, end):
        parts += _fit(text, pieces, s, e, max_tokens, splitters[1:])
    return _pack(parts, pieces, max_tokens)


def _pack(spans: list[tuple[int, int]], pieces: _Pieces, max_tokens: int) -> list[tuple[int, int]]:
    """Greedily merge consecutive spans while the merged span stays within `max_tokens`."""
    if len(spans) < 2:
        return spans
    arr = np.asarray(spans)
    first = np.searchsorted(pieces.starts, arr[:, 0]).tolist()  # index of the first piece in each span
    after = np.searchsorted(pieces.starts, arr[:, 1]).tolist()  # one past its last piece
    out, g = [], 0
    for j in range(1, len(spans)):
        if after[j] - first[g] > max_tokens:
            out.append((spans[g][0], spans[j - 1][1]))
            g = j
    out.append((spans[g][0], spans[-1][1]))
    return out


# --------------------------------------------------------------------------------------------------
# Public chunkers.


def _make_chunks(doc: Document, spans, pieces: _Pieces, sections=None) -> list[Chunk]:
    if not spans:
        return []
    arr = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    counts = pieces.count(arr[:, 0], arr[:, 1]).tolist()
    sections = sections or [""] * len(spans)
    return [
        Chunk(
            id=f"{doc.id}#{i}",
            doc_id=doc.id,
            title=doc.title,
            text=doc.text[s:e],
            position=i,
            start=s,
            end=e,
            section=section,
            source=doc.source,
            n_tokens=n,
            date=doc.date,
        )
        for i, ((s, e), section, n) in enumerate(zip(spans, sections, counts))
    ]


def _check(doc, **sizes) -> None:
    if not isinstance(doc, Document):
        raise TypeError(
            f"expected a Document, got {type(doc).__name__}; wrap text as Document(id='name', text=text)"
        )
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive whole number of tokens, got {value!r}")


def by_paragraph(doc: Document, max_tokens: int = DEFAULT_MAX_TOKENS, *, tokenizer=None) -> list[Chunk]:
    """Return one chunk per paragraph (text between blank lines); long paragraphs are split further.

    A paragraph over `max_tokens` is cut into sentences packed up to `max_tokens`, and a sentence
    that is still too long into word-aligned token windows. No text is ever dropped.

    >>> doc = Document("d", "First paragraph.\\n\\nSecond one, a bit longer.")
    >>> [(c.text, c.n_tokens) for c in by_paragraph(doc)]
    [('First paragraph.', 3), ('Second one, a bit longer.', 7)]
    """
    _check(doc, max_tokens=max_tokens)
    text, pieces = doc.text, _pieces(doc.text, tokenizer)
    spans = []
    for s, e in _split_paragraphs(text, 0, len(text)):
        spans += _fit(text, pieces, s, e, max_tokens, [_split_sentences])
    return _make_chunks(doc, spans, pieces)


def by_tokens(doc: Document, size: int = DEFAULT_MAX_TOKENS, overlap: int = 20, *, tokenizer=None) -> list[Chunk]:
    """Return fixed windows of `size` word pieces; each window repeats the last `overlap` of the one before.

    Windows ignore sentences and words (a word may be split across two windows); the overlap gives
    each window some of the context it was cut from.

    >>> doc = Document("d", "one two three four five six seven")
    >>> [c.text for c in by_tokens(doc, size=4, overlap=1)]
    ['one two three four', 'four five six seven']
    """
    _check(doc, size=size)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap < size:
        raise ValueError(
            f"overlap ({overlap!r}) must be a whole number from 0 to size - 1 (size is {size}); "
            f"try overlap={size // 8}"
        )
    text, pieces = doc.text, _pieces(doc.text, tokenizer)
    return _make_chunks(doc, _windows(text, pieces, 0, len(text), size, overlap), pieces)


def by_sentence(doc: Document, max_tokens: int = DEFAULT_MAX_TOKENS, *, tokenizer=None) -> list[Chunk]:
    """Return runs of whole sentences, each packed up to `max_tokens` word pieces.

    Sentences end at . ! ? … (before a space), at 。！？ and at blank lines; common abbreviations
    ("e.g.", "Dr.") and initials do not end one, nor does a full stop followed by a lowercase word.
    A single sentence over `max_tokens` is split into word-aligned token windows.

    >>> doc = Document("d", "Dr. Lee wrote it, e.g. in May. It works! Does it scale?")
    >>> [c.text for c in by_sentence(doc, max_tokens=16)]
    ['Dr. Lee wrote it, e.g. in May. It works!', 'Does it scale?']
    """
    _check(doc, max_tokens=max_tokens)
    text, pieces = doc.text, _pieces(doc.text, tokenizer)
    return _make_chunks(doc, _fit(text, pieces, 0, len(text), max_tokens, [_split_sentences]), pieces)


def by_heading(doc: Document, max_tokens: int = DEFAULT_MAX_TOKENS, *, tokenizer=None) -> list[Chunk]:
    """Return one chunk per section, with `section` set to its heading path ("Install > From source").

    Headings are markdown ('# Title', or a line underlined with === / ---; fenced code is skipped) or
    reST (a line underlined, optionally also overlined, with a repeated punctuation character; levels
    follow the order the styles first appear). A chunk starts with its heading line. A section over
    `max_tokens` is split by paragraph, then sentence, then token windows; every part keeps the path.

    >>> doc = Document("d", "# Install\\nUse pip.\\n\\n## From source\\nClone it.")
    >>> [(c.section, c.text) for c in by_heading(doc)]
    [('Install', '# Install\\nUse pip.'), ('Install > From source', '## From source\\nClone it.')]
    """
    _check(doc, max_tokens=max_tokens)
    text, pieces = doc.text, _pieces(doc.text, tokenizer)
    spans, paths = [], []
    for start, end, path in _sections(text):
        parts = _fit(text, pieces, start, end, max_tokens, [_split_paragraphs, _split_sentences])
        spans += parts
        paths += [path] * len(parts)
    return _make_chunks(doc, spans, pieces, paths)


METHODS: dict[str, Callable[..., list[Chunk]]] = {
    "paragraph": by_paragraph,
    "tokens": by_tokens,
    "sentence": by_sentence,
    "heading": by_heading,
}


def chunk_documents(docs: Sequence[Document], method: str = "paragraph", **options) -> list[Chunk]:
    """Return the chunks of every document, in order, cut with `METHODS[method]` and its options.

    Documents with only whitespace are skipped with a warning.

    >>> docs = [Document("a", "Alpha."), Document("b", "Beta.\\n\\nGamma.")]
    >>> [c.id for c in chunk_documents(docs, "paragraph", max_tokens=64)]
    ['a#0', 'b#0', 'b#1']
    """
    if method not in METHODS:
        raise ValueError(f"unknown chunking method {method!r}; choose one of {sorted(METHODS)}")
    chunker = METHODS[method]
    allowed = [p for p in inspect.signature(chunker).parameters if p != "doc"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"method {method!r} takes options {allowed}, not {unknown}")
    if isinstance(docs, (Document, str, bytes)):
        raise TypeError(
            f"chunk_documents expects a list of Documents, got one {type(docs).__name__}; pass [doc]"
        )
    docs = list(docs)
    if not docs:
        raise ValueError("no documents to chunk; load some first, e.g. load_documents('data/my_docs')")
    seen: set[str] = set()
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(
                f"docs[{i}] is a {type(doc).__name__}, not a Document; "
                "wrap text as Document(id='name', text=text)"
            )
        if doc.id in seen:
            raise ValueError(f"two documents have id {doc.id!r}; chunk ids would collide, so make ids unique")
        seen.add(doc.id)
    chunks: list[Chunk] = []
    for doc in docs:
        if not doc.text.strip():
            warnings.warn(f"document {doc.id!r} has no text (only whitespace); skipped", stacklevel=2)
            continue
        chunks += _by_page(doc, chunker, options) if doc.pages else chunker(doc, **options)
    return chunks


def _by_page(doc: Document, chunker, options: dict) -> list[Chunk]:
    """Return the chunks of a paged document (a PDF) cut page by page, so each chunk lies on one page
    (`Chunk.page`), numbered and offset within the whole document."""
    bounds = [*doc.pages, len(doc.text)]
    chunks: list[Chunk] = []
    for page, (a, b) in enumerate(zip(bounds, bounds[1:]), start=1):
        if not doc.text[a:b].strip():
            continue
        for c in chunker(replace(doc, text=doc.text[a:b], pages=()), **options):
            n = len(chunks)
            chunks.append(replace(c, id=f"{doc.id}#{n}", position=n, start=c.start + a, end=c.end + a, page=page))
    return chunks


def chunks_frame(chunks: Sequence[Chunk]):
    """Return a pandas DataFrame with one row per chunk (columns are the Chunk fields).

    >>> chunks_frame(by_paragraph(Document("d", "Hi.\\n\\nBye.")))[["id", "text", "n_tokens"]].values.tolist()
    [['d#0', 'Hi.', 2], ['d#1', 'Bye.', 2]]
    """
    import pandas as pd

    chunks = list(chunks)
    for i, c in enumerate(chunks):
        if not isinstance(c, Chunk):
            raise TypeError(f"chunks[{i}] is a {type(c).__name__}, not a Chunk")
    order = ["id", "doc_id", "position", "section", "n_tokens", "start", "end", "text", "title", "source"]
    return pd.DataFrame({name: [getattr(c, name) for c in chunks] for name in order}, columns=order)
