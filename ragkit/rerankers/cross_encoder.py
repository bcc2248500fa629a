"""A real cross-encoder: a BERT that reads `[CLS] query [SEP] passage [SEP]` and outputs one relevance
logit, in ONNX form, loaded from a folder, the Hugging Face cache, or downloaded once.

No PyPI package ships a cross-encoder's weights, so offline ragkit uses `rerankers.offline` instead;
this is for users who are online or have the files (`RAGKIT_RERANK_MODEL=folder-or-repo`).

>>> ce = CrossEncoder(find_cross_encoder("cross-encoder/ms-marco-MiniLM-L6-v2")[0])  # doctest: +SKIP
>>> ce.score("capital of France", ["Paris is the capital of France.", "Bananas are yellow."])  # doctest: +SKIP
array([0.99..., 0.00...])
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .. import config
from ..embedder import batch_inputs, onnx_session
from ..errors import DownloadFailed
from ..files import download
from ..progress import progress_bar
from ..vectors import sigmoid

ONNX_FILE = "onnx/model.onnx"  # the Hugging Face layout; quantised variants sit next to it
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"


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

    default_threshold = config.CROSS_ENCODER_THRESHOLD

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
        return sigmoid(self.logits(query, docs))

    # The cacheable part of the work (see `rerankers.cached`): here the whole score, one per pair.

    @property
    def pair_key(self) -> str:
        """What a cached pair value means: this model's score."""
        return f"{self.name}|score"

    def pair_values(self, pairs: Sequence[tuple[str, str]], progress: bool = False
                    ) -> Iterator[dict[tuple[str, str], np.ndarray]]:
        """Yield {(query, passage): [score]} for the pairs, one query's passages at a time."""
        by_query: dict[str, list[str]] = defaultdict(list)
        for q, d in pairs:
            by_query[q].append(d)
        with progress_bar(progress, len(pairs), "reranker: pairs", "pair") as advance:
            for q, ds in by_query.items():
                yield {(q, d): s[None] for d, s in zip(ds, self.score(q, ds))}
                advance(len(ds))

    def from_pair_values(self, values: np.ndarray, query: str, docs: Sequence[str]) -> np.ndarray:
        """Return the scores from cached pair values (docs x 1)."""
        return np.asarray(values, dtype=np.float64)[:, 0]

    def uncached(self) -> "CrossEncoder":
        """This reranker keeps nothing between calls: itself."""
        return self




def _looks_like_repo(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", name) is not None and ".." not in name


def ragkit_models_dir() -> Path:
    """Return where ragkit keeps the models it downloads: `$RAGKIT_CACHE_DIR/models` (default
    ~/.cache/ragkit/models)."""
    return config.settings().cache_dir / "models"


def _complete(folder: Path, onnx_file: str) -> bool:
    return (folder / TOKENIZER_FILE).is_file() and (
        (folder / onnx_file).is_file() or (folder / "model.onnx").is_file())


def _from_hf_cache(repo: str, onnx_file: str) -> tuple[Path | None, str]:
    root = config.settings().hf_cache_dir / f"models--{repo.replace('/', '--')}"
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


def _download(repo: str, onnx_file: str, timeout: float) -> tuple[Path | None, str]:
    import httpx

    s = config.settings()
    folder = ragkit_models_dir() / repo.replace("/", "--")
    headers = {"user-agent": "ragkit"}
    if s.hf_token:
        headers["authorization"] = f"Bearer {s.hf_token}"
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                      headers=headers) as client:
        for file, required in ((TOKENIZER_FILE, True), (onnx_file, True), (CONFIG_FILE, False)):
            if (folder / file).is_file():
                continue
            try:  # the hub vouches for a large file's sha256 in its ETag
                download(f"{s.hf_endpoint}/{repo}/resolve/main/{file}", folder / file, client=client, etag=True)
            except DownloadFailed as exc:
                if required:
                    _remove_empty_dirs(folder)
                    return None, str(exc)
    return folder, f"downloaded from {s.hf_endpoint}/{repo} to {folder}"


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
    Face cache (`$HF_HUB_CACHE`, see `ragkit.config`); then downloads `tokenizer.json`, `config.json` and `onnx_file` from
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
    if config.settings().hf_offline:
        return None, f"HF_HUB_OFFLINE=1, so no download: {missing}"
    if not download:
        return None, f"downloading is off: {missing}"
    return _download(name_or_path, onnx_file, timeout)
