"""What every endpoint of the wire format shares: small readers of JSON values, `usage`, error answers.

>>> read_usage({"prompt_tokens": 9, "completion_tokens": 3, "cost": 0.0001})
Usage(requests=1, prompt_tokens=9, completion_tokens=3, cost=0.0001)
>>> error_body(404, "no model 'x' here", "model", kind="model_not_found")["error"]["type"]
'model_not_found'
"""
from __future__ import annotations

import json as jsonlib

from ...types import Usage

__all__ = [
    "content_text", "error_body", "error_message", "error_status", "is_error_body", "is_int", "is_number", "kind",
    "read_usage", "text_or_none", "usage_body",
]


def is_int(value) -> bool:
    """True for a JSON whole number (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text_or_none(value) -> str | None:
    """Return a non-empty string as it is, anything else as None."""
    return value if isinstance(value, str) and value else None


def kind(value) -> str:
    """Describe a JSON value for an error message: "a list of 3", "a str", "nothing".

    >>> kind([1, 2, 3]), kind("x"), kind(None)
    ('a list of 3', 'a str', 'nothing')
    """
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return "nothing" if value is None else f"a {type(value).__name__}"


def content_text(content) -> str:
    """Return a message's text: a string as it is, content parts (`[{"type": "text", "text"}]`) joined.

    >>> content_text([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}])
    'Hello'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _count(value) -> int:
    return int(value) if is_number(value) and value >= 0 else 0


def read_usage(raw) -> Usage:
    """Return the `Usage` of one answered request from its `usage` object (absent: tokens 0).

    A server that reports only `total_tokens` (embeddings, rerank) has them counted as prompt tokens.
    """
    u = raw if isinstance(raw, dict) else {}
    prompt, completion = _count(u.get("prompt_tokens")), _count(u.get("completion_tokens"))
    if not prompt and not completion:
        prompt = _count(u.get("total_tokens"))
    cost = u.get("cost")
    return Usage(1, prompt, completion, float(cost) if is_number(cost) else None)


def usage_body(usage: Usage) -> dict:
    """Return a `Usage` as the `usage` object of an answer.

    >>> usage_body(Usage(1, 5, 2))
    {'prompt_tokens': 5, 'completion_tokens': 2, 'total_tokens': 7}
    """
    out = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
           "total_tokens": usage.total_tokens}
    if usage.cost is not None:
        out["cost"] = usage.cost
    return out


def is_error_body(body) -> bool:
    """True for an error answer: OpenAI's / OpenRouter's `{"error": {...}}`, vLLM's `{"object": "error"}`."""
    return isinstance(body, dict) and (bool(body.get("error")) or body.get("object") == "error")


def error_status(error) -> int | None:
    """Return the HTTP status an error object's `code` names, if it is one (OpenRouter puts it there).

    >>> error_status({"code": 429}), error_status({"code": "model_not_found"})
    (429, None)
    """
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if is_int(code) and 100 <= code <= 599 else None


def error_message(body) -> str:
    """Return the message of an error answer (or of an error object), or ""."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            return str(message) if message else jsonlib.dumps(error)[:300]
        if error:
            return str(error)
    return ""


def error_body(status: int, message: str, param: str | None = None, *, kind: str | None = None) -> dict:
    """Return the error answer for an HTTP status, in OpenAI's shape with OpenRouter's numeric `code`.

    `code` is the status as a number, which OpenRouter's SDK requires (`{"code": int, "message": str}`);
    `type` says what kind of error it is (`kind`, else OpenAI's `invalid_request_error` / `server_error`).

    >>> error_body(400, "`input` is empty", "input")["error"]
    {'message': '`input` is empty', 'type': 'invalid_request_error', 'param': 'input', 'code': 400}
    """
    kind_ = kind or ("invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind_, "param": param, "code": status}}
