"""The model listing on the wire: `GET /models` and `GET /embeddings/models`, in OpenRouter's shape.

OpenRouter's model objects (openrouter.ai/docs/api-reference/models) are a superset of OpenAI's
(`id`, `object`, `created`, `owned_by`), so one listing serves both SDKs. Its required fields, as the
`openrouter` SDK's `Model` schema checks them: `id`, `canonical_slug`, `name`, `created`,
`context_length`, `architecture` (`modality`, `input_modalities`, `output_modalities`), `pricing`
(`prompt`, `completion`, in dollars per token, as strings), `top_provider` (`is_moderated`),
`per_request_limits`, `supported_parameters`, `default_parameters`, `supported_voices`, `links.details`.

>>> card = model_card("local/x", "rerank", context_length=512)
>>> card["architecture"]["output_modalities"], card["pricing"]["prompt"], card["owned_by"]
(['rerank'], '0', 'ragkit')
>>> models_body([card])["total_count"]
1
"""
from __future__ import annotations

import time

__all__ = ["OUTPUT", "model_card", "models_body"]

# What each kind of model puts out, in OpenRouter's `output_modalities` words.
OUTPUT = {"embedding": "embeddings", "rerank": "rerank", "chat": "text"}
_STARTED = int(time.time())  # `created`: when this process started serving


def model_card(model_id: str, task: str, *, context_length: int | None = None,
               parameters: tuple[str, ...] = (), description: str = "") -> dict:
    """Return one model object: OpenRouter's fields, with OpenAI's `object` and `owned_by` besides."""
    return {
        "id": model_id, "object": "model", "created": _STARTED, "owned_by": "ragkit",
        "canonical_slug": model_id, "name": model_id.rpartition("/")[2], "task": task,
        "description": description or f"the {task} model served by ragkit",
        "context_length": context_length,
        "architecture": {"modality": f"text->{OUTPUT[task]}", "input_modalities": ["text"],
                         "output_modalities": [OUTPUT[task]], "tokenizer": "Other", "instruct_type": None},
        "pricing": {"prompt": "0", "completion": "0", "request": "0"},
        "top_provider": {"context_length": context_length, "max_completion_tokens": None, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": list(parameters),
        "default_parameters": None,
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }


def models_body(cards: list[dict]) -> dict:
    """Return the answer to a model listing: OpenAI's `object: list` and `data`, OpenRouter's `links` and
    `total_count`."""
    return {"object": "list", "data": list(cards), "links": {"next": None}, "total_count": len(cards)}
