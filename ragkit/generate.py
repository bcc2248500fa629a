"""Generation: a prompt built from numbered sources, an answer whose citations are checked.

A language model is asked to answer only from the sources and to cite them as [n]. Then ragkit
checks the answer instead of trusting it:

- a citation [n] with no source n is removed and reported;
- each sentence is checked against the sources it cites (and, if it cites none, all of them): a
  sentence whose content words are mostly absent from the sources is *unsupported*;
- in strict mode (the default for the small local model) unsupported sentences are dropped, and
  if nothing supported is left, the answer falls back to the source sentences closest to the
  question, quoted with their citations and labelled as extractive.

>>> answer = generate("What does a reranker do?", hits, backend)     # doctest: +SKIP
>>> print(answer.text)                                               # doctest: +SKIP
A reranker ... reorders them [1].
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence, TypeVar


from .errors import BackendError
from .types import Backend, Completion, Hit, Message, Usage
from .vectors import best_first

T = TypeVar("T")

NOT_IN_CONTEXT = "The sources do not contain the answer."

SYSTEM_PROMPT = (
    "Answer the question in one or two sentences using only the sources. "
    "End each sentence with the number of its source in brackets, like [2]. "
    f"If the sources do not answer the question, reply exactly: {NOT_IN_CONTEXT}"
)
# One worked example: small models copy a pattern far better than they follow an instruction.
EXAMPLE = (
    "Sources:\n[1] Tea: Green tea is made from leaves that are not oxidised.\n"
    "[2] Coffee: Coffee beans are the roasted seeds of the coffee plant.\n\nQuestion: What are coffee beans?",
    "Coffee beans are the roasted seeds of the coffee plant [2].",
)

# A blank line or a new "Question:" means a small model has finished answering and started rambling.
STOP = ["\n\n", "Question:", "Sources:"]

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an the and or but if then of to in on at by for with from as is are was were be been being it its "
    "this that these those there their they them he she his her we you your our i not no do does did so "
    "such than too very can could should would will may might must has have had which who whom what when "
    "where why how all any each also into about over under more most other some only own same just".split())


@dataclass(frozen=True)
class Citation:
    """Source number n as shown in the prompt, and the retrieved chunk it stands for."""

    number: int
    hit: Hit


@dataclass(frozen=True)
class Answer:
    """A checked answer, with everything needed to see how it was made.

    `mode` is one of "generated" (the model's sentences, all supported), "checked" (some sentences
    or citations were removed), "extractive" (nothing the model wrote was supported; the closest
    source sentences are quoted instead) or "not_in_context" (no source passed the threshold, or
    the model said so; no answer invented).
    """

    question: str
    text: str
    citations: list[Citation]
    sources: list[Hit]
    mode: str
    raw: str = ""
    notes: tuple[str, ...] = ()
    model: str = ""
    usage: Usage = Usage()
    model_sources: tuple[int, ...] = ()  # for a structured answer: the source numbers the model listed

    def with_note(self, note: str) -> "Answer":
        """Return a copy of the answer with one more note."""
        return replace(self, notes=(*self.notes, note))

    def to_dict(self) -> dict:
        """Return the answer as JSON-ready fields: answer, sources (the numbers the checks kept),
        model_sources, mode, notes."""
        return {"answer": self.text, "sources": [c.number for c in self.citations],
                "model_sources": list(self.model_sources), "mode": self.mode, "notes": list(self.notes)}

    def to_frame(self):
        """Return the cited sources as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([{"n": c.number, "title": c.hit.chunk.title, "section": c.hit.chunk.section,
                              "chunk": c.hit.chunk.id, "source": c.hit.chunk.source,
                              "score": round(c.hit.score, 4)} for c in self.citations])


def format_source(number: int, hit: Hit) -> str:
    """Return one numbered source as it appears in the prompt: `[n] Title > Section: text`."""
    return f"[{number}] {hit.chunk.label}: {' '.join(hit.chunk.prose().split())}"


def build_messages(question: str, hits: Sequence[Hit]) -> list[Message]:
    """Return the chat messages: instructions, one worked example, then the sources and question."""
    sources = "\n".join(format_source(i + 1, h) for i, h in enumerate(hits))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": EXAMPLE[0]},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}"},
    ]


