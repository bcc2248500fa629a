"""Chapter 8's techniques measured on the labelled sets, each against the default, question by question.

`measure(labelled, names)` runs each technique (`TECHNIQUES`) on one labelled set and returns, per
technique, every question's nDCG@10 and recall@100, the model calls a question costs and the chat
tokens it spent; `paired` against the base gives the difference, its interval and a p-value. Every
technique changes one step of the base pipeline (`BASE`, what `ragkit ask` does: the dense top 20
reranked, the rest of the top 100 after them) and keeps the others:

| name | what changes |
|---|---|
| `no-rerank` | the first stage's order is kept: what reranking adds, and where it hurts |
| `no-headers` | each chunk is embedded (and reranked) alone, without its title and section path |
| `small-to-big` | sentence windows are searched; each passage ranks as its best window (`techniques.windows`) |
| `dedupe` | near-duplicate candidates (cosine >= `DUPLICATE`) are dropped before reranking |
| `mmr` | the reranked top is reordered by maximal marginal relevance (lambda by cross-validation) |
| `rerank-depth` | how many candidates are reranked, among `DEPTHS` (by cross-validation) |
| `multi-query` | the chat model's paraphrases are searched too, fused by reciprocal rank |
| `hyde` | the question's vector is averaged with a hypothetical answer's |
| `filter` | a question that names a module searches only that module (`stores` `where=`; python-stdlib only) |

What is tuned is chosen by 5-fold cross-validation within the set (`cross_validated`): each question's
score comes from the setting that did best on the other four folds, never on itself. What is not tuned
was fixed before measuring (`WINDOW`, `DUPLICATE`, `PARAPHRASES`). The chat-model techniques run on
every question of the Python sets and on a fixed sample of SciFact (`REWRITE_SAMPLE`), since a 135M
model on 2 cores writes about one rewrite a second; their rewrites are kept in a `cache.ChatCache`.

>>> measured = measure(labelled_sets()[0], ["no-headers"])                     # doctest: +SKIP
>>> measured["no-headers"].paired(measured["base"])                            # doctest: +SKIP
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..cache import ChatCache, EmbeddingCache, PairCache
from ..chunking import chunk_documents
from ..hybrid import rrf, score_fusion
from ..index import VectorIndex, embedding_text
from ..lexical import B, K1, STEMMER, BM25Index, as_chunks
from ..rerankers import LocalReranker
from ..rerankers.cached import CachedReranker
from ..stores.memory import MemoryStore
from ..techniques.diversity import mmr, near_duplicates
from ..techniques.headers import chunk_alone
from ..techniques.rewriting import hyde_vectors, hypothetical_answer, paraphrases
from ..techniques.windows import sentence_windows
from ..types import Chunk, Embeddings, Usage
from ..vectors import top_k
from .benchmark import DEFAULT_CONFIG, _doc_run, _embed_corpus, _embed_queries, _rerank, parse_configs, rerank_depth
from .datasets import STDLIB_MODULES, load_questions, python_docstrings, python_reference, questions_as_qrels
from .metrics import evaluate
from .paired import PairedResult, paired_test

__all__ = ["BASE", "DEPTHS", "DUPLICATE", "LAMBDAS", "PACKAGED_SETS", "REWRITE_SAMPLE", "TECHNIQUES", "LabelledSet",
           "Measured", "cross_validated", "duplicates_last", "labelled_set", "labelled_sets", "measure",
           "rewrite_sample", "split_configs"]

TECHNIQUES = ("no-rerank", "no-headers", "small-to-big", "dedupe", "mmr", "rerank-depth", "multi-query", "hyde",
              "filter")
BASE = DEFAULT_CONFIG  # "dense+rerank": what `ragkit ask` does
METRICS = ("ndcg@10", "recall@100")
DEPTH = 100  # chunks ranked per question
REWRITE_SAMPLE = 300  # at most this many questions of a set for the chat-model techniques (a fixed sample)
DUPLICATE = 0.95  # cosine at which two candidates count as the same text (not tuned)
LAMBDAS = (0.5, 0.7, 0.9)  # MMR's relevance weight, chosen by cross-validation
DEPTHS = (10, 20, 30)  # candidates reranked, chosen by cross-validation
FOLDS = 5
TIMED = 3  # questions timed per technique with empty caches


@dataclass(frozen=True)
class LabelledSet:
    """A corpus as the chunks that are searched, and judged queries about it ({qid: text}, {qid: {doc: grade}})."""

    name: str
    chunks: list[Chunk]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


PACKAGED_SETS = ("python-reference", "python-stdlib")


def labelled_set(name: str | Path, split: str = "test") -> LabelledSet:
    """Return one labelled set: "python-reference" (heading chunks), "python-stdlib" (one chunk per
    docstring), or a BEIR dataset's folder or name (one chunk per document, the `split` judgements);
    answerable questions only.
    """
    if str(name) == "python-reference":
        docs, questions = python_reference(), None
        chunks = chunk_documents(docs, "heading")
    elif str(name) == "python-stdlib":
        docs = python_docstrings()
        chunks = as_chunks(docs)
    else:
        from .beir import load_beir

        ds = load_beir(name, split=split, progress=False)
        qrels = {q: r for q, r in ds.qrels[split].items() if q in ds.queries}
        return LabelledSet(ds.name, as_chunks(ds.documents()), {q: ds.queries[q] for q in qrels}, qrels)
    questions = [q for q in load_questions(str(name), corpus=docs) if q.answerable]
    return LabelledSet(str(name), chunks, {q.id: q.question for q in questions}, questions_as_qrels(questions))


def labelled_sets(scifact: str | Path | None = None) -> list[LabelledSet]:
    """Return the workbook's labelled sets: the two Python sets and, given its folder, SciFact test."""
    return [labelled_set(n) for n in PACKAGED_SETS] + ([labelled_set(scifact)] if scifact is not None else [])


