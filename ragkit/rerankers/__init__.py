"""Rerankers: re-score a retriever's candidates for one query, best passages first.

A first-stage retriever compares one query vector with one vector per passage: fast, but the query
and the passage never meet. A reranker looks at each (query, passage) pair again and gives it a score.
Every reranker here has the same face (`Reranker`):

- `.name`: what it is, e.g. `cross-encoder/ms-marco-MiniLM-L6-v2` or `local/minilm-maxsim+lexical`
- `.score(query, docs) -> np.ndarray`: one float per doc, higher is more relevant
- `.default_threshold`: the score under which a passage is judged not relevant
- `.pair_key`, `.pair_values(pairs)`, `.from_pair_values(values, query, docs)`: the same score in two
  steps, the costly per-pair part first, so that `cached.CachedReranker` can keep it on disk

Two kinds, one module each:

- `cross_encoder.CrossEncoder`: a real cross-encoder, loaded from a folder, the Hugging Face cache,
  or downloaded once.
- `offline.LocalReranker`: what ragkit uses offline, where no cross-encoder weights can be had
  (late interaction over the packaged embedding model, plus lexical overlap; fitted on SciFact train).

`local_reranker()` picks one and says which, and why (`ragkit.progress.notice`: on stderr, or as one
short line in a notebook).

>>> r = local_reranker("local/default", verbose=False)
>>> r.score("what do cats eat?", ["Cats eat fish and meat.", "Stock prices fell."]).round(2)  # doctest: +SKIP
array([0.86, 0.  ])
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from .. import config
from ..embedder import LocalEmbedder
from ..progress import notice
from .cross_encoder import CrossEncoder, find_cross_encoder
from .offline import LocalReranker

__all__ = ["CrossEncoder", "LocalReranker", "Reranker", "find_cross_encoder", "kind", "local_reranker"]


@runtime_checkable
class Reranker(Protocol):
    """What `LocalBackend` needs from a reranker (both `CrossEncoder` and `LocalReranker` fit)."""

    name: str
    default_threshold: float

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray: ...

    @property
    def pair_key(self) -> str: ...

    def pair_values(self, pairs: Sequence[tuple[str, str]], progress: bool = False
                    ) -> Iterator[dict[tuple[str, str], np.ndarray]]: ...

    def from_pair_values(self, values: np.ndarray, query: str, docs: Sequence[str]) -> np.ndarray: ...

    def uncached(self) -> "Reranker": ...


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
        spec = config.settings().rerank_model
    offline = LocalReranker(embedder or LocalEmbedder())
    if spec in (config.LOCAL_RERANK_ALIAS, offline.name):
        why = f"asked for {spec}"
    else:
        target = spec or config.DEFAULT_CROSS_ENCODER
        path, how = find_cross_encoder(target)
        if path is not None:
            try:
                chosen = CrossEncoder(path, name=None if Path(target).expanduser().is_dir() else target)
            except Exception as exc:  # a corrupt or foreign ONNX file: say so, and carry on offline
                why = (f"could not load the cross-encoder in {path} ({type(exc).__name__}: {exc}); "
                       f"delete that folder to download it again")
            else:
                if verbose:
                    notice(f"ragkit: reranker {chosen.name}, a cross-encoder ({how})",
                           brief=f"ragkit: reranker {chosen.name} ({kind(chosen)})")
                return chosen
        else:
            why = f"no cross-encoder found ({how})"
    if verbose:
        notice(f"ragkit: {why}; using {offline.name}, measured {offline.measured}",
               brief=f"ragkit: reranker {offline.name} ({kind(offline)})")
    return offline


def kind(reranker: Reranker) -> str:
    """Say in a few words what kind of reranker this is (for one-line notices).

    >>> kind(local_reranker("local/default", verbose=False))
    'offline: late interaction + word overlap, no cross-encoder on this machine'
    """
    if isinstance(reranker, CrossEncoder):
        return "a cross-encoder"
    return "offline: late interaction + word overlap, no cross-encoder on this machine"