def split_sentences(text: str) -> list[str]:
    """Return the sentences of `text` (a simple splitter on ., ! and ? before a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def cited_numbers(sentence: str) -> list[int]:
    """Return the source numbers a sentence cites: "a [1] b [2, 3]" -> [1, 2, 3]."""
    return [int(n) for group in _CITATION.findall(sentence) for n in group.split(",")]


def content_words(text: str) -> set[str]:
    """Return the lower-cased content words of a text, plurals folded ("vectors" -> "vector")."""
    words = _WORD.findall(_CITATION.sub(" ", text.lower()))
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in words if w not in _STOPWORDS}


def support(sentence: str, source_text: str) -> float:
    """Return the share of the sentence's content words found in the source (0..1)."""
    words = content_words(sentence)
    if not words:
        return 0.0
    return len(words & content_words(source_text)) / len(words)


def check_answer(question: str, raw: str, hits: Sequence[Hit], strict: bool = True,
                 min_support: float = 0.6) -> tuple[str, list[int], str, list[str]]:
    """Check a model's answer against its sources; return (text, cited numbers, mode, notes)."""
    notes: list[str] = []
    n_sources = len(hits)
    if NOT_IN_CONTEXT.rstrip(".").lower() in raw.lower():
        return NOT_IN_CONTEXT, [], "not_in_context", ["the model said the sources do not answer"]
    kept: list[str] = []
    cited: list[int] = []
    seen: set[str] = set()
    changed = False
    for sentence in split_sentences(raw):
        numbers = cited_numbers(sentence)
        bad = [n for n in numbers if not 1 <= n <= n_sources]
        if bad:
            notes.append(f"removed citation(s) {bad}: there are only {n_sources} sources")
            changed = True
        good = [n for n in dict.fromkeys(numbers) if 1 <= n <= n_sources]
        bare = _CITATION.sub("", sentence).strip()
        bare = re.sub(r"\s+([.!?,;:])", r"\1", bare)
        if not content_words(bare) or bare.lower() in seen:
            changed = changed or bool(bare)
            continue
        if bare.endswith("?") or bare.lower().startswith("question:") or \
                content_words(bare) <= content_words(question):
            notes.append(f"dropped {bare!r}: it restates the question")
            changed = True
            continue
        seen.add(bare.lower())
        scores = {n: support(bare, hits[n - 1].chunk.prose()) for n in range(1, n_sources + 1)}
        best = max(scores, key=scores.get)
        backed = [n for n in good if scores[n] >= min_support]
        if scores[best] < min_support:
            notes.append(f"unsupported by the sources: {bare!r}")
            changed = True
            if strict:
                continue
        elif not backed:
            why = f"citation(s) {good} do not support" if good else "the model cited no source for"
            notes.append(f"{why} {bare!r}; ragkit cited [{best}]")
            good, changed = [best], True
        elif backed != good:
            notes.append(f"citation(s) {sorted(set(good) - set(backed))} do not support {bare!r}; removed")
            good, changed = backed, True
        cited.extend(good)
        kept.append(_with_citations(bare, good))
    if not kept:
        return "", [], "extractive", notes
    return " ".join(kept), list(dict.fromkeys(cited)), "checked" if changed else "generated", notes


def _with_citations(sentence: str, numbers: Sequence[int]) -> str:
    if not numbers:
        return sentence
    marks = "".join(f"[{n}]" for n in numbers)
    if sentence and sentence[-1] in ".!?":
        return f"{sentence[:-1]} {marks}{sentence[-1]}"
    return f"{sentence} {marks}."


def extractive_answer(question: str, hits: Sequence[Hit], backend: Backend,
                      max_sentences: int = 2) -> tuple[str, list[int]]:
    """Return the source sentences closest in meaning to the question, each with its citation."""
    candidates = [(i + 1, s) for i, h in enumerate(hits) for s in split_sentences(h.chunk.prose())
                  if content_words(s)]
    if not candidates:
        return NOT_IN_CONTEXT, []
    vectors = backend.embed([question] + [s for _, s in candidates]).vectors
    scores = vectors[1:] @ vectors[0]
    best = sorted(best_first(scores)[:max_sentences])  # keep source order
    chosen = [candidates[i] for i in best]
    return " ".join(_with_citations(s, [n]) for n, s in chosen), list(dict.fromkeys(n for n, _ in chosen))


