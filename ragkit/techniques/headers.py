"""Contextual chunk headers: what is embedded for a chunk, its title and section path above it, or it alone.

A chunk cut from the middle of a document often never names what it is about ("It returns the
position..."). Prepending the document's title and the chunk's section path ("Built-in Types >
Sequence Types > Lists") puts that back, for the embedding model and BM25 alike. ragkit does it by
default (`index.embedding_text`); `chunk_alone` is the text without it, to measure what it is worth.
An LLM-written sentence of context per chunk goes further, at a one-off cost (`techniques.context`).

>>> from ragkit.types import Chunk
>>> chunk = Chunk("list#3", "list", "Built-in Types", "It returns the position.", 3, 0, 24, section="Lists > index")
>>> with_header(chunk)
'Built-in Types > Lists > index\\nIt returns the position.'
>>> chunk_alone(chunk)
'It returns the position.'
"""
from __future__ import annotations

from ..index import embedding_text
from ..types import Chunk

__all__ = ["chunk_alone", "with_header"]


def with_header(chunk: Chunk) -> str:
    """Return the chunk's title and section path, then its prose: ragkit's default (`index.embedding_text`)."""
    return embedding_text(chunk)


def chunk_alone(chunk: Chunk) -> str:
    """Return the chunk's prose alone, without a header (its text if it has no prose, e.g. a heading)."""
    return chunk.prose() or chunk.text
