"""Local sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) run with onnxruntime.

The recipe is the model's own: WordPiece tokens (at most 256), one forward pass, mean of the token
vectors under the attention mask, then L2 normalisation.

>>> from ragkit.embedder import LocalEmbedder
>>> emb = LocalEmbedder()
>>> emb.embed(["a cat", "a dog"]).shape
(2, 384)
"""
from __future__ import annotations

import functools
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import config, weights
from .vectors import unit

MAX_TOKENS = 256


def load_tokenizer(path: Path | None = None, max_length: int = MAX_TOKENS):
    """Return the model's WordPiece tokenizer (`tokenizers.Tokenizer`), truncating at `max_length`."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path or weights.embedding_tokenizer_path()))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    return tok


def truncation_message(truncated: int, total: int, where: str = "") -> str:
    """Return the warning for texts the model cut at MAX_TOKENS word pieces (`where`: " at host").

    >>> truncation_message(2, 64)[:62]
    '2 of 64 texts are longer than 256 word pieces; the embedding m'
    """
    return (f"{truncated} of {total} texts are longer than {MAX_TOKENS} word pieces; the embedding model"
            f"{where} saw only their first {MAX_TOKENS} (chunk with max_tokens <= {MAX_TOKENS - 16} to keep "
            f"all the text)")


def truncated_count(texts: Sequence[str]) -> int:
    """Return how many texts the model cuts: more word pieces than MAX_TOKENS with [CLS] and [SEP].

    >>> truncated_count(["short", "word " * 300])
    1
    """
    return sum(n + 2 > MAX_TOKENS for n in count_tokens(texts))


def count_tokens(texts: Sequence[str], tokenizer=None) -> list[int]:
    """Return the number of model word pieces in each text (no special tokens, no truncation).

    >>> count_tokens(["Retrieval-augmented generation"])
    [4]
    """
    tok = tokenizer or counting_tokenizer()
    return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]


@functools.lru_cache(maxsize=1)
def counting_tokenizer():
    """Return the shared tokenizer used for counting (no truncation); loaded once, read-only."""
    tok = load_tokenizer()
    tok.no_truncation()
    return tok


def onnx_session(path: Path, threads: int | None = None):
    """Return an onnxruntime CPU session for the model at `path`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    opts.log_severity_level = 3
    # Idle threads sleep instead of spinning, leaving the cores to the chat model between batches.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def batch_inputs(encodings, pad_id: int = 0) -> dict[str, np.ndarray]:
    """Pad a list of `tokenizers` encodings into the three int64 arrays a BERT-style model takes."""
    n, width = len(encodings), max(len(e.ids) for e in encodings)
    ids = np.full((n, width), pad_id, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
        types[i, : len(e.type_ids)] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@dataclass
class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use. Thread-safe; 384-d unit vectors."""

    model_path: Path | None = None
    tokenizer_path: Path | None = None
    batch_size: int = 32
    name: str = config.LOCAL_EMBEDDING_MODEL
    _session: object = field(default=None, init=False, repr=False)
    _tokenizer: object = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def load(self) -> "LocalEmbedder":
        """Load the model and tokenizer now (otherwise the first `embed` does it)."""
        with self._lock:
            if self._session is None:
                self._tokenizer = load_tokenizer(self.tokenizer_path)
                self._session = onnx_session(self.model_path or weights.embedding_model_path())
        return self

    def token_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Return each text's contextual token vectors (float32, tokens x 384), [CLS]/[SEP] included."""
        self.load()
        out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
        for batch in self._batches(texts):
            encs = self._tokenizer.encode_batch([texts[i] for i in batch])
            hidden = self._session.run(["last_hidden_state"], batch_inputs(encs))[0]
            for row, (i, e) in enumerate(zip(batch, encs)):
                out[i] = hidden[row, : len(e.ids)].astype(np.float32)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return one L2-normalised float32 row per text (n x 384).

        Texts longer than 256 word pieces are cut to their first 256 (the model reads no more), with
        a warning: chunk them smaller to have all of the text count.
        """
        self.load()
        texts = list(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        truncated = 0
        for batch in self._batches(texts):
            encs = self._tokenizer.encode_batch([texts[i] for i in batch])
            truncated += sum(1 for e in encs if e.overflowing)
            inputs = batch_inputs(encs)
            hidden = self._session.run(["last_hidden_state"], inputs)[0]
            mask = inputs["attention_mask"][:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[batch] = pooled
        if truncated:
            warnings.warn(truncation_message(truncated, len(texts)), stacklevel=2)
        return unit(out)

    def _batches(self, texts: Sequence[str]) -> list[list[int]]:
        # Sort by length so each batch pads to similar lengths: about 2x faster on mixed inputs.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
