"""The shapes every part of ragkit shares: small frozen dataclasses, and the protocols behind them.

Data, bottom up:

- `Document` (a source text) -> `Chunk` (a passage of it, with exact offsets) -> `Hit` (a chunk found
  for a query, with its score and rank);
- `Embeddings` (a float32 matrix of unit vectors and the model that made them), `Ranked` (a reranker's
  verdict on some documents, best first: `RerankResult`s), `Completion` (a chat answer), `ChatStream`
  (one being written), and `Usage` (what a call cost) on each of them.

A rerank result comes in three sizes, one per layer: a reranker's `score()` returns an array (one
score per document, the array layer); a backend's `rerank()` returns `Ranked` (what the wire protocol
answers); `ragkit.rerank()` returns the `Hit`s reordered (what the pipeline works with).

Protocols (what ragkit needs, not a base class to inherit): `Backend` (embed, rerank, chat), and
`SearchIndex` / `Store` (what can be searched; what can also be written).

>>> Usage(requests=1, prompt_tokens=10) + Usage(requests=2, prompt_tokens=5, cost=0.01)
Usage(requests=3, prompt_tokens=15, completion_tokens=0, cost=0.01)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date as _date
from typing import Callable, Iterator, Literal, Protocol, Sequence, overload, runtime_checkable

import numpy as np

__all__ = [
    "Backend", "ChatStream", "Chunk", "Completion", "Document", "Embeddings", "Hit", "Message", "Ranked",
    "RerankResult", "SearchIndex", "Store", "StreamEnd", "Usage", "check_texts",
]

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class Usage:
    """What some work cost: requests made, tokens read and written, dollars when the API says.

    >>> Usage(3, 15, 4, 0.01) - Usage(1, 10, 0, None)
    Usage(requests=2, prompt_tokens=5, completion_tokens=4, cost=0.01)
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # USD, only when the server reports it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: "Usage") -> "Usage":
        if self.cost is None and other.cost is None:
            cost = None
        else:
            cost = (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
        )

    def __sub__(self, other: "Usage") -> "Usage":
        """What was spent between two readings of a running total."""
        cost = None if self.cost is None else self.cost - (other.cost or 0.0)
        return Usage(self.requests - other.requests, self.prompt_tokens - other.prompt_tokens,
                     self.completion_tokens - other.completion_tokens, cost)


@dataclass(frozen=True)
class Embeddings:
    """Vectors for some texts: `vectors[i]` belongs to text i (float32, n x d, unit length)."""

    vectors: np.ndarray
    model: str
    usage: Usage = Usage()

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def first(self) -> "Embeddings":
        """Return the first vector alone (as a 1 x d Embeddings), for a search of one query."""
        return Embeddings(self.vectors[:1], self.model, self.usage)


@dataclass(frozen=True)
class RerankResult:
    """One re-scored document: its position in the input list, its relevance score, its text."""

    index: int
    relevance_score: float
    text: str


@dataclass(frozen=True)
class Ranked:
    """Reranked documents, best first, and which model scored them."""

    results: list[RerankResult]
    model: str
    usage: Usage = Usage()


@dataclass(frozen=True)
class Completion:
    """A chat answer: the text, the model that wrote it, what it cost, why it stopped."""

    text: str
    model: str
    usage: Usage = Usage()
    finish_reason: str | None = None


