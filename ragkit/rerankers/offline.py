"""The offline reranker: late interaction over MiniLM token vectors, plus lexical overlap.

No cross-encoder's weights can be had offline, so ragkit reuses the packaged embedding model:
late interaction (each query token finds its best-matching passage token, "MaxSim"), the
best-matching window, sentence and title line, plus BM25 within the candidate set and word overlap,
combined by a logistic regression fitted on SciFact's train split. A passage longer than the model's
256 word pieces is read in overlapping windows, so its end counts too. It is *not* a cross-encoder:
the query and the passage are encoded separately. Measured in `benchmarks/offline_reranker.py`.

>>> LocalReranker().score("what do cats eat?", ["Cats eat fish and meat.", "Stock prices fell."]).round(2)  # doctest: +SKIP
array([0.86, 0.  ])
"""
from __future__ import annotations

import dataclasses
import re
import threading
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .. import config
from ..embedder import LocalEmbedder, counting_tokenizer
from ..lexical import snowball
from ..progress import progress_bar
from ..vectors import sigmoid, unit

STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because
been before being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its itself
just may me might more most must my myself no nor not now of off on once only or other our ours
ourselves out over own same shall she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves""".split())

_WORD = re.compile(r"[a-z0-9]+")


def terms(text: str) -> list[str]:
    """Return the lowercased words of `text`, stopwords dropped, each cut to its Snowball stem (as BM25
    stems them, `lexical.snowball`).

    >>> terms("The cells were binding to T-cells: LLMs hallucinate")
    ['cell', 'bind', 't', 'cell', 'llms', 'hallucin']
    """
    return snowball().stemWords([w for w in _WORD.findall(text.lower()) if w not in STOPWORDS])


def bm25_within(query: str, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Return each doc's BM25 score for `query`, with document frequencies and lengths taken from
    `docs` alone (the candidate set), since a reranker sees no corpus statistics.

    A query word found in every candidate weighs almost nothing; one found in a few weighs a lot.

    >>> bm25_within("cat food", ["cat food brands", "dog food", "cats"]).round(2)
    array([0.78, 0.47, 0.59])
    """
    q = list(dict.fromkeys(terms(query)))
    n = len(docs)
    if not q or n == 0:
        return np.zeros(n)
    column = {t: j for j, t in enumerate(q)}
    tf = np.zeros((n, len(q)))
    lengths = np.zeros(n)
    for i, doc in enumerate(docs):
        words = terms(doc)
        lengths[i] = len(words)
        for t, count in Counter(words).items():
            if t in column:
                tf[i, column[t]] = count
    df = (tf > 0).sum(axis=0)
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
    norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1.0))
    return (tf * (k1 + 1.0) / (tf + norm[:, None]) * idf).sum(axis=1)


def _inner(tokens: np.ndarray) -> np.ndarray:
    # Drop [CLS] and [SEP] unless nothing else is left.
    return tokens[1:-1] if len(tokens) > 2 else tokens


def maxsim(query_tokens: np.ndarray, doc_tokens: Sequence[np.ndarray]) -> np.ndarray:
    """Return the late-interaction score of each doc: every query token takes its best cosine with the
    doc's tokens, and the doc's score is the mean over query tokens ([CLS]/[SEP] left out).

    One matrix product for all docs at once, then a maximum per doc's column block.

    >>> q = np.array([[0, 0], [1, 0], [0, 1], [0, 0]], float)
    >>> maxsim(q, [np.array([[0, 0], [1, 0], [0, 0]], float), np.array([[0, 0], [1, 1], [0, 0]], float)]).round(3)
    array([0.5  , 0.707])
    """
    q = unit(_inner(np.asarray(query_tokens, dtype=np.float32)))
    docs = [_inner(np.asarray(d, dtype=np.float32)) for d in doc_tokens]
    return _maxsim_units(q, [unit(d) for d in docs])