def split_configs(spec: str | None) -> tuple[list[str], list[str]]:
    """Return (retrieval configurations, technique names) of a comma-separated list; "techniques" is all of them.

    >>> split_configs("bm25,mmr,hyde")
    (['bm25'], ['mmr', 'hyde'])
    """
    if spec is None:
        return parse_configs(None), []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    techniques = [n for n in names if n in TECHNIQUES]
    if "techniques" in names:
        techniques = list(dict.fromkeys([*techniques, *TECHNIQUES]))
    rest = [n for n in names if n not in TECHNIQUES and n != "techniques"]
    try:
        configs = parse_configs(rest) if rest or not techniques else []
    except ValueError as exc:
        raise ValueError(f"{exc}; or a technique of chapter 8: {','.join(TECHNIQUES)} ('techniques' for all)") from None
    return configs, techniques


def rewrite_sample(qids: Sequence[str], n: int = REWRITE_SAMPLE, seed: int = 0) -> list[str]:
    """Return a fixed random sample of n query ids (all of them when there are no more than n), in their order.

    >>> rewrite_sample([f"q{i}" for i in range(5)], n=2)
    ['q3', 'q4']
    """
    if len(qids) <= n:
        return list(qids)
    chosen = np.random.default_rng(seed).choice(len(qids), n, replace=False)
    return [qids[i] for i in sorted(chosen)]