@dataclass(frozen=True)
class StreamEnd:
    """The last thing a stream's producer yields: which model wrote it, why it stopped, what it cost."""

    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatStream:
    """A chat answer as it is written: iterate over it for the text pieces, as they arrive.

    When the loop ends: `text` (all pieces), `model`, `finish_reason` and `usage` (when the backend
    reports them). Stop early with `close()`. Every backend's `chat(..., stream=True)` returns one.

    >>> stream = ChatStream(iter(["Hel", "lo", StreamEnd("m", "stop", Usage(1, 3, 2))]), model="?")
    >>> list(stream), stream.text, stream.model, stream.finish_reason, stream.usage.completion_tokens
    (['Hel', 'lo'], 'Hello', 'm', 'stop', 2)
    """

    def __init__(self, events: Iterator[str | StreamEnd], model: str):
        self.text = ""
        self.model = model
        self.finish_reason: str | None = None
        self.usage = Usage()
        self._events = events

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        while True:
            event = next(self._events)
            if isinstance(event, StreamEnd):
                self.finish(event)
                continue
            self.text += event
            return event

    def finish(self, end: StreamEnd) -> None:
        """Take what the producer says at the end (also when it stops early, with what it knows)."""
        self.model = end.model or self.model
        self.finish_reason = end.finish_reason or self.finish_reason
        if end.usage is not None:
            self.usage = end.usage

    def close(self) -> None:
        """Stop reading (and generating, where the backend can stop)."""
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"ChatStream(model={self.model!r}, text={self.text[:40]!r}, finish_reason={self.finish_reason!r})"


