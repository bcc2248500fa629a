"""Every error ragkit raises on purpose, under one root: `except ragkit.RagkitError` catches them all.

Each message says what happened and what to do about it. The tree (each class also derives from the
built-in exception named in brackets, so `except ValueError` keeps working where it always did):

    RagkitError
    ├── ConfigError [ValueError]            a setting names something that cannot work (a store, a URL)
    ├── ModelNotFound [RuntimeError]        a model's files are not installed or not where they should be
    ├── EmbeddingModelMismatch [ValueError] vectors from two embedding models compared
    ├── IndexFileError [ValueError]         a saved index is missing, damaged or not a ragkit index
    │   └── IndexBusy                       ... or another process is writing it now
    ├── BackendError [RuntimeError]         a backend could not do what was asked
    │   └── APIError                        an HTTP server said no (status, endpoint, server_message)
    │       ├── BadRequest                  400 (or another 4xx): the request itself is wrong
    │       ├── AuthenticationError         401: the key is missing, wrong or disabled
    │       ├── PaymentRequired             402: out of credits
    │       ├── Forbidden                   403: refused (moderation, a guardrail, the key's permissions)
    │       ├── NotFound                    404: no such endpoint or model at this base URL
    │       ├── RateLimited                 429 that did not clear within the retries
    │       ├── ServerError                 408 / 5xx that did not clear, or an error mid-answer
    │       ├── ConnectionFailed            no connection, or no answer in time, within the retries
    │       └── BadResponse                 an answer that is not what the API promises
    ├── StoreError [RuntimeError]           a vector database refused an operation
    │   └── StoreUnavailable                ... or cannot be reached
    ├── WireFormatError [ValueError]        a request or answer not in the OpenAI/OpenRouter wire format
    ├── DatasetError [ValueError]           a dataset file or archive is damaged, unsafe or malformed
    ├── ChapterFailed [RuntimeError]        a workbook chapter stopped with an error (which cell, which error)
    └── DownloadFailed [OSError]            a file could not be downloaded (url, reason)
        └── DatasetUnavailable              ... a dataset's archive, in particular

>>> issubclass(StoreUnavailable, RagkitError) and issubclass(IndexFileError, ValueError)
True
"""
from __future__ import annotations

__all__ = [
    "APIError", "AuthenticationError", "BackendError", "BadRequest", "BadResponse", "ChapterFailed", "ConfigError",
    "ConnectionFailed", "DatasetError", "DatasetUnavailable", "DownloadFailed", "EmbeddingModelMismatch",
    "Forbidden", "IndexBusy", "IndexFileError", "ModelNotFound", "NotFound", "PaymentRequired", "RagkitError", "RateLimited",
    "ServerError", "StoreError", "StoreUnavailable", "WireFormatError",
]


class RagkitError(Exception):
    """The root of every error ragkit raises on purpose."""


class ConfigError(RagkitError, ValueError):
    """A setting (an environment variable, a URL, a store spec) names something that cannot work."""


class ModelNotFound(RagkitError, RuntimeError):
    """A model's files are missing; the message says what to install or where to put them."""


class EmbeddingModelMismatch(RagkitError, ValueError):
    """A query's vectors come from another embedding model than the index's."""


class IndexFileError(RagkitError, ValueError):
    """A saved index is missing, damaged or not a ragkit index."""


class IndexBusy(IndexFileError):
    """Another process (or thread) is writing the index folder: wait for it, or write elsewhere."""


class BackendError(RagkitError, RuntimeError):
    """A backend could not do what was asked; the message says why and what to do."""


class APIError(BackendError):
    """An HTTP backend's server said no: `status` is the HTTP status (or the error object's code),
    `endpoint` the path asked, `server_message` what the server said (never the API key)."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str | None = None,
                 server_message: str | None = None):
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint
        self.server_message = server_message


class BadRequest(APIError):
    """400 (or another 4xx): the request itself is wrong, e.g. an unknown model or a missing field."""


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or disabled."""


class PaymentRequired(APIError):
    """402: the account or key is out of credits."""


class Forbidden(APIError):
    """403: not allowed, e.g. the input was flagged by moderation or a guardrail."""


class NotFound(APIError):
    """404: no such endpoint or model at this base URL."""


class RateLimited(APIError):
    """429 that did not clear within the retries and time budget."""


class ServerError(APIError):
    """408 / 5xx that did not clear within the retries, or an error reported mid-answer."""


class ConnectionFailed(APIError):
    """The server could not be reached, or did not answer in time, within the retries."""


class BadResponse(APIError):
    """The server answered, but not with what the API promises (not JSON, cut short, wrong shape)."""


class WireFormatError(RagkitError, ValueError):
    """A request or an answer does not have the shape the OpenAI / OpenRouter wire format defines:
    `field` names the part that is wrong, `detail` holds an error object the answer carried."""

    def __init__(self, message: str, field: str | None = None, *, detail: dict | None = None):
        super().__init__(message)
        self.field = field
        self.detail = detail


class StoreError(RagkitError, RuntimeError):
    """The database refused an operation (its own message says why)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, wrong URL, wrong credentials)."""


class DatasetError(RagkitError, ValueError):
    """A dataset file or archive is damaged, unsafe or not in the expected format."""


class ChapterFailed(RagkitError, RuntimeError):
    """A workbook chapter stopped with an error when run: `chapter` is its file name, `cell` the number
    of the code cell that failed (1 for the first), or None when the kernel itself died or timed out."""

    def __init__(self, message: str, chapter: str = "", cell: int | None = None):
        super().__init__(message)
        self.chapter = chapter
        self.cell = cell


class DownloadFailed(RagkitError, OSError):
    """A file could not be downloaded: `url` what was asked, `reason` the underlying error, `status`
    the HTTP status when the server answered."""

    def __init__(self, message: str, url: str = "", reason: str = "", status: int | None = None):
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        return self.args[0]


class DatasetUnavailable(DownloadFailed):
    """A dataset could not be downloaded (no network, or the server refused)."""