def _maxsim_units(q: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    # q: unit query tokens; docs: unit token vectors per doc (float16 or float32).
    lengths = np.array([len(d) for d in docs])
    sims = q @ np.concatenate(docs).astype(np.float32).T              # query tokens x all doc tokens
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.maximum.reduceat(sims, starts, axis=1).mean(axis=0).astype(np.float64)


# What the model reads at once: 256 word pieces, [CLS] and [SEP] included. A longer passage is read
# in windows of WINDOW word pieces, each starting STRIDE after the previous one (32 overlap, moved
# back to the start of a word); the first window is the passage itself, cut by the model where the
# retriever's embedding was cut, so its mean-pooled vector is that embedding.
WINDOW = 254
STRIDE = 222
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def windows(text: str, tokenizer=None) -> list[str]:
    """Return the pieces of `text` the reranker's model reads: the text itself (of which the model reads
    the first 254 word pieces), then one window per further 222 word pieces, each cut at word starts.

    >>> [len(w.split()) for w in windows("word " * 600)]
    [600, 378, 156]
    """
    enc = (tokenizer or counting_tokenizer()).encode(text, add_special_tokens=False)
    n, words = len(enc.ids), enc.word_ids
    out, start = [text], STRIDE
    while n > start + (WINDOW - STRIDE):  # word pieces beyond the previous window
        s = start
        while s > start - STRIDE // 2 and words[s] is not None and words[s] == words[s - 1]:
            s -= 1  # the first piece of its word
        out.append(text[enc.offsets[s][0]:])  # the model reads WINDOW word pieces of it
        start = s + STRIDE
    return out


@dataclass(frozen=True)
class Reading:
    """What the embedding model made of one passage, for the offline reranker (unit vectors, float16).

    - `tokens`: every word piece of every window, [CLS]/[SEP] left out (for MaxSim)
    - `windows`: each window's mean-pooled vector; `windows[0]` is the retriever's embedding
    - `sentences`: each sentence's word pieces pooled (the title line is not a sentence)
    - `title`: the first line's word pieces pooled (ragkit puts a chunk's title and section there);
      the first window's, for a passage of one line
    """

    tokens: np.ndarray
    windows: np.ndarray
    sentences: np.ndarray
    title: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.tokens, self.windows, self.sentences, self.title))


def read(embedder: LocalEmbedder, texts: Sequence[str]) -> list[Reading]:
    """Return each text's `Reading`: one model pass over all the windows of all the texts.

    >>> r = read(LocalEmbedder(), ["Cats\\nCats purr. They sleep a lot."])[0]           # doctest: +SKIP
    >>> r.tokens.shape, r.windows.shape, r.sentences.shape, r.title.shape               # doctest: +SKIP
    ((9, 384), (1, 384), (2, 384), (384,))
    """
    tokenizer = counting_tokenizer()
    pieces = [windows(t, tokenizer) for t in texts]
    flat = [w for ws in pieces for w in ws]
    vectors = embedder.token_vectors(flat) if flat else []
    encs = tokenizer.encode_batch(flat, add_special_tokens=False) if flat else []
    out, at = [], 0
    for text, ws in zip(texts, pieces):
        out.append(_reading(text, ws, vectors[at : at + len(ws)], encs[at : at + len(ws)]))
        at += len(ws)
    return out


def _reading(text: str, ws: list[str], vectors: list[np.ndarray], encs) -> Reading:
    title_end = text.find("\n") if "\n" in text.strip() else -1
    ends = np.array([m.end() for m in _SENTENCE_END.finditer(text)])
    tokens, starts, keys = [], [], []
    for k, (w, v, e) in enumerate(zip(ws, vectors, encs)):
        inner = _inner(v)
        offset = len(text) - len(w)  # each window is a suffix of the text
        chars = np.array([o[0] for o in e.offsets[: len(inner)]], dtype=np.int64) + offset
        tokens.append(inner)
        starts.append(chars)
        keys.append(k * (len(ends) + 1) + np.searchsorted(ends, chars, side="right"))
    tokens_all = np.concatenate(tokens)
    chars_all, keys_all = np.concatenate(starts), np.concatenate(keys)
    in_title = chars_all < title_end if title_end >= 0 else np.zeros(len(chars_all), bool)
    title = unit(tokens_all[in_title].mean(axis=0)) if in_title.any() else unit(vectors[0].mean(axis=0))
    body = ~in_title
    if body.any():
        k = keys_all[body]
        bounds = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])  # keys only grow within a window
        sentences = unit(np.add.reduceat(tokens_all[body], bounds, axis=0))
    else:
        sentences = title[None, :]
    f16 = np.float16
    return Reading(unit(tokens_all).astype(f16), unit(np.stack([v.mean(axis=0) for v in vectors])).astype(f16),
                   sentences.astype(f16), title.astype(f16))


PAIR_SCORES = ("cosine", "maxsim", "maxp", "sentence", "title")


def pair_scores(query: Reading, readings: Sequence[Reading]) -> np.ndarray:
    """Return the docs x PAIR_SCORES matrix: what the model says about each (query, doc) pair alone,
    from the `read` of the query and of each doc.

    - cosine: the query's embedding against the doc's (its first window), as the retriever saw it
    - maxsim: late interaction over the token vectors of all the doc's windows (`maxsim`)
    - maxp: the best cosine of the query with any window of the doc
    - sentence: the best cosine with any sentence of the doc (its word pieces pooled)
    - title: the cosine with the doc's title line
    """
    f32 = np.float32
    q = query.windows[0].astype(f32)  # the query's embedding
    return np.stack([
        np.array([r.windows[0].astype(f32) @ q for r in readings]),
        _maxsim_units(query.tokens.astype(f32), [r.tokens for r in readings]),
        np.array([(r.windows.astype(f32) @ q).max() for r in readings]),
        np.array([(r.sentences.astype(f32) @ q).max() for r in readings]),
        np.array([r.title.astype(f32) @ q for r in readings]),
    ], axis=1).astype(np.float64)