def cross_validated(scores: dict, metric: str = "ndcg@10", folds: int = FOLDS,
                    seed: int = 0) -> tuple[pd.DataFrame, list]:
    """Return (each question's scores under the setting chosen without it, the setting chosen per fold).

    `scores` maps a setting to per-question scores (frames with the same index). The questions are
    split into `folds` at random (fixed `seed`); for each fold the setting with the best mean `metric`
    on the other folds is chosen (ties: the first), and the fold's rows are taken from it.

    >>> a = pd.DataFrame({"ndcg@10": [1.0, 1.0, 0.0, 1.0]}); b = pd.DataFrame({"ndcg@10": [0.0, 0.0, 1.0, 0.0]})
    >>> held_out, chosen = cross_validated({"a": a, "b": b}, folds=2)
    >>> chosen, held_out["ndcg@10"].tolist()
    (['a', 'a'], [1.0, 1.0, 0.0, 1.0])
    """
    settings = list(scores)
    index = scores[settings[0]].index
    fold = np.random.default_rng(seed).permutation(len(index)) % folds
    out = scores[settings[0]].copy()
    chosen = []
    for f in range(folds):
        train = fold != f
        best = max(settings, key=lambda s: (scores[s][metric].to_numpy()[train].mean(), -settings.index(s)))
        out.iloc[fold == f] = scores[best].iloc[fold == f].to_numpy()
        chosen.append(best)
    return out, chosen


@dataclass(frozen=True)
class Measured:
    """One technique on one set: per-question scores, what a question costs, and how it was set up."""

    technique: str
    scores: pd.DataFrame  # index: query id; columns: METRICS
    calls: dict  # model calls per question: embed, rerank, chat
    chat_usage: Usage = Usage()  # summed over the questions
    seconds: float = float("nan")  # per question, query side, empty caches (`TIMED` questions)
    note: str = ""

    def paired(self, other: "Measured", metric: str = "ndcg@10") -> PairedResult:
        """Return the paired test of this technique against `other` on the questions both answered."""
        common = self.scores.index.intersection(other.scores.index)
        return paired_test(self.scores.loc[common, metric], other.scores.loc[common, metric])

    def row(self, base: "Measured") -> dict:
        """Return the technique's table row against `base`: means, paired difference, CI, p, costs."""
        p = self.paired(base)
        n = len(self.scores)
        return {"technique": self.technique, "questions": n,
                **{m: float(self.scores[m].mean()) for m in METRICS},
                "base ndcg@10": float(base.scores.loc[self.scores.index, "ndcg@10"].mean()),
                "difference": p.mean_diff, "low": p.ci_low, "high": p.ci_high, "p": p.p_value,
                **{f"{k} calls": v for k, v in self.calls.items()},
                "chat tokens": self.chat_usage.total_tokens / max(n, 1), "seconds": self.seconds,
                "note": self.note}


