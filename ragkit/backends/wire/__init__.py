"""The OpenAI / OpenRouter wire format, in both directions: the one definition of what goes over HTTP.

ragkit's HTTP client (`openrouter.py`) writes requests and reads answers with it; `ragkit serve`
(`server.py`) reads requests and writes answers with it; the local backend speaks it to llama.cpp.
Field names follow OpenAI's API reference and OpenRouter's (openrouter.ai/docs/api-reference). One
module per part of the protocol, everything importable from here (`wire.read_embeddings`):

| module | what |
|---|---|
| `base` | small readers of JSON values, `usage`, error answers `{"error": {"message", "type", "param", "code"}}` |
| `embeddings` | `POST /embeddings` and `POST /rerank` |
| `chat` | `POST /chat/completions`: the request, which parameters a server takes, the answer |
| `stream` | a streamed answer: server-sent events, usage and error chunks |
| `models` | `GET /models`, `GET /embeddings/models` |

Readers raise `WireFormatError` naming the field that is wrong; the client turns it into
`BadResponse`, the server into a 400.

>>> chat_request("m", [{"role": "user", "content": "hi"}], stream=True)["stream_options"]
{'include_usage': True}
"""
from __future__ import annotations

from .base import (
    content_text, error_body, error_message, error_status, is_error_body, is_int, is_number, kind, read_usage,
    text_or_none, usage_body,
)
from .chat import (
    ACCEPTED, SAMPLING, SYSTEM_FINGERPRINT, ChatRequest, chat_request, completion_body, parse_chat_request,
    read_completion, response_format, schema_of,
)
from .embeddings import (
    TRUNCATED_FIELD, embeddings_body, embeddings_request, parse_embeddings_request, parse_rerank_request,
    read_embeddings, read_rerank, rerank_body, rerank_request,
)
from .models import OUTPUT, model_card, models_body
from .stream import DONE, StreamChunk, chunk_body, error_chunk, read_stream_chunk, sse_data, sse_event

__all__ = [
    "ACCEPTED", "DONE", "OUTPUT", "SAMPLING", "SYSTEM_FINGERPRINT", "TRUNCATED_FIELD", "ChatRequest", "StreamChunk",
    "chat_request", "chunk_body", "completion_body", "content_text", "embeddings_body", "embeddings_request",
    "error_body", "error_chunk", "error_message", "error_status", "is_error_body", "is_int", "is_number", "kind",
    "model_card", "models_body", "parse_chat_request", "parse_embeddings_request", "parse_rerank_request",
    "read_completion", "read_embeddings", "read_rerank", "read_stream_chunk", "read_usage", "rerank_body",
    "rerank_request", "response_format", "schema_of", "sse_data", "sse_event", "text_or_none", "usage_body",
]