def overlap(query: str, docs: Sequence[str]) -> np.ndarray:
    """Return docs x 2: the share of the query's distinct words found in each doc, and the share of its
    word pairs (adjacent once stopwords are dropped) found there too.

    >>> overlap("red blood cells bind oxygen", ["oxygen binds to red blood cells", "blood types"]).round(2)
    array([[1. , 0.5],
           [0.2, 0. ]])
    """
    q = terms(query)
    words, pairs = set(q), set(zip(q, q[1:]))
    out = np.zeros((len(docs), 2))
    for i, doc in enumerate(docs):
        d = terms(doc)
        out[i] = (len(words & set(d)) / max(len(words), 1), len(pairs & set(zip(d, d[1:]))) / max(len(pairs), 1))
    return out


FEATURES = ("cosine", "cosine_gap", "maxsim", "maxsim_gap", "maxp", "maxp_gap", "sentence", "sentence_gap",
            "title", "title_gap", "bm25_rel", "coverage", "bigrams")

# Logistic regression over FEATURES, fitted on SciFact's train split (809 queries; candidates: each
# query's dense top 20, what `ragkit ask` reranks, and hybrid top 30; 40,450 (query, passage) pairs)
# by `python benchmarks/offline_reranker.py --fit`: scikit-learn LogisticRegression on standardised
# features, C = 0.1 chosen from 0.1, 1, 10 by 5-fold cross-validation on train with folds grouped so
# that claims sharing a relevant abstract stay together (held-out nDCG@10: dense top 20 0.721, hybrid
# top 30 0.753); the weights below are on the raw features.
WEIGHTS = np.array([-1.9291, 3.1917, 5.2830, 7.6926, 1.3266, 0.1629, 0.7660, 4.6920, 0.3950, 3.0870, 3.0792,
                    -1.0295, 1.8818])
BIAS = -6.1540
# The threshold is chosen on the workbook's two labelled sets of Python documentation (dense top 20
# reranked, title line and text as `ragkit.ask` sends them) by `python benchmarks/domains.py
# --thresholds`: the best chunk's score should pass for answerable questions and fail for
# unanswerable, near-topic ones. Of 0.08-0.25, 0.16 has the best balanced accuracy (the mean of the
# two rates) averaged over both sets among the thresholds that let at least 85% of each set's
# answerable questions through: on the Language Reference it lets 88% of the 184 answerable through
# and refuses 77% of the 22 unanswerable (0.12: 95% and 55%); on the standard-library docstrings,
# 87% of 105 and 38% of 13 (0.12: 91% and 38%). Unconstrained, balanced accuracy peaks at 0.25 by one
# or two unanswerable questions, at the price of refusing a quarter of the answerable ones.
# Over the whole pipeline (`benchmarks/answers.py`, the 206 Language Reference questions) 0.16
# answered 87.5% of the answerable questions and said "not in the sources" for 77% of the others.
# The notebooks' off-topic question over those docs ("How do I install numpy with pip?") scores 0.013.
# Retrieval metrics do not depend on it; pass `threshold=` to change it.
THRESHOLD = config.OFFLINE_RERANK_THRESHOLD  # 0.16, kept with the other settings in ragkit.config
# From `python benchmarks/offline_reranker.py` (SciFact test, 300 queries).
MEASURED = "nDCG@10 0.718 vs 0.647 embedding-only on SciFact (test, dense top 20 reranked)"


def features(query_reading: Reading, readings: Sequence[Reading], query: str,
             docs: Sequence[str]) -> np.ndarray:
    """Return the feature matrix (docs x FEATURES) the offline reranker scores.

    - the five `pair_scores` (cosine, maxsim, maxp, sentence, title), and for each how far behind the
      best candidate it is (`*_gap`, 0 for the best)
    - bm25_rel: BM25 within the candidates (`bm25_within`) divided by the best one (0..1)
    - coverage, bigrams: the query's words and word pairs found in the doc (`overlap`)

    The gaps and `bm25_rel` say how a doc compares with the other candidates; the rest say how close
    it is in absolute terms, which is what lets a threshold mean something.
    """
    return candidate_features(pair_scores(query_reading, readings), query, docs)


def candidate_features(pairs: np.ndarray, query: str, docs: Sequence[str]) -> np.ndarray:
    """Return FEATURES from each doc's PAIR_SCORES and what depends on the query's words or on the whole
    candidate set.

    Split from `features` so that the pair scores (the costly model pass) can be cached.
    """
    pairs = np.asarray(pairs, dtype=np.float64).reshape(len(docs), len(PAIR_SCORES))
    bm = bm25_within(query, docs)
    scores = [c for j in range(pairs.shape[1]) for c in (pairs[:, j], pairs[:, j] - pairs[:, j].max())]
    return np.column_stack([*scores, bm / max(bm.max(), 1e-9), overlap(query, docs)])


