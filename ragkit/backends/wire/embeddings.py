"""Embeddings and rerank on the wire: requests, answers, and the readers of both.

| endpoint | request | answer |
|---|---|---|
| `POST /embeddings` | `model`, `input` (a string or a list), `encoding_format` (`float` / `base64`) | `data: [{index, embedding}]`, `model`, `usage` |
| `POST /rerank` | `model`, `query`, `documents`, `top_n` | `results: [{index, relevance_score, document: {text}}]`, `model`, `usage` |

>>> parse_embeddings_request({"input": "one text", "encoding_format": "base64"})
(None, ['one text'], 'base64')
"""
from __future__ import annotations

import base64
import uuid
from typing import Sequence

import numpy as np

from ...errors import WireFormatError
from ...types import Embeddings, Ranked
from .base import is_int, is_number, kind, usage_body

__all__ = [
    "TRUNCATED_FIELD", "embeddings_body", "embeddings_request", "parse_embeddings_request", "parse_rerank_request",
    "read_embeddings", "read_rerank", "rerank_body", "rerank_request",
]

# `ragkit serve` adds this field to an embeddings answer when its local model cut some of the texts, so
# that ragkit's HTTP client can warn as the local backend does (other clients ignore an extra field).
TRUNCATED_FIELD = "ragkit_truncated"

TOKEN_IDS = ("`input` holds token ids, not text: this server embeds text with its own tokenizer, which is not "
             "tiktoken's, so ids from another tokenizer would embed the wrong words. Send strings; with "
             "langchain, OpenAIEmbeddings(..., check_embedding_ctx_length=False)")


def embeddings_request(model: str, texts: Sequence[str]) -> dict:
    """Return the body of an embeddings request for `texts`, asking for plain floats."""
    return {"model": model, "input": list(texts), "encoding_format": "float"}


def _vector(raw) -> np.ndarray | None:
    if isinstance(raw, str):  # base64 float32, in case the server ignored encoding_format
        try:
            return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float64)
        except ValueError:
            return None
    if not isinstance(raw, list) or not all(is_number(x) for x in raw):
        return None
    vec = np.asarray(raw, dtype=np.float64)
    return vec if np.all(np.isfinite(vec)) else None


def read_embeddings(body: dict, n: int) -> np.ndarray:
    """Return the n x d vectors of an embeddings answer to n texts, in input order (float64, as sent)."""
    data = body.get("data")
    if not isinstance(data, list):
        raise WireFormatError(f"expected a `data` list, got {kind(data)}", "data")
    if len(data) != n:
        raise WireFormatError(f"sent {n} texts but got {len(data)} vectors back", "data")
    rows: list = [None] * n
    for pos, item in enumerate(data):
        index = item.get("index") if isinstance(item, dict) else None
        if not is_int(index) or not 0 <= index < n:
            raise WireFormatError(f"data[{pos}] has index {index!r}, want 0..{n - 1}", "data")
        if rows[index] is not None:
            seen = {d.get("index") for d in data if isinstance(d, dict)}
            missing = [i for i in range(n) if i not in seen]
            raise WireFormatError(f"index {index} comes twice and {missing} never", "data")
        rows[index] = _vector(item.get("embedding"))
        if rows[index] is None:
            raise WireFormatError(f"data[{pos}].embedding is not a list of finite numbers", "data")
    dims = {len(r) for r in rows}
    if len(dims) != 1 or 0 in dims:
        raise WireFormatError(f"vectors of different or zero lengths: {sorted(dims)}", "data")
    return np.vstack(rows)


def _is_token_ids(texts) -> bool:
    if not isinstance(texts, list) or not texts:
        return False
    return all(is_int(t) for t in texts) or all(isinstance(t, list) and all(is_int(i) for i in t) for t in texts)


def parse_embeddings_request(body: dict) -> tuple[object, list[str], str]:
    """Return (model, texts, encoding_format) of an embeddings request, or raise naming the bad field."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if _is_token_ids(texts):
        raise WireFormatError(TOKEN_IDS, "input")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise WireFormatError(f"`input` must be a string or a list of strings, not {kind(texts)}", "input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise WireFormatError(f"encoding_format {encoding!r} is not supported: use 'float' or 'base64'",
                              "encoding_format")
    if body.get("dimensions") is not None:
        raise WireFormatError("`dimensions` is not supported: this server's model has one vector size", "dimensions")
    return body.get("model"), texts, encoding


def embeddings_body(emb: Embeddings, encoding: str = "float", truncated: int = 0) -> dict:
    """Return the answer to an embeddings request (`base64`: little-endian float32, as OpenAI sends)."""
    vectors = np.asarray(emb.vectors, dtype=np.float32)
    if encoding == "base64":  # what the official openai client asks for by default
        rows = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    else:
        rows = vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    answer = {"object": "list", "data": data, "model": emb.model, "usage": usage_body(emb.usage)}
    if truncated:
        answer[TRUNCATED_FIELD] = truncated  # ragkit's clients warn; other clients ignore the field
    return answer


def rerank_request(model: str, query: str, documents: Sequence[str], top_n: int | None = None) -> dict:
    """Return the body of a rerank request (OpenRouter's and Cohere's shape)."""
    payload: dict = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        payload["top_n"] = min(int(top_n), len(documents))
    return payload


def read_rerank(body: dict, n: int) -> dict[int, float]:
    """Return {document index: relevance score} from a rerank answer about n documents."""
    raw = body.get("results")
    if not isinstance(raw, list) or len(raw) > n:
        raise WireFormatError(f"expected a `results` list of at most {n} items, got {kind(raw)}", "results")
    scored: dict[int, float] = {}
    for pos, item in enumerate(raw):
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if not is_int(index) or not 0 <= index < n or index in scored:
            raise WireFormatError(f"results[{pos}] has index {index!r}: want each of 0..{n - 1} at most once",
                                  "results")
        if not is_number(score) or not np.isfinite(score):
            raise WireFormatError(f"results[{pos}] has relevance_score {score!r}, not a number", "results")
        scored[index] = float(score)
    return scored


def parse_rerank_request(body: dict) -> tuple[object, str, list[str], int | None]:
    """Return (model, query, documents, top_n) of a rerank request, or raise naming the bad field."""
    query, documents, top_n = body.get("query"), body.get("documents"), body.get("top_n")
    if not isinstance(query, str):
        raise WireFormatError("`query` must be a string", "query")
    if not isinstance(documents, list):
        raise WireFormatError("`documents` must be a list of strings", "documents")
    docs = [d.get("text") if isinstance(d, dict) else d for d in documents]
    if not all(isinstance(d, str) for d in docs):
        raise WireFormatError("each of `documents` must be a string or {\"text\": string}", "documents")
    if top_n is not None and (not is_int(top_n) or top_n < 1):
        raise WireFormatError("`top_n` must be a whole number of at least 1", "top_n")
    return body.get("model"), query, docs, top_n


def rerank_body(ranked: Ranked) -> dict:
    """Return the answer to a rerank request."""
    results = [{"index": r.index, "relevance_score": r.relevance_score, "document": {"text": r.text}}
               for r in ranked.results]
    return {"id": f"rerank-{uuid.uuid4().hex}", "model": ranked.model, "results": results,
            "usage": usage_body(ranked.usage)}