def is_small_local_model(chat_model: str) -> bool:
    """Return True for the local models (named "local/..."), whose answers are checked strictly."""
    return chat_model.startswith("local/")


def generate(question: str, hits: Sequence[Hit], backend: Backend, *, strict: bool | None = None,
             max_tokens: int = 120) -> Answer:
    """Return a checked, cited answer to `question` from `hits` (already retrieved and reranked).

    With no hits it answers NOT_IN_CONTEXT without calling the model. `strict` (default: on for
    local models, served here or over `ragkit serve`) drops sentences the sources do not support.
    """
    hits = list(hits)
    if strict is None:
        strict = is_small_local_model(backend.chat_model)
    if not hits:
        return _not_in_context(question)
    completion = backend.chat(build_messages(question, hits), max_tokens=max_tokens, temperature=0.0,
                              stop=STOP)
    text, numbers, mode, notes = check_answer(question, completion.text, hits, strict=strict)
    if mode == "extractive":
        text, numbers = extractive_answer(question, hits, backend)
        notes.append("nothing the model wrote was supported by the sources; "
                     "quoting the source sentences closest to the question instead")
    citations = [Citation(n, hits[n - 1]) for n in numbers]
    return Answer(question, text, citations, hits, mode, completion.text, tuple(notes), completion.model,
                  completion.usage)


def _not_in_context(question: str) -> Answer:
    return Answer(question, NOT_IN_CONTEXT, [], [], "not_in_context",
                  notes=("no source passed the relevance threshold; the model was not called",))


def json_reply(completion: Completion, what: str, read: Callable[[dict], T]) -> T:
    """Return `read(the JSON object the model wrote)`, or raise BackendError showing what it wrote.

    >>> json_reply(Completion('{"n": 2}', "m", Usage()), "count", lambda d: int(d["n"]))
    2
    """
    try:
        return read(json.loads(completion.text))
    except (ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"the model's {what} is not valid JSON of the expected shape "
                           f"({type(exc).__name__}: {exc}): {completion.text[:200]!r}") from None


# The shape of a structured answer. Length limits keep a small model from rambling past max_tokens
# and leaving the JSON unfinished; llama.cpp turns the schema into a grammar, OpenRouter passes it on.
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 300},
        "sources": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 5},
    },
    "required": ["answer", "sources"],
    "additionalProperties": False,
}


def structured_answer(question: str, hits: Sequence[Hit], backend: Backend, max_tokens: int = 160) -> Answer:
    """Return a JSON answer, checked: an `Answer` whose `model_sources` are the numbers the model listed.

    The model fills ANSWER_SCHEMA; then the answer text is checked against the sources like any
    other (`check_answer`), and the citations hold the sources that really support it.
    `answer.to_dict()` gives the fields as JSON: answer, sources, model_sources, mode, notes.
    """
    hits = list(hits)
    if not hits:
        return _not_in_context(question)
    messages = [{"role": "system", "content": "Answer the question from the numbered sources only. Reply "
                 "with JSON: a short answer, and the numbers of the sources it comes from."},
                build_messages(question, hits)[-1]]
    completion = backend.chat(messages, json=ANSWER_SCHEMA, max_tokens=max_tokens, temperature=0.0)
    text, claimed = json_reply(completion, "structured answer",
                               lambda data: (str(data["answer"]), [int(n) for n in data["sources"]]))
    checked, numbers, mode, notes = check_answer(question, text, hits)
    if mode == "extractive":
        checked, numbers = extractive_answer(question, hits, backend)
        notes.append("nothing in the model's answer was supported; quoting the closest source sentences")
    if sorted(set(claimed)) != sorted(set(numbers)):
        notes.append(f"the model listed sources {claimed}; the checks found support in {numbers}")
    return Answer(question, checked, [Citation(n, hits[n - 1]) for n in numbers], hits, mode, completion.text,
                  tuple(notes), completion.model, completion.usage, tuple(claimed))


def stream_answer(question: str, hits: Sequence[Hit], backend: Backend, max_tokens: int = 120) -> Iterator[str]:
    """Yield the model's answer piece by piece as it is written (unchecked: check it afterwards
    with `check_answer`)."""
    if not hits:
        yield NOT_IN_CONTEXT
        return
    yield from backend.chat(build_messages(question, hits), stream=True, max_tokens=max_tokens, stop=STOP)
