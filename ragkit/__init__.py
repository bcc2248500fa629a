"""ragkit: retrieval-augmented generation you can read, run and measure.

>>> import ragkit
>>> b = ragkit.backend()                                   # local models unless a key is set
>>> docs = ragkit.load_documents(ragkit.config.packaged_data("demo"))  # doctest: +SKIP
>>> index = ragkit.build_index(ragkit.chunk_documents(docs), b)      # doctest: +SKIP
>>> print(ragkit.ask("What does a reranker do?", index, b).answer.text)  # doctest: +SKIP

The package, bottom up (each layer imports only from the ones below it):

- `types`, `errors`, `config`: the shared shapes, the exception tree, every setting
- `vectors`, `files`, `progress`, `weights`: unit vectors and ranking order, safe files, progress bars,
  where the packaged models are
- the parts: `embedder`, `headings`, `chunking`, `documents`, `index`, `lexical`, `hybrid`, `cache`,
  `rerankers/`
- the outside world: `backends/` (local, OpenRouter, `ragkit serve`, the wire format), `stores/`
- the pipeline: `generate`, `pipeline`
- on top: `eval/`, `workbook/`, `cli`
"""
from .backends import LocalBackend, OpenRouterBackend, backend
from .config import version as _version
from .cache import EmbeddingCache
from .chunking import chunk_documents
from .documents import load_documents
from .errors import (
    APIError, AuthenticationError, BackendError, BadRequest, BadResponse, ChapterFailed, ConfigError,
    ConnectionFailed, DatasetError, DatasetUnavailable, DownloadFailed, EmbeddingModelMismatch, Forbidden, IndexBusy,
    IndexFileError, ModelNotFound, NotFound, PaymentRequired, RagkitError, RateLimited, ServerError, StoreError,
    StoreUnavailable, WireFormatError,
)
from .checks import NOT_IN_CONTEXT
from .generate import Answer, generate
from .index import VectorIndex, build_index
from .pipeline import Result, ask, rerank, retrieve
from .stores import open_store
from .types import (
    Backend, ChatStream, Chunk, Completion, Document, Embeddings, Hit, Ranked, RerankResult, SearchIndex, Store,
    Usage,
)

__version__ = _version()

__all__ = [
    "APIError", "Answer", "AuthenticationError", "Backend", "BackendError", "BadRequest", "BadResponse",
    "ChapterFailed", "ChatStream", "Chunk", "Completion", "ConfigError", "ConnectionFailed", "DatasetError",
    "DatasetUnavailable", "Document", "DownloadFailed", "EmbeddingCache", "EmbeddingModelMismatch", "Embeddings",
    "Forbidden", "Hit",
    "IndexBusy", "IndexFileError", "LocalBackend", "ModelNotFound", "NOT_IN_CONTEXT", "NotFound", "OpenRouterBackend",
    "PaymentRequired", "RagkitError", "Ranked", "RateLimited", "RerankResult", "Result", "SearchIndex",
    "ServerError", "Store", "StoreError", "StoreUnavailable", "Usage", "VectorIndex", "WireFormatError", "ask",
    "backend", "build_index", "chunk_documents", "generate", "load_documents", "open_store", "rerank", "retrieve",
]
