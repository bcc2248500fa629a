"""Lexical retrieval: BM25 over words, the classic search engine ranking (via the `bm25s` package).

An embedding finds passages that *mean* the same as the question; BM25 finds passages that *say*
the same words, weighting rare words most. It needs no model, and it is hard to beat on exact terms
(names, codes, jargon) that an embedding model blurs.

A passage d scores, for the query words t found in it,

    sum_t  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * len(d) / avg_len))

- `tf(t, d)`: how often t occurs in d; `k1` says how fast repeats stop counting (0: once is enough).
- `idf(t) = log(1 + (N - df + 0.5) / (df + 0.5))`: words found in few of the N passages weigh most.
- `b` says how much a long passage is penalised for being long (0: not at all, 1: fully).

This is Lucene's form (bm25s' default, "lucene"); textbooks multiply each term by (k1 + 1) as well,
which scales every score alike and changes no ranking.

Defaults `K1 = 1.2`, `B = 0.75` are Lucene's and Elasticsearch's, which BEIR's published BM25 used.

Tokenisation (`tokenize`): lowercase; words of two or more letters or digits (`\\b\\w\\w+\\b`);
the 33 English stop words of Lucene/Elasticsearch ("a", "the", "of", ...) dropped; each word cut to
its Snowball stem ("cells" -> "cell", "binding" -> "bind") by PyStemmer. Measured on SciFact
(nDCG@10, bm25s 0.3.16): stemming adds about 0.03 on the train split, where the choice was made
(0.668 -> 0.696), as on test (0.663 -> 0.679; BEIR's Elasticsearch BM25: 0.665). k1 and b were not
tuned (Anserini's 0.9/0.4 scores 0.695 on train, about the same).

>>> bm25 = BM25Index().fit(chunks)                                   # doctest: +SKIP
>>> bm25.search("How do I leave a loop early?", k=3)[0].chunk.title    # doctest: +SKIP
'The "break" statement'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .index import embedding_text
from .types import Chunk, Document, Hit
from .vectors import top_k

__all__ = ["B", "K1", "STEMMER", "BM25Index", "as_chunks", "indexed_text", "snowball", "tokenize"]

K1 = 1.2  # term-frequency saturation (Lucene / Elasticsearch default)
B = 0.75  # length normalisation (Lucene / Elasticsearch default)
STEMMER = "english"  # a Snowball stemmer of PyStemmer; None: keep words whole


def snowball(language: str | None = STEMMER):
    """Return a new PyStemmer Snowball stemmer for `language` (None for None). A new one per call: a
    stemmer keeps state and must not be shared between threads (it costs well under a microsecond).

    >>> snowball().stemWords(["hallucinates", "hallucination", "cells"])
    ['hallucin', 'hallucin', 'cell']
    """
    if language is None:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)


def tokenize(texts: Sequence[str], stemmer: str | None = STEMMER) -> list[list[str]]:
    """Return each text's BM25 terms: lowercased words, English stop words dropped, stemmed.

    >>> tokenize(["The cells were binding to T-cells in 2 studies"])
    [['cell', 'were', 'bind', 'cell', 'studi']]
    """
    import bm25s

    return bm25s.tokenize(list(texts), lower=True, stopwords="en", stemmer=snowball(stemmer),
                          return_ids=False, show_progress=False)


def as_chunks(items: Sequence[Chunk | Document | str]) -> list[Chunk]:
    """Return chunks as they are; a Document or a string becomes one chunk holding all of it.

    >>> as_chunks(["cats purr"])[0].id
    'doc0#0'
    """
    chunks = []
    for i, item in enumerate(items):
        if isinstance(item, Chunk):
            chunks.append(item)
        elif isinstance(item, Document):
            chunks.append(Chunk(f"{item.id}#0", item.id, item.title, item.text, 0, 0, len(item.text),
                                source=item.source, date=item.date))
        elif isinstance(item, str):
            chunks.append(Chunk(f"doc{i}#0", f"doc{i}", "", item, 0, 0, len(item)))
        else:
            raise TypeError(f"item {i} is a {type(item).__name__}; give Chunks, Documents or strings")
    return chunks


def indexed_text(chunk: Chunk) -> str:
    """Return what BM25 reads of a chunk: what the vector index embeds (`index.embedding_text`, the
    title and section line above the prose), or the text alone for a chunk with no title (rather than
    its id posing as one).

    >>> indexed_text(Chunk("d#0", "d", "Cats", "Cats purr.", 0, 0, 10)), indexed_text(as_chunks(["Cats purr."])[0])
    ('Cats\\nCats purr.', 'Cats purr.')
    """
    return embedding_text(chunk) if chunk.title or chunk.section else chunk.prose() or chunk.text


@dataclass
class BM25Index:
    """A BM25 index over chunks: `BM25Index().fit(chunks)`, then `search` or `search_all`.

    `text(chunk)` is what gets indexed (default: the title/section line and the prose, as the vector
    index embeds). Exact: every chunk is scored; ties go to the chunk indexed first.

    >>> bm25 = BM25Index().fit(["Cats purr when content.", "Dogs bark at strangers.", "A cat's diet."])
    >>> [(h.chunk.text, round(h.score, 3)) for h in bm25.search("why do cats purr", k=2)]
    [('Cats purr when content.', 0.58), ("A cat's diet.", 0.247)]
    """

    k1: float = K1
    b: float = B
    stemmer: str | None = STEMMER
    text: Callable[[Chunk], str] = indexed_text
    chunks: list[Chunk] = field(default_factory=list, init=False)
    _model: object = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:
        return f"BM25Index({len(self.chunks)} chunks, k1={self.k1}, b={self.b}, stemmer={self.stemmer!r})"

    def __len__(self) -> int:
        return len(self.chunks)

    def fit(self, items: Sequence[Chunk | Document | str]) -> "BM25Index":
        """Index chunks (or whole Documents, or plain strings); return self."""
        import bm25s

        chunks = as_chunks(items)
        if not chunks:
            raise ValueError("no chunks to index: the corpus is empty (check the paths you gave)")
        model = bm25s.BM25(k1=self.k1, b=self.b)  # method "lucene": the idf above
        model.index(tokenize([self.text(c) for c in chunks], self.stemmer), show_progress=False)
        self.chunks, self._model = chunks, model
        return self

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every chunk for one query (0 where no query word occurs)."""
        if self._model is None:
            raise RuntimeError("the BM25 index is empty: call .fit(chunks) first")
        ids = self._model.get_tokens_ids(tokenize([query], self.stemmer)[0])  # unknown words drop out
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    def search_arrays(self, queries: Sequence[str], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Return (indices, scores), each (queries x k), best first: chunk positions and BM25 scores."""
        if isinstance(queries, str):
            raise TypeError("pass a list of queries, e.g. [question]; for one query use search()")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, len(self.chunks))
        indices = np.zeros((len(queries), k), dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for row, query in enumerate(queries):
            s = self.scores(query)
            indices[row] = top_k(s, k)
            scores[row] = s[indices[row]]
        return indices, scores

    def search_all(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Return the top k hits for every query (one list per query), best first."""
        indices, scores = self.search_arrays(queries, k)
        return [[Hit(self.chunks[i], float(s), r + 1) for r, (i, s) in enumerate(zip(row_i, row_s))]
                for row_i, row_s in zip(indices, scores)]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """Return the k chunks with the highest BM25 score for `query`, best first."""
        return self.search_all([query], k)[0]