@dataclass
class _Bench:
    """One set's shared work: the default index, the question vectors, first stages, the reranker."""

    labelled: LabelledSet
    backend: object
    base: str
    cache: EmbeddingCache
    pairs: PairCache
    chats: ChatCache
    progress: bool = False
    built: dict = field(default_factory=dict)  # what the techniques build once (indexes of other texts)
    only: dict = field(default_factory=dict)  # technique -> the settings to try (default: its whole grid)
    chosen: dict = field(default_factory=dict)  # technique -> the setting cross-validation chose most often

    def __post_init__(self) -> None:
        ls = self.labelled
        self.qids = list(ls.qrels)
        self.questions = [ls.queries[q] for q in self.qids]
        self.chunks = ls.chunks
        self.texts = [embedding_text(c) for c in self.chunks]
        self.depth = min(DEPTH, len(self.chunks))
        self.first, _, _ = self.base.partition("+")
        self.n = rerank_depth(self.base)
        self.index = self.vector_index("default", self.texts)
        self.qvec = self.embed(self.questions)
        self.scorer = CachedReranker(getattr(self.backend, "reranker", None) or LocalReranker(), self.pairs)

    def embed(self, texts: list[str]) -> np.ndarray:
        return _embed_queries(self.backend, self.index, texts)

    def vector_index(self, key: str, texts: list[str], chunks: list[Chunk] | None = None) -> VectorIndex:
        if key not in self.built:  # the model's "longer than it reads" warnings gathered into one line
            self.built[key] = _embed_corpus(chunks or self.chunks, texts, self.backend, self.cache, self.progress, {})
        return self.built[key]

    def bm25(self, key: str, text: Callable[[Chunk], str]) -> tuple[np.ndarray, np.ndarray]:
        if f"bm25 {key}" not in self.built:
            index = BM25Index(k1=K1, b=B, stemmer=STEMMER, text=text).fit(self.chunks)
            self.built[f"bm25 {key}"] = index.search_arrays(self.questions, self.depth)
        return self.built[f"bm25 {key}"]

    def dense(self, index: VectorIndex, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return index.search_vectors(vectors, self.depth)

    def finish(self, dense, rows: np.ndarray, *, texts=None, bm25=None, n=None, pre=None, post=None):
        """Return the base pipeline's ranking from a dense first stage (rows: which questions)."""
        texts = self.texts if texts is None else texts
        first = dense
        if self.first == "hybrid":
            lexical = bm25 if bm25 is not None else self.bm25("default", lambda c: embedding_text(c))
            first = score_fusion([dense, (lexical[0][rows], lexical[1][rows])])
            first = (first[0][:, : self.depth], first[1][:, : self.depth])
        if pre is not None:
            first = pre(first)
        n = self.n if n is None else n
        if not n:  # 0: the first stage's order (`no-rerank`)
            return first
        queries = [self.questions[r] for r in rows]
        self.scorer.prepare(sorted({(q, texts[i]) for q, row in zip(queries, first[0]) for i in row[:n] if i >= 0}),
                            progress=self.progress)
        ranked = _rerank(first, n, queries, texts, self.scorer)
        return post(ranked) if post is not None else ranked

    def scores(self, ranking, rows: np.ndarray) -> pd.DataFrame:
        qids = [self.qids[r] for r in rows]
        run = _doc_run(qids, ranking, self.chunks)
        return evaluate({q: self.labelled.qrels[q] for q in qids}, run, list(METRICS)).set_index(pd.Index(qids))


# --------------------------------------------------------------------------------------------------
# The techniques: each returns (ranking over the set's chunks, calls per question, chat usage, note)

def _calls(b: _Bench, embed: float = 1, chat: float = 0) -> dict:
    return {"embed": embed, "rerank": 0 if b.n is None else 1, "chat": chat}


def _base(b: _Bench, rows: np.ndarray):
    return b.finish(b.dense(b.index, b.qvec[rows]), rows), _calls(b), Usage(), b.base


def _no_rerank(b: _Bench, rows: np.ndarray):
    ranking = b.finish(b.dense(b.index, b.qvec[rows]), rows, n=0)
    return ranking, {**_calls(b), "rerank": 0}, Usage(), f"{b.first} alone"


def _no_headers(b: _Bench, rows: np.ndarray):
    texts = [chunk_alone(c) for c in b.chunks]
    index = b.vector_index("alone", texts)
    ranking = b.finish(b.dense(index, b.qvec[rows]), rows, texts=texts, bm25=b.bm25("alone", chunk_alone))
    return ranking, _calls(b), Usage(), "chunk text only, for the embedder, BM25 and the reranker"


def _small_to_big(b: _Bench, rows: np.ndarray):
    children, of = sentence_windows(b.chunks)
    index = b.vector_index("windows", [embedding_text(c) for c in children], children)
    child = np.atleast_2d(b.qvec[rows]) @ index.vectors.T  # every window's cosine
    starts = np.flatnonzero(np.r_[True, of[1:] != of[:-1]])
    parent = np.maximum.reduceat(child, starts, axis=1)  # each passage at its best window
    best = np.vstack([top_k(row, b.depth) for row in parent])
    dense = best, np.take_along_axis(parent, best, axis=1)
    return b.finish(dense, rows), _calls(b), Usage(), f"{len(children):,} windows of up to 3 sentences"


def duplicates_last(row: np.ndarray, vectors: np.ndarray, n: int,
                    threshold: float = DUPLICATE) -> tuple[np.ndarray, int]:
    """Return (the ranked row with the near-duplicates among its first `n` moved to its end, how many moved).

    `row`: chunk positions best first (-1 pads the end); `vectors`: the index's unit vectors. The
    candidates after the window move up into it, so the reranker reads `n` distinct texts.

    >>> vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])   # 0 and 1 are the same text
    >>> duplicates_last(np.array([0, 1, 2, 3]), vectors, n=2)
    (array([0, 2, 3, 1]), 1)
    """
    head, tail = row[:n], row[n:]
    window = head[head >= 0]
    gone = near_duplicates(vectors[window], threshold)
    return np.r_[window[~gone], tail, window[gone], head[head < 0]].astype(row.dtype), int(gone.sum())


def _dedupe(b: _Bench, rows: np.ndarray):
    dropped = []

    def drop(first):
        out = first[0].copy()
        for r, row in enumerate(first[0]):
            out[r], gone = duplicates_last(row, b.index.vectors, b.n or 10)
            dropped.append(gone)
        return out, first[1]  # scores stay by position: the reranker rescores the window, the rest is order only

    ranking = b.finish(b.dense(b.index, b.qvec[rows]), rows, pre=drop)
    return ranking, _calls(b), Usage(), f"{np.mean(dropped):.2f} candidates dropped per question"


def _tuned(b: _Bench, rows: np.ndarray, name: str, grid: Sequence, run: Callable, what: str):
    """Score the ranking `run(setting)` of each setting of the grid, then keep each question's held-out
    choice (`cross_validated`); the setting chosen most often is noted (and is the one timed)."""
    scores = {s: b.scores(run(s), rows) for s in b.only.get(name, grid)}
    held_out, chosen = cross_validated(scores)
    counts = pd.Series(chosen).value_counts()
    b.chosen[name] = counts.index[0]
    note = f"{what} by {FOLDS}-fold cross-validation: " + ", ".join(f"{s} in {c} folds" for s, c in counts.items())
    return held_out, _calls(b), Usage(), note


def _mmr(b: _Bench, rows: np.ndarray):
    def reorder(lambda_):
        def post(ranked):
            out_i = ranked[0].copy()
            for r, row in enumerate(ranked[0]):
                top = row[: b.n or 10]
                out_i[r, : len(top)] = top[mmr(b.index.vectors[top], ranked[1][r, : len(top)], len(top), lambda_)]
            return out_i, ranked[1]
        return post

    dense = b.dense(b.index, b.qvec[rows])
    return _tuned(b, rows, "mmr", LAMBDAS, lambda lam: b.finish(dense, rows, post=reorder(lam)), "lambda")


def _rerank_depth(b: _Bench, rows: np.ndarray):
    dense = b.dense(b.index, b.qvec[rows])
    return _tuned(b, rows, "rerank-depth", DEPTHS, lambda n: b.finish(dense, rows, n=n), "candidates reranked")


def _rewrites(b: _Bench, rows: np.ndarray, write) -> tuple[list, Usage]:
    done = [write(b.questions[r], b.backend, cache=b.chats) for r in rows]
    usage = Usage()
    for d in done:
        usage = usage + d.usage
    return done, usage


def _multi_query(b: _Bench, rows: np.ndarray):
    done, usage = _rewrites(b, rows, paraphrases)
    first_i = []
    for r, d in zip(rows, done):
        vectors = np.vstack([b.qvec[r : r + 1], *([b.embed(list(d.texts))] if d.texts else [])])
        found, _ = b.dense(b.index, vectors)
        fused, _ = rrf(list(found[:, None, :]))
        first_i.append(fused[0, : b.depth])
    indices = np.vstack(first_i)
    dense = indices, np.take_along_axis(b.qvec[rows] @ b.index.vectors.T, indices, axis=1)
    n = np.mean([len(d.texts) for d in done])
    return b.finish(dense, rows), _calls(b, chat=1), usage, f"{n:.1f} paraphrases per question"


def _hyde(b: _Bench, rows: np.ndarray):
    done, usage = _rewrites(b, rows, hypothetical_answer)
    passages = b.embed([d.texts[0] if d.texts else d.question for d in done])
    model = b.index.model
    vectors = hyde_vectors(Embeddings(b.qvec[rows], model), Embeddings(passages, model)).vectors
    return b.finish(b.dense(b.index, vectors), rows), _calls(b, chat=1), usage, "question and passage averaged"


_MODULE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, STDLIB_MODULES), key=len, reverse=True)) + r")\b")


