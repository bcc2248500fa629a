"""Answers, not rankings: are the citations right, is "not in the sources" said when it should be, how
close is the answer to a gold one, and (online) what does a stronger model say about it?

- `token_f1`: overlap of an answer's words with a gold answer's (SQuAD's normalisation).
- `judge_answer`: an LLM's verdict (supported by its sources? correct?), at temperature 0.
- `answer_checks` / `answer_summary`: the whole pipeline on a question set, and its headline rates.

>>> round(token_f1("It raises an error.", "It raises AssertionError."), 3)
0.667
"""
from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..generate import format_source, json_reply
from ..pipeline import ask
from ..progress import progress_bar

__all__ = ["JUDGE_SCHEMA", "answer_checks", "answer_summary", "answer_tokens", "judge_answer", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITES = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_PUNCT = re.compile(r"[^\w\s]|_")


def answer_tokens(text: str) -> list[str]:
    """Return the tokens token F1 compares: lower case, citations, punctuation and articles removed.

    The normalisation of SQuAD's official evaluation (Rajpurkar et al., 2016), plus `[n]` citations.

    >>> answer_tokens("The __debug__ flag is False [2].")
    ['debug', 'flag', 'is', 'false']
    """
    text = _PUNCT.sub(" ", _CITES.sub(" ", text.lower()))
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, gold: str) -> float:
    """Return the token F1 of an answer against a gold answer (0..1; 1 when both are empty).

    Precision: the answer's tokens found in the gold one (counted with multiplicity); recall: the
    gold tokens found in the answer; F1 their harmonic mean.

    >>> round(token_f1("Under -O, assert statements are removed [1].", "Assert statements are removed under -O."), 3)
    1.0
    >>> round(token_f1("It raises an error.", "It raises AssertionError."), 3)
    0.667
    """
    a, g = Counter(answer_tokens(answer)), Counter(answer_tokens(gold))
    if not a or not g:
        return float(a == g)
    common = sum((a & g).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "supported": {"type": "boolean"},
        "correct": {"type": "boolean"},
        "reason": {"type": "string", "maxLength": 300},
    },
    "required": ["supported", "correct", "reason"],
    "additionalProperties": False,
}

JUDGE_PROMPT = (
    "You grade answers written by a question-answering system from numbered sources. Be strict.\n"
    "- supported: true only if every claim in the answer is stated in the sources it cites.\n"
    "- correct: true only if the answer answers the question and agrees with the reference answer "
    "(if there is no reference answer, judge from the sources alone).\n"
    "Reply with JSON: supported, correct, and a one-sentence reason."
)


def judge_answer(answer, backend, gold: str | None = None, max_tokens: int = 200) -> dict:
    """Return {"supported", "correct", "reason"}: an LLM's verdict on a checked answer, at temperature 0.

    `answer` is a `ragkit.generate.Answer`; its cited sources (all sources if it cites none) go to
    the judge with the question and, if given, the gold answer. Use a stronger model than the one
    that wrote the answer (an online one: a 135M model is no judge). A reply that is not the JSON
    asked for raises BackendError.

    >>> judge = ragkit.backends.OpenRouterBackend.from_env(chat_model="openai/gpt-4o-mini")    # doctest: +SKIP
    >>> judge_answer(result.answer, judge, gold="Under -O assert statements are removed.")  # doctest: +SKIP
    {'supported': True, 'correct': True, 'reason': 'Source [1] says so and it matches the reference.'}
    """
    cited = [(c.number, c.hit) for c in answer.citations] or list(enumerate(answer.sources, start=1))
    sources = "\n".join(format_source(n, hit) for n, hit in cited) or "(none)"
    reference = f"\n\nReference answer: {gold}" if gold else ""
    messages = [{"role": "system", "content": JUDGE_PROMPT},
                {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {answer.question}{reference}"
                                            f"\n\nAnswer to grade: {answer.text}"}]
    completion = backend.chat(messages, json=JUDGE_SCHEMA, max_tokens=max_tokens, temperature=0.0)
    return json_reply(completion, "verdict", lambda d: {
        "supported": _boolean(d["supported"]), "correct": _boolean(d["correct"]), "reason": str(d["reason"])})


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def answer_checks(questions: Sequence, index, backend, *, judge=None, progress: bool = True,
                  **ask_options) -> pd.DataFrame:
    """Return one row per question: how the full pipeline (`ragkit.ask`) answered it, checked.

    `questions` are `ragkit.eval.datasets.Question`s (gold answer, relevant doc ids, answerable or not).
    Columns: id, answerable, mode, answer, refused ("not in the sources"), citations (how many),
    cites_relevant (any citation from a relevant document; NaN when none cited), citation_precision
    (share of citations from relevant documents), token_f1 (answerable questions only; a refusal
    scores 0), seconds; with a `judge` backend also judge_supported, judge_correct, judge_reason
    (for answers that are not refusals). `answer_summary` turns it into the headline rates.

    >>> checks = answer_checks(load_questions()[:5], index, backend)     # doctest: +SKIP
    >>> answer_summary(checks)                                          # doctest: +SKIP
    """
    rows = []
    with progress_bar(progress, len(questions), "answering", unit="question") as advance:
        for q in questions:
            rows.append(_check_one(q, index, backend, judge, ask_options))
            advance(1)
    return pd.DataFrame(rows).set_index("id")


def _check_one(q, index, backend, judge, ask_options: dict) -> dict:
    """Return the row of `answer_checks` for one question."""
    start = time.perf_counter()
    answer = ask(q.question, index, backend, **ask_options).answer
    seconds = time.perf_counter() - start
    refused = answer.mode == "not_in_context"
    relevant = [c.hit.chunk.doc_id in q.relevant for c in answer.citations]
    row = {"id": q.id, "answerable": q.answerable, "mode": answer.mode, "answer": answer.text,
           "refused": refused, "citations": len(relevant),
           "cites_relevant": float(any(relevant)) if relevant else np.nan,
           "citation_precision": float(np.mean(relevant)) if relevant else np.nan,
           "token_f1": (0.0 if refused else token_f1(answer.text, q.answer)) if q.answerable else np.nan,
           "seconds": seconds}
    if judge is not None:
        verdict = ({"supported": np.nan, "correct": np.nan, "reason": ""} if refused else
                   judge_answer(answer, judge, gold=q.answer if q.answerable else None))
        row.update({f"judge_{k}": v for k, v in verdict.items()})
    return row


def answer_summary(checks: pd.DataFrame) -> pd.Series:
    """Return the headline rates of `answer_checks` (each 0..1, NaN when no question counts).

    - answered: answerable questions not refused;
    - cites a relevant document / citation precision: over answered answerable questions;
    - refused when absent: unanswerable questions answered "not in the sources" (higher is better);
    - token F1: mean over answerable questions, refusals scoring 0;
    - judge: supported / correct: share of the judged answers (when a judge was used).
    """
    answerable, absent = checks[checks["answerable"]], checks[~checks["answerable"]]
    answered = answerable[~answerable["refused"]]
    out = {"questions": float(len(checks)),
           "answered": answerable["refused"].eq(False).mean() if len(answerable) else np.nan,
           "cites a relevant document": answered["cites_relevant"].fillna(0).mean() if len(answered) else np.nan,
           "citation precision": answered["citation_precision"].mean(),
           "refused when absent": absent["refused"].mean() if len(absent) else np.nan,
           "token F1": answerable["token_f1"].mean()}
    for name in ("supported", "correct"):
        if f"judge_{name}" in checks:
            out[f"judge: {name}"] = checks[f"judge_{name}"].astype(float).mean()
    return pd.Series(out, name="answers")
