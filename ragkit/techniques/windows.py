"""Small-to-big retrieval: search small windows of sentences, hand their whole passage on.

A short text embeds one idea sharply; a long one is what a reranker and a reader need to judge and
answer. Small-to-big keeps both: each chunk (the *parent*) is cut into windows of a few consecutive
sentences (the *children*), the children are embedded and searched, and each parent is ranked by its
best child. The reranker and the prompt then read the parent.

`to_parents` turns a search's child hits into parent hits, each parent at its best child's score
(`eval.techniques` does the same over whole score matrices, every passage at its best window).

>>> from ragkit.types import Chunk
>>> parent = Chunk("d#0", "d", "Tea", "Tea is a leaf. It grows on shrubs. It is picked by hand.", 0, 0, 56)
>>> children, of = sentence_windows([parent], size=2)
>>> [c.text for c in children], of.tolist()
(['Tea is a leaf. It grows on shrubs.', 'It is picked by hand.'], [0, 0])
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..checks import split_sentences
from ..types import Chunk, Hit

__all__ = ["WINDOW", "sentence_windows", "to_parents"]

WINDOW = 3  # sentences per child (not tuned: fixed before measuring, a common choice)


def sentence_windows(parents: Sequence[Chunk], size: int = WINDOW) -> tuple[list[Chunk], np.ndarray]:
    """Return (children, parent row of each child): each parent's prose cut into windows of `size` sentences.

    A child keeps its parent's document, title, section, source and page, so it is embedded under the
    same header (`index.embedding_text`); its id is the parent's plus "~n". A parent with no sentences
    of prose (a heading alone) gets one child: its own text. A child's `start`/`end` are its parent's
    span (its text is the window's sentences, whitespace collapsed): cite the parent, not the child.
    """
    if size < 1:
        raise ValueError(f"a window holds at least 1 sentence, got size={size}")
    children: list[Chunk] = []
    of: list[int] = []
    for row, parent in enumerate(parents):
        sentences = split_sentences(parent.prose()) or [parent.text]
        for n, start in enumerate(range(0, len(sentences), size)):
            text = " ".join(sentences[start : start + size])
            children.append(replace(parent, id=f"{parent.id}~{n}", text=text, n_tokens=0))
            of.append(row)
    return children, np.array(of, dtype=np.int64)


def to_parents(hits: Sequence[Hit], parents: dict[str, Chunk]) -> list[Hit]:
    """Return the parents of child hits, each once at its best child's score, ranked 1, 2, ...

    `parents` maps a child's id to its parent chunk (e.g. `dict(zip((c.id for c in children),
    (chunks[i] for i in of)))`).

    >>> hits = to_parents(index.search(question_vector, k=30), parent_of)   # doctest: +SKIP
    """
    out: dict[str, Hit] = {}
    for hit in hits:
        parent = parents[hit.chunk.id]
        if parent.id not in out:
            out[parent.id] = Hit(parent, hit.score, len(out) + 1)
    return list(out.values())