def _filter(b: _Bench, rows: np.ndarray):
    store = MemoryStore(index=b.index, load=False)
    position = {c.id: i for i, c in enumerate(b.chunks)}
    out_i, out_s = b.dense(b.index, b.qvec[rows])
    out_i, out_s = out_i.copy(), out_s.copy()
    named = 0
    for r, row in enumerate(rows):
        if not (m := _MODULE.search(b.questions[row])):
            continue
        named += 1
        where = {"doc_id": [c.doc_id for c in b.chunks if c.doc_id.startswith(m.group(1) + ".")]}
        hits = store.search(Embeddings(b.qvec[row : row + 1], b.index.model), k=b.depth, where=where)
        out_i[r], out_s[r] = -1, -np.inf
        out_i[r, : len(hits)] = [position[h.chunk.id] for h in hits]
        out_s[r, : len(hits)] = [h.score for h in hits]
    return b.finish((out_i, out_s), rows), _calls(b), Usage(), f"{named} of {len(rows)} questions name a module"


RUNNERS = {"base": _base, "no-rerank": _no_rerank, "no-headers": _no_headers, "small-to-big": _small_to_big,
           "dedupe": _dedupe, "mmr": _mmr, "rerank-depth": _rerank_depth, "multi-query": _multi_query,
           "hyde": _hyde, "filter": _filter}
