"""ragkit: retrieval-augmented generation you can read, run and measure.

>>> import ragkit
>>> b = ragkit.backend()                                   # local models unless a key is set
>>> docs = ragkit.load_documents(["data/demo"])            # doctest: +SKIP
>>> index = ragkit.build_index(ragkit.chunk_documents(docs), b)      # doctest: +SKIP
>>> print(ragkit.ask("What does a reranker do?", index, b).answer.text)  # doctest: +SKIP
"""
from .backends import Backend, BackendError, Completion, Embeddings, Ranked, RerankResult, Usage, backend
from .cache import EmbeddingCache
from .chunking import Chunk, Document, chunk_documents, load_documents
from .generate import NOT_IN_CONTEXT, Answer, generate
from .index import EmbeddingModelMismatch, Hit, VectorIndex, build_index
from .pipeline import Result, ask, rerank, retrieve
from .stores import open_store

__all__ = [
    "Answer", "Backend", "BackendError", "Chunk", "Completion", "Document", "EmbeddingCache",
    "EmbeddingModelMismatch", "Embeddings", "Hit", "NOT_IN_CONTEXT", "Ranked", "RerankResult", "Result",
    "Usage", "VectorIndex", "ask", "backend", "build_index", "chunk_documents", "generate",
    "load_documents", "open_store", "rerank", "retrieve",
]
