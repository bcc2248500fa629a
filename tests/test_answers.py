"""Answer-level evaluation: token F1, the checks over the whole pipeline, and the LLM judge."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ragkit import BackendError, Completion, Usage
from ragkit.eval.datasets import Question
from ragkit.eval.answers import JUDGE_SCHEMA, answer_checks, answer_summary, judge_answer, token_f1
from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.backends.server import make_server


def question(qid, text, relevant=(), answer="", answerable=True):
    return Question(qid, text, tuple(relevant), answer, answerable, "easy")


# -- token F1 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, gold, expected", [
    ("Paris", "Paris", 1.0),
    ("Paris is the capital [1].", "the capital is Paris", 1.0),        # order, articles, citation
    ("Berlin", "Paris", 0.0),
    ("a b c d", "a b", 2 * (1 / 3) * 1 / (1 / 3 + 1)),                  # "a" is an article: b c d vs b
    ("x x y", "x y y", 2 / 3),                                           # counted with multiplicity
    ("", "", 1.0),
    ("", "Paris", 0.0),
    ("Paris", "", 0.0),
])
def test_token_f1_by_hand(answer, gold, expected):
    assert math.isclose(token_f1(answer, gold), expected, abs_tol=1e-12)


def test_token_f1_ignores_punctuation_and_case():
    assert token_f1("__DEBUG__ is False.", "`__debug__` is false") == 1.0


# -- the judge, with a scripted model ------------------------------------------------------------

class ScriptedJudge:
    """A chat backend that returns the given replies in turn and records what it was sent."""

    chat_model = "scripted/judge"

    def __init__(self, *replies: str):
        self.replies, self.calls = list(replies), []

    def chat(self, messages, **options):
        self.calls.append((messages, options))
        return Completion(self.replies.pop(0), self.chat_model, Usage(1, 10, 5))


VERDICT = json.dumps({"supported": True, "correct": False, "reason": "the sources say so; the gold differs"})


@pytest.fixture(scope="module")
def answered(local_backend, demo_index):
    from ragkit.pipeline import ask

    return ask("What does a reranker do?", demo_index, local_backend).answer


def test_judge_sees_the_cited_sources_question_and_gold_at_temperature_zero(answered):
    judge = ScriptedJudge(VERDICT)
    verdict = judge_answer(answered, judge, gold="It re-scores candidates.")
    assert verdict == {"supported": True, "correct": False, "reason": "the sources say so; the gold differs"}
    (messages, options), = judge.calls
    assert options["temperature"] == 0.0 and options["json"] == JUDGE_SCHEMA
    prompt = messages[-1]["content"]
    assert answered.question in prompt and "Reference answer: It re-scores candidates." in prompt
    assert answered.text in prompt
    assert answered.citations and all(" ".join(c.hit.chunk.prose().split())[:80] in prompt
                                      for c in answered.citations)


@pytest.mark.parametrize("reply, words", [
    ("not json at all", "JSONDecodeError"),
    ('{"supported": true, "reason": "x"}', "KeyError"),
    ('{"supported": "yes", "correct": true, "reason": "x"}', "expected true or false"),
])
def test_a_malformed_verdict_is_a_clear_error(answered, reply, words):
    with pytest.raises(BackendError, match="verdict") as info:
        judge_answer(answered, ScriptedJudge(reply))
    assert words in str(info.value)


def test_judge_over_the_wire_with_the_local_model(local_backend, answered):
    """The judge's JSON schema is enforced end to end (served model, HTTP client): booleans come back."""
    server = make_server(local_backend, port=0, quiet=True).start()
    try:
        with OpenRouterBackend(server.base_url, retry_budget=120) as remote:
            verdict = judge_answer(answered, remote, gold="A reranker re-scores retrieved chunks.")
    finally:
        server.shutdown()
    assert isinstance(verdict["supported"], bool) and isinstance(verdict["correct"], bool)
    assert isinstance(verdict["reason"], str)


# -- the checks over the whole pipeline -----------------------------------------------------------

QUESTIONS = [
    question("r", "What does a reranker do?", ["05-reranking.md"], "It re-scores the retrieved chunks."),
    question("peru", "What is the capital of Peru?", answerable=False),
]


def test_answer_checks_on_the_demo_corpus(local_backend, demo_index):
    judge = ScriptedJudge(VERDICT)   # only the answered question is judged: one reply is enough
    checks = answer_checks(QUESTIONS, demo_index, local_backend, judge=judge, progress=False)
    assert list(checks.index) == ["r", "peru"]
    r, peru = checks.loc["r"], checks.loc["peru"]
    assert not r["refused"] and r["citations"] >= 1 and r["cites_relevant"] == 1.0
    assert 0 < r["citation_precision"] <= 1 and 0 <= r["token_f1"] <= 1 and r["seconds"] > 0
    assert r["judge_supported"] is True or r["judge_supported"] == 1
    assert peru["refused"] and peru["citations"] == 0 and np.isnan(peru["cites_relevant"])
    assert np.isnan(peru["token_f1"]) and np.isnan(peru["judge_supported"])
    assert len(judge.calls) == 1

    rates = answer_summary(checks)
    assert rates["answered"] == 1.0 and rates["refused when absent"] == 1.0
    assert rates["cites a relevant document"] == 1.0 and rates["judge: supported"] == 1.0
    assert rates["judge: correct"] == 0.0 and rates["token F1"] == r["token_f1"]


def test_answer_summary_by_hand():
    checks = pd.DataFrame([
        # answered, citing one relevant and one other document
        {"answerable": True, "refused": False, "cites_relevant": 1.0, "citation_precision": 0.5, "token_f1": 0.8},
        # answered with no citation at all: counts as not citing a relevant document
        {"answerable": True, "refused": False, "cites_relevant": np.nan, "citation_precision": np.nan,
         "token_f1": 0.4},
        # wrongly refused: scores 0 F1
        {"answerable": True, "refused": True, "cites_relevant": np.nan, "citation_precision": np.nan,
         "token_f1": 0.0},
        {"answerable": False, "refused": True, "cites_relevant": np.nan, "citation_precision": np.nan,
         "token_f1": np.nan},
        {"answerable": False, "refused": False, "cites_relevant": 0.0, "citation_precision": 0.0,
         "token_f1": np.nan},
    ])
    rates = answer_summary(checks)
    assert rates["questions"] == 5
    assert math.isclose(rates["answered"], 2 / 3)
    assert rates["cites a relevant document"] == 0.5
    assert rates["citation precision"] == 0.5
    assert rates["refused when absent"] == 0.5
    assert math.isclose(rates["token F1"], 0.4)
    assert "judge: supported" not in rates