CHAT = ("multi-query", "hyde")
ONLY = {"filter": ("python-stdlib",)}  # where a technique applies at all


def measure(labelled: LabelledSet, names: Sequence[str] = TECHNIQUES, *, backend=None, base: str = BASE,
            cache: EmbeddingCache | None = None, pair_cache: PairCache | None = None,
            chat_cache: ChatCache | None = None, timed: int = TIMED, progress: bool = False) -> dict[str, Measured]:
    """Return each technique measured on the set (and `"base"`), keyed by name; see the module docstring.

    `timed` questions per technique are run again with empty reranker and chat caches for its
    seconds per question (0: not timed).
    """
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown technique {', '.join(map(repr, unknown))}; choose from {', '.join(TECHNIQUES)}")
    from ..backends import LocalBackend

    b = _Bench(labelled, backend or LocalBackend(), base, cache or EmbeddingCache(),
               PairCache() if pair_cache is None else pair_cache, ChatCache() if chat_cache is None else chat_cache,
               progress)
    every = np.arange(len(b.qids))
    sample = np.array([b.qids.index(q) for q in rewrite_sample(b.qids)])
    out = {}
    for name in ["base", *[n for n in names if labelled.name in ONLY.get(n, (labelled.name,))]]:
        rows = sample if name in CHAT else every
        ranking, calls, usage, note = RUNNERS[name](b, rows)
        scores = ranking if isinstance(ranking, pd.DataFrame) else b.scores(ranking, rows)
        out[name] = Measured(name, scores, calls, usage, _seconds(b, name, rows[:timed]) if timed else float("nan"),
                             note)
    return out


def _seconds(b: _Bench, name: str, rows: np.ndarray) -> float:
    """Return the seconds a question takes the technique, query side, with empty reranker and chat caches."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh = replace(b, pairs=PairCache(Path(tmp) / "p.sqlite"), chats=ChatCache(Path(tmp) / "c.sqlite"),
                        only={name: (b.chosen[name],)} if name in b.chosen else {})
        fresh.scorer = CachedReranker(b.scorer.reranker, fresh.pairs)
        start = time.perf_counter()
        fresh.embed([b.questions[r] for r in rows])
        RUNNERS[name](fresh, rows)
        return (time.perf_counter() - start) / max(len(rows), 1)
