"""Rerankers: re-score a retriever's candidates for one query, best passages first.

A first-stage retriever compares one query vector with one vector per passage: fast, but the query
and the passage never meet. A reranker looks at each (query, passage) pair again and gives it a score.
Every reranker here has the same face:

- `.name`: what it is, e.g. `cross-encoder/ms-marco-MiniLM-L6-v2` or `local/minilm-maxsim+lexical`
- `.score(query, docs) -> np.ndarray`: one float per doc, higher is more relevant
- `.default_threshold`: the score under which a passage is judged not relevant

Two kinds:

- `CrossEncoder`: a real cross-encoder (a BERT that reads `[CLS] query [SEP] passage [SEP]` and
  outputs one relevance logit), loaded from a folder, the Hugging Face cache, or downloaded once.
- `LocalReranker`: what ragkit uses offline, where no cross-encoder weights can be had. It reuses the
  packaged embedding model: late interaction (each query token finds its best-matching passage token,
  "MaxSim") plus BM25 computed within the candidate set, combined by a logistic regression fitted
  on SciFact's train split. Measured in `benchmarks/offline_reranker.py`.

`local_reranker()` picks one and says which, and why, on stderr.

>>> r = local_reranker("local/default", verbose=False)
>>> r.score("what do cats eat?", ["Cats eat fish and meat.", "Stock prices fell."]).round(2)  # doctest: +SKIP
array([0.76, 0.  ])
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .embeddings import LocalEmbedder, batch_inputs, onnx_session

DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"
HF_ENDPOINT = "https://huggingface.co"
LOCAL_DEFAULT = "local/default"


@runtime_checkable
class Reranker(Protocol):
    """What `LocalBackend` needs from a reranker."""

    name: str
    default_threshold: float

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------------
# The real cross-encoder
# --------------------------------------------------------------------------------------------------

ONNX_FILE = "onnx/model.onnx"  # the Hugging Face layout; quantised variants sit next to it
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


class CrossEncoder:
    """A cross-encoder in ONNX form, read from a folder in the Hugging Face layout.

    The folder holds `tokenizer.json`, `config.json` and `onnx/model.onnx` (or `model.onnx`). The model
    takes `input_ids`, `attention_mask`, `token_type_ids` (int64, batch x tokens) for the pair
    `[CLS] query [SEP] passage [SEP]` (at most 512 word pieces) and returns one logit per pair.

    Score scale: `.score()` returns sigmoid(logit), between 0 and 1, as sentence-transformers'
    `CrossEncoder.predict` does for one-logit models; `.logits()` gives the raw logits.
    `default_threshold` 0.5 (logit 0) is the model's own decision boundary, not calibrated by ragkit.

    >>> ce = CrossEncoder(find_cross_encoder("cross-encoder/ms-marco-MiniLM-L6-v2")[0])  # doctest: +SKIP
    >>> ce.score("capital of France", ["Paris is the capital of France.", "Bananas are yellow."])  # doctest: +SKIP
    array([0.99..., 0.00...])
    """

    default_threshold = 0.5

    def __init__(self, path: str | Path, *, name: str | None = None, onnx_file: str = ONNX_FILE,
                 max_length: int = 512, batch_size: int = 16, threads: int | None = None):
        from tokenizers import Tokenizer

        self.path = Path(path)
        model = self.path / onnx_file
        if not model.is_file() and (self.path / "model.onnx").is_file():
            model = self.path / "model.onnx"
        tok_path = self.path / TOKENIZER_FILE
        for needed in (model, tok_path):
            if not needed.is_file():
                raise FileNotFoundError(f"{needed} is missing: a cross-encoder folder needs "
                                        f"{TOKENIZER_FILE} and {onnx_file}")
        self.name = name or self.path.name
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)  # longest_first, as transformers does
        pad = self.tokenizer.token_to_id("[PAD]")
        self.pad_id = 0 if pad is None else pad
        self.session = onnx_session(model, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __repr__(self) -> str:
        return f"CrossEncoder({self.name!r}, path={str(self.path)!r})"

    def logits(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return the model's raw relevance logit for each (query, doc) pair (float64)."""
        docs = list(docs)
        out = np.zeros(len(docs), dtype=np.float64)
        for start in range(0, len(docs), self.batch_size):
            encs = self.tokenizer.encode_batch([(query, d) for d in docs[start : start + self.batch_size]])
            inputs = batch_inputs(encs, self.pad_id)
            feed = {k: v for k, v in inputs.items() if k in self.input_names}
            logits = np.asarray(self.session.run(None, feed)[0], dtype=np.float64)
            if logits.ndim != 2 or logits.shape[1] != 1:
                raise ValueError(f"{self.name}: expected one logit per pair (batch x 1), got shape "
                                 f"{logits.shape}; is this a one-label cross-encoder?")
            out[start : start + len(encs)] = logits[:, 0]
        return out

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return sigmoid(logit) per doc: 0..1, higher is more relevant."""
        return _sigmoid(self.logits(query, docs))


def _looks_like_repo(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None and ".." not in name


def hf_cache_dir() -> Path:
    """Return the Hugging Face hub cache: `$HF_HUB_CACHE`, `$HF_HOME/hub`, or ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def ragkit_models_dir() -> Path:
    """Return where ragkit keeps the models it downloads: `$RAGKIT_CACHE_DIR/models` (default
    ~/.cache/ragkit/models)."""
    from .cache import default_cache_dir

    return default_cache_dir() / "models"


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _complete(folder: Path, onnx_file: str) -> bool:
    return (folder / TOKENIZER_FILE).is_file() and (
        (folder / onnx_file).is_file() or (folder / "model.onnx").is_file())