@dataclass(frozen=True)
class Document:
    """One source text to chunk.

    >>> Document("faq", "How do I install it?", title="FAQ", source="docs/faq.md", date="2024-05-01").date
    '2024-05-01'
    """

    id: str  # stable id, e.g. file stem or dataset id
    text: str
    title: str = ""
    source: str = ""  # path or URL, shown as a citation source
    pages: tuple[int, ...] = ()  # for a paged file (PDF): where page n starts in text is pages[n - 1]
    date: str = ""  # ISO day ("2024-05-01") the document is from (a `datetime.date` is converted); "": unknown

    def __post_init__(self):
        if isinstance(self.date, _date):
            object.__setattr__(self, "date", self.date.strftime("%Y-%m-%d"))
        for name in ("id", "text", "title", "source", "date"):
            value = getattr(self, name)
            if not isinstance(value, str):
                hint = "; decode it first, e.g. data.decode('utf-8')" if isinstance(value, bytes) else ""
                raise TypeError(f"Document.{name} must be str, got {type(value).__name__}{hint}")
        if not self.id:
            raise ValueError("Document.id is empty; give each document a stable id, e.g. its file name")
        if self.date and not _is_day(self.date):
            raise ValueError(f"Document.date must be an ISO day like '2024-05-01' (or ''), got {self.date!r}")
        pages = tuple(self.pages)
        if pages and (pages[0] != 0 or list(pages) != sorted(pages) or pages[-1] > len(self.text)):
            raise ValueError(f"Document.pages must be the start offsets of its pages: 0 first, increasing, "
                             f"within the text ({len(self.text)} characters); got {pages[:5]}...")
        object.__setattr__(self, "pages", pages)


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and _date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, with exact offsets: `doc.text[chunk.start:chunk.end] == chunk.text`."""

    id: str  # f"{doc_id}#{position}", deterministic
    doc_id: str
    title: str  # the document title
    text: str
    position: int  # 0-based index of the chunk within its document
    start: int  # char offsets into document.text
    end: int
    section: str = ""  # heading path for heading-aware chunks ("Install > From source"), "" otherwise
    source: str = ""
    n_tokens: int = 0  # word pieces (model tokenizer, no special tokens)
    page: int = 0  # 1-based page of a paged source (PDF) the chunk lies on; 0: the source has no pages
    date: str = ""  # its document's date, an ISO day ("2024-05-01"); "": unknown

    @property
    def where(self) -> str:
        """Return where the chunk comes from, as a citation shows it: the file name, and its page.

        >>> Chunk("r#4", "r", "Report", "...", 4, 0, 3, source="docs/report.pdf", page=3).where
        'report.pdf p. 3'
        """
        name = self.source.replace("\\", "/").rsplit("/", 1)[-1] or self.doc_id
        return f"{name} p. {self.page}" if self.page else name

    @property
    def label(self) -> str:
        """Return "Title > Section" for display, without repeating a title the path starts with.

        >>> Chunk("d#0", "d", "Reranking", "...", 0, 0, 3, section="Reranking > Cost").label
        'Reranking > Cost'
        """
        parts = [p for p in self.section.split(" > ") if p]
        if parts and parts[0] == self.title:
            parts = parts[1:]
        return " > ".join([self.title or self.doc_id, *parts])

    def prose(self) -> str:
        """Return the text without markdown/reST heading lines (for quoting sentences)."""
        lines = self.text.splitlines()
        keep = [line for i, line in enumerate(lines)
                if not line.lstrip().startswith("#")
                and not (line.strip() and set(line.strip()) <= set("=-~^*+#") and i > 0)
                and not (i + 1 < len(lines) and lines[i + 1].strip()
                         and set(lines[i + 1].strip()) <= set("=-~^*+#") and len(lines[i + 1].strip()) >= 3)]
        return "\n".join(keep).strip()


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, its score (cosine similarity for the index) and its rank (1 = best)."""

    chunk: Chunk
    score: float
    rank: int


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """Return `texts` as a list, or raise a clear error for input no model should see.

    >>> check_texts(["a", "b"])
    ['a', 'b']
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single {type(texts).__name__}; "
                        f"wrap it: [{what[:-1] if what.endswith('s') else what}]")
    items = list(texts)
    if not items:
        raise ValueError(f"{what} is empty: give at least one string")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] is {type(t).__name__}, not str")
        if not t.strip():
            raise ValueError(f"{what}[{i}] is empty or whitespace only; drop it before embedding")
    return items


@runtime_checkable
class Backend(Protocol):
    """What ragkit needs from a backend. `OpenRouterBackend` and `LocalBackend` both fit.

    - `embed(texts) -> Embeddings` (float32 matrix, one L2-normalised row per text)
    - `rerank(query, documents, top_n) -> Ranked` (results best first: index, relevance score, text)
    - `chat(messages) -> Completion`, or a `ChatStream` of text pieces with `stream=True`
    - `rerank_threshold`: the score under which its reranker judges a passage not relevant (None: unknown)
    - `origin`: where its vectors come from ("local" for the packaged models, a server's base URL for
      an HTTP backend); the embedding cache keys vectors by it as well as by model name
    - `usage`: the running total of what its calls cost
    """

    name: str
    embedding_model: str
    rerank_model: str
    chat_model: str
    usage: Usage

    @property
    def rerank_threshold(self) -> float | None: ...

    @property
    def origin(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Embeddings: ...

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> Ranked: ...

    @overload
    def chat(self, messages: list[Message], *, stream: Literal[False] = False, max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None) -> Completion: ...

    @overload
    def chat(self, messages: list[Message], *, stream: Literal[True], max_tokens: int = 256,
             temperature: float = 0.0, json: bool | dict = False, stop: Sequence[str] | None = None) -> ChatStream: ...

    def chat(self, messages, *, stream=False, max_tokens=256, temperature=0.0, json=False, stop=None): ...

    def describe(self) -> str: ...


@runtime_checkable
class SearchIndex(Protocol):
    """What can be searched by vector: a `VectorIndex`, or any `Store`. `ragkit.ask` takes one."""

    @property
    def model(self) -> str | None: ...  # the embedding model of the vectors (None while empty)

    @property
    def dim(self) -> int | None: ...

    def __len__(self) -> int: ...

    def search(self, query: Embeddings, k: int = 10) -> list[Hit]: ...

    def search_all(self, queries: Embeddings, k: int = 10) -> list[list[Hit]]: ...


@runtime_checkable
class Store(SearchIndex, Protocol):
    """A searchable index that can also be written to and filtered: `MemoryStore`, `PostgresStore`,
    `MilvusStore`. A `where` filter maps a chunk field to allowed values, e.g. {"doc_id": ["faq"]},
    and "date" to a period or range, e.g. {"date": {"from": "2024-01"}}."""

    def upsert(self, chunks: Sequence[Chunk], embeddings: Embeddings, *, batch_size: int = 500,
               progress: bool | Callable = False) -> int: ...

    def delete(self, where: dict) -> int: ...

    def search(self, query: Embeddings, k: int = 10, where: dict | None = None) -> list[Hit]: ...

    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]: ...

    def ids(self) -> set[str]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...