def probability(x: np.ndarray) -> np.ndarray:
    """Return the fitted model's probability of relevance for rows of FEATURES."""
    return sigmoid(x @ WEIGHTS + BIAS)


@dataclass
class LocalReranker:
    """The offline reranker: MiniLM late interaction + window, sentence and title matches + lexical
    overlap, combined by weights fitted on SciFact train. Not a cross-encoder: the query and passage
    are encoded separately.

    Score scale: a probability-like 0..1, the logistic regression's estimate that the passage is
    relevant (calibrated on SciFact train, whose candidate sets hold about one relevant passage among
    20-30). `default_threshold` is the score under which a passage is judged not relevant.

    Cost: one MiniLM pass over every candidate not seen recently (the same work as embedding it; a
    passage longer than the model's 256 word pieces is read in windows, about 1.4 passes for a
    SciFact abstract), then numpy. What the model made of recent texts is kept (`Reading`, float16,
    up to `cache_mb`), so reranking the same passages again, as a notebook does, costs only numpy.

    >>> LocalReranker().score("what do cats eat?", ["Cats eat fish and meat.", "Stock prices fell."]).round(2)  # doctest: +SKIP
    array([0.86, 0.  ])
    """

    embedder: LocalEmbedder = field(default_factory=LocalEmbedder)
    name: str = config.OFFLINE_RERANKER
    default_threshold: float = THRESHOLD
    measured: str = MEASURED
    cache_mb: float = 64.0
    _cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _cache_bytes: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def readings(self, texts: Sequence[str]) -> list[Reading]:
        """Return each text's `Reading`, from the cache or computed now."""
        with self._lock:
            have = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if missing:
            have.update(zip(missing, read(self.embedder, missing)))
        with self._lock:
            for t in dict.fromkeys(texts):
                if t not in self._cache:
                    self._cache_bytes += have[t].nbytes
                self._cache[t] = have[t]
                self._cache.move_to_end(t)
            while self._cache and self._cache_bytes > self.cache_mb * 2**20:
                self._cache_bytes -= self._cache.popitem(last=False)[1].nbytes
        return [have[t] for t in texts]

    def features(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return the docs x FEATURES matrix (see `features`)."""
        readings = self.readings([query, *docs])
        return features(readings[0], readings[1:], query, docs)

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return each doc's relevance score, 0..1 (float64), higher is more relevant."""
        docs = list(docs)
        if not docs:
            return np.zeros(0)
        return probability(self.features(query, docs))


# --------------------------------------------------------------------------------------------------
# Choosing one

    # The cacheable part of the work (see `rerankers.cached`): the five model scores of each pair.

    @property
    def pair_key(self) -> str:
        """What a cached pair value means: the PAIR_SCORES of this model, read in these windows."""
        return (f"{self.name}|{self.embedder.name}|{','.join(PAIR_SCORES)}|"
                f"window {WINDOW}, stride {STRIDE}")

    def pair_values(self, pairs: Sequence[tuple[str, str]], progress: bool = False
                    ) -> Iterator[dict[tuple[str, str], np.ndarray]]:
        """Yield {(query, passage): PAIR_SCORES} for the pairs, 64 passages at a time.

        Each passage is read once (`read`), against every query it is a candidate for, in batches
        of passages of similar length.
        """
        queries = list(dict.fromkeys(q for q, _ in pairs))
        qtok = dict(zip(queries, read(self.embedder, queries)))
        by_doc: dict[str, list[str]] = defaultdict(list)
        for q, d in pairs:
            by_doc[d].append(q)
        docs = sorted(by_doc, key=len)
        with progress_bar(progress, len(docs), "reranker: passages", "passage") as advance:
            for start in range(0, len(docs), 64):
                part = docs[start : start + 64]
                dtok = dict(zip(part, read(self.embedder, part)))
                by_query: dict[str, list[str]] = defaultdict(list)
                for d in part:
                    for q in by_doc[d]:
                        by_query[q].append(d)
                batch = {}
                for q, ds in by_query.items():
                    batch.update(zip(((q, d) for d in ds), pair_scores(qtok[q], [dtok[d] for d in ds])))
                yield batch
                advance(len(part))

    def from_pair_values(self, values: np.ndarray, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return the scores from cached pair values (docs x PAIR_SCORES)."""
        return probability(candidate_features(values, query, docs))

    def uncached(self) -> "LocalReranker":
        """Return a copy that keeps no readings between calls (for timing what a fresh query costs)."""
        return dataclasses.replace(self, cache_mb=0)