def _from_hf_cache(repo: str, onnx_file: str) -> tuple[Path | None, str]:
    root = hf_cache_dir() / f"models--{repo.replace('/', '--')}"
    snaps = root / "snapshots"
    if not snaps.is_dir():
        return None, f"not in the Hugging Face cache ({root})"
    ref = root / "refs" / "main"
    preferred = [snaps / ref.read_text().strip()] if ref.is_file() else []
    others = sorted(snaps.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for snap in preferred + others:
        if snap.is_dir() and _complete(snap, onnx_file):
            return snap, f"from the Hugging Face cache ({snap})"
    return None, f"its Hugging Face cache folder ({root}) has no snapshot with {TOKENIZER_FILE} and {onnx_file}"


def _expected_sha256(response) -> str | None:
    # The hub sends an LFS file's sha256 as X-Linked-Etag (on the redirect) or ETag.
    for r in [*response.history, response]:
        for key in ("x-linked-etag", "etag"):
            tag = r.headers.get(key, "").strip('"').removeprefix("W/").strip('"')
            if re.fullmatch(r"[0-9a-f]{64}", tag):
                return tag
    return None


def _download_file(client, url: str, dest: Path) -> str | None:
    """Download `url` to `dest` atomically; return None when done, else why it failed."""
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f, client.stream("GET", url) as r:
            if r.status_code != 200:
                return f"GET {url} returned HTTP {r.status_code}"
            digest, size = hashlib.sha256(), 0
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            expected_size = r.headers.get("content-length")
            if expected_size is not None and int(expected_size) != size:
                return f"GET {url} stopped after {size} of {expected_size} bytes"
            expected = _expected_sha256(r)
            if expected and digest.hexdigest() != expected:
                return f"GET {url}: sha256 {digest.hexdigest()[:12]}... does not match the hub's {expected[:12]}..."
        os.replace(tmp, dest)
        return None
    except httpx.HTTPError as exc:
        return f"GET {url} failed: {type(exc).__name__}: {exc}"
    except OSError as exc:
        return f"could not write {dest}: {exc}"
    finally:
        tmp.unlink(missing_ok=True)


def _download(repo: str, onnx_file: str, timeout: float) -> tuple[Path | None, str]:
    import httpx

    endpoint = (os.environ.get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/")
    folder = ragkit_models_dir() / repo.replace("/", "--")
    headers = {"user-agent": "ragkit"}
    if os.environ.get("HF_TOKEN"):
        headers["authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                      headers=headers) as client:
        for file, required in ((TOKENIZER_FILE, True), (onnx_file, True), (CONFIG_FILE, False)):
            if (folder / file).is_file():
                continue
            why = _download_file(client, f"{endpoint}/{repo}/resolve/main/{file}", folder / file)
            if why and required:
                _remove_empty_dirs(folder)
                return None, why
    return folder, f"downloaded from {endpoint}/{repo} to {folder}"


def _remove_empty_dirs(folder: Path) -> None:
    for d in [*sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True), folder]:
        try:
            d.rmdir()
        except OSError:  # not empty, or already gone
            pass


def find_cross_encoder(name_or_path: str, *, onnx_file: str = ONNX_FILE, download: bool = True,
                       timeout: float = 60.0) -> tuple[Path | None, str]:
    """Return `(folder, how it was found)` for a cross-encoder, or `(None, why not)`.

    Looks, in order, at: an existing folder; ragkit's own cache (`ragkit_models_dir()`); the Hugging
    Face cache (`hf_cache_dir()`); then downloads `tokenizer.json`, `config.json` and `onnx_file` from
    `$HF_ENDPOINT` (default https://huggingface.co) into ragkit's cache, each file written to a
    temporary name and renamed when complete and checked (size, and sha256 when the hub gives one).
    No download when `download=False` or `HF_HUB_OFFLINE=1`. Never raises for a network failure.

    >>> find_cross_encoder("cross-encoder/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
    (PosixPath('/home/me/.cache/ragkit/models/cross-encoder--ms-marco-MiniLM-L6-v2'), 'downloaded from ...')
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if _complete(path, onnx_file):
            return path, f"from {path}"
        return None, f"{path} has no {TOKENIZER_FILE} and {onnx_file}"
    if not _looks_like_repo(name_or_path):
        return None, f"{name_or_path!r} is neither a folder nor a Hugging Face repo name (org/name)"
    own = ragkit_models_dir() / name_or_path.replace("/", "--")
    if _complete(own, onnx_file):
        return own, f"from ragkit's cache ({own})"
    found, hf_note = _from_hf_cache(name_or_path, onnx_file)
    if found:
        return found, hf_note
    missing = f"{name_or_path} is not in ragkit's cache ({own}) and {hf_note}"
    if _is_offline():
        return None, f"HF_HUB_OFFLINE=1, so no download: {missing}"
    if not download:
        return None, f"downloading is off: {missing}"
    return _download(name_or_path, onnx_file, timeout)


# --------------------------------------------------------------------------------------------------
# The offline reranker: late interaction over MiniLM token vectors + BM25 within the candidates
# --------------------------------------------------------------------------------------------------

STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because
been before being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it its itself
just may me might more most must my myself no nor not now of off on once only or other our ours
ourselves out over own same shall she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves""".split())

_WORD = re.compile(r"[a-z0-9]+")
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


def stem(word: str) -> str:
    """Return `word` without a common English inflection (a light stemmer: cells -> cell, binding -> bind).

    >>> [stem(w) for w in ["cells", "studies", "binding", "increased", "class", "virus"]]
    ['cell', 'study', 'bind', 'increas', 'class', 'virus']
    """
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            return word[: len(word) - len(suffix)] + replacement
    return word


def terms(text: str) -> list[str]:
    """Return the lowercased, stemmed words of `text`, stopwords dropped.

    >>> terms("The cells were binding to T-cells")
    ['cell', 'bind', 't', 'cell']
    """
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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
    q = _unit(_inner(np.asarray(query_tokens, dtype=np.float32)))
    docs = [_inner(np.asarray(d, dtype=np.float32)) for d in doc_tokens]
    lengths = np.array([len(d) for d in docs])
    sims = q @ _unit(np.concatenate(docs)).T                      # query tokens x all doc tokens
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.maximum.reduceat(sims, starts, axis=1).mean(axis=0).astype(np.float64)


def _mean_cosine(query_tokens: np.ndarray, doc_tokens: Sequence[np.ndarray]) -> np.ndarray:
    # The embedding model's own sentence vector: mean of all token vectors, L2-normalised.
    q = _unit(np.asarray(query_tokens, dtype=np.float32).mean(axis=0))
    d = _unit(np.stack([np.asarray(t, dtype=np.float32).mean(axis=0) for t in doc_tokens]))
    return (d @ q).astype(np.float64)


FEATURES = ("cosine", "maxsim", "cosine_gap", "maxsim_gap", "bm25_rel")

# Logistic regression over FEATURES, fitted on SciFact's train split (809 queries; candidates: each
# query's dense top-20, top-50 and top-100, 137,530 (query, passage) pairs, 2,453 relevant) by
# `python benchmarks/offline_reranker.py --fit` (scikit-learn LogisticRegression, C=1, no scaling).
WEIGHTS = np.array([2.1620, 4.4899, 7.8448, 7.6070, 3.5328])
BIAS = -7.3531
# Chosen on the train split by the same script: the score that best tells (balanced accuracy) the
# relevant passage of an answerable query (kept: score >= threshold) from the best passage of an
# unanswerable one (dropped), half of those near-topic (the query's relevant passages removed from its
# candidates), half other-topic (another query's candidates). Close to 0.5, "more likely relevant than
# not". On SciFact test (top-100) it keeps the relevant passage for 51% of the answerable claims and
# drops everything for 74% (near-topic) and 91% (other-topic) of the unanswerable ones: a strict bar.
# Lower it (0.2: 73% kept, 25% / 66% dropped) when a missed answer costs more than a weak context.
# That 0.52 refused half of the answerable questions over documentation, so ragkit's default is
# 0.15, chosen on the workbook's own Python-reference questions (dense top-20 reranked, title line
# and text as `ragkit.ask` sends them): the best chunk clears it for 95% of the 184 answerable
# questions and for 32% of the 22 unanswerable ones (near-topic on purpose); the relevant chunk is
# kept for 81%. Its demo-corpus off-topic
# questions score under 0.1. Retrieval metrics do not depend on it; pass `threshold=` to change it.
SCIFACT_THRESHOLD = 0.52
THRESHOLD = 0.15
# From `python benchmarks/offline_reranker.py` (SciFact test, 300 queries, dense top-100 reranked).
MEASURED = "nDCG@10 0.733 vs 0.647 embedding-only on SciFact (test, dense top-100 reranked)"


def features(query_tokens: np.ndarray, doc_tokens: Sequence[np.ndarray], query: str,
             docs: Sequence[str]) -> np.ndarray:
    """Return the feature matrix (docs x FEATURES) the offline reranker scores.

    - cosine: the embedding model's cosine (mean-pooled vectors), as the retriever saw it
    - maxsim: late interaction over the token vectors (`maxsim`)
    - cosine_gap, maxsim_gap: how far behind the best candidate on each (0 for the best)
    - bm25_rel: BM25 within the candidates (`bm25_within`) divided by the best one (0..1)

    The gaps and `bm25_rel` say how a doc compares with the other candidates; cosine and maxsim say
    how close it is in absolute terms, which is what lets a threshold mean something.
    """
    return candidate_features(_mean_cosine(query_tokens, doc_tokens), maxsim(query_tokens, doc_tokens),
                              query, docs)


def candidate_features(cosine: np.ndarray, maxsim_scores: np.ndarray, query: str,
                       docs: Sequence[str]) -> np.ndarray:
    """Return FEATURES from each doc's two pair scores and what depends on the whole candidate set.

    Split from `features` so that the pair scores (the costly model pass) can be cached.
    """
    bm = bm25_within(query, docs)
    return np.stack([cosine, maxsim_scores, cosine - cosine.max(), maxsim_scores - maxsim_scores.max(),
                     bm / max(bm.max(), 1e-9)], axis=1)


def probability(x: np.ndarray) -> np.ndarray:
    """Return the fitted model's probability of relevance for rows of FEATURES."""
    return _sigmoid(x @ WEIGHTS + BIAS)


@dataclass
class LocalReranker:
    """The offline reranker: MiniLM late interaction + lexical overlap, combined by weights fitted on
    SciFact train. Not a cross-encoder: the query and passage are encoded separately.

    Score scale: a probability-like 0..1, the logistic regression's estimate that the passage is
    relevant (calibrated on SciFact train, whose candidate sets hold about one relevant passage among
    20-100). `default_threshold` is the score under which a passage is judged not relevant.

    Cost: one MiniLM pass over every candidate not seen recently (the same work as embedding it), then
    numpy. Token vectors of recent texts are kept (float16, up to `cache_mb`), so reranking the same
    passages again, as a notebook does, costs only the numpy part.

    >>> LocalReranker().score("what do cats eat?", ["Cats eat fish and meat.", "Stock prices fell."]).round(2)  # doctest: +SKIP
    array([0.76, 0.  ])
    """

    embedder: LocalEmbedder = field(default_factory=LocalEmbedder)
    name: str = "local/minilm-maxsim+lexical"
    default_threshold: float = THRESHOLD
    measured: str = MEASURED
    cache_mb: float = 64.0
    _cache: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)
    _cache_bytes: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Return each text's MiniLM token vectors (float16), from the cache or computed now."""
        with self._lock:
            have = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if missing:
            have.update(zip(missing, (v.astype(np.float16) for v in self.embedder.token_vectors(missing))))
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
        vectors = self.token_vectors([query, *docs])
        return features(vectors[0], vectors[1:], query, docs)

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return each doc's relevance score, 0..1 (float64), higher is more relevant."""
        docs = list(docs)
        if not docs:
            return np.zeros(0)
        return probability(self.features(query, docs))


# --------------------------------------------------------------------------------------------------
# Choosing one
# --------------------------------------------------------------------------------------------------

def local_reranker(spec: str | None = None, embedder: LocalEmbedder | None = None,
                   verbose: bool = True) -> Reranker:
    """Return the reranker to use, and (when `verbose`) say on stderr which one and why.

    `spec` (default `$RAGKIT_RERANK_MODEL`):
    - unset: `cross-encoder/ms-marco-MiniLM-L6-v2` if in a cache or downloadable, else the offline one
    - a folder, or a Hugging Face repo name: that cross-encoder, else the offline one (with the reason)
    - `local/default` (or the offline reranker's name): the offline `LocalReranker`

    >>> r = local_reranker("local/default", verbose=False)
    >>> r.name
    'local/minilm-maxsim+lexical'
    """
    if spec is None:
        spec = os.environ.get("RAGKIT_RERANK_MODEL") or None
    offline = LocalReranker(embedder or LocalEmbedder())
    if spec in (LOCAL_DEFAULT, offline.name):
        why = f"asked for {spec}"
    else:
        target = spec or DEFAULT_CROSS_ENCODER
        path, how = find_cross_encoder(target)
        if path is not None:
            try:
                chosen = CrossEncoder(path, name=None if Path(target).expanduser().is_dir() else target)
            except Exception as exc:  # a corrupt or foreign ONNX file: say so, and carry on offline
                why = (f"could not load the cross-encoder in {path} ({type(exc).__name__}: {exc}); "
                       f"delete that folder to download it again")
            else:
                if verbose:
                    print(f"ragkit: reranker {chosen.name}, a cross-encoder ({how})", file=sys.stderr)
                return chosen
        else:
            why = f"no cross-encoder found ({how})"
    if verbose:
        print(f"ragkit: {why}; using {offline.name}, measured {offline.measured}", file=sys.stderr)
    return offline


def recommended_threshold(model: str) -> float | None:
    """Return the relevance threshold ragkit recommends for a reranker by name (None: unknown).

    Lets a client that only sees scores over HTTP (`ragkit serve`) apply the same threshold as the
    process that computed them.

    >>> recommended_threshold("local/minilm-maxsim+lexical")
    0.15
    """
    if model == LocalReranker.name:
        return THRESHOLD
    if model == DEFAULT_CROSS_ENCODER or model.startswith("cross-encoder/"):
        return CrossEncoder.default_threshold
    return None
