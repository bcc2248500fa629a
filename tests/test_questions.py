"""The labelled question sets: ragkit/data/python-reference (Language Reference topics) and ragkit/data/python-stdlib
(standard-library docstrings; its corpus is tested in test_stdlib_questions.py).

Fast and model-free: each file parses, follows the schema, every label names a document of the
installed Python, each gold answer is made of words that the labelled documents actually contain (a
check that the labels point at the right text), and its README's counts are current. The reference
set also meets the minimum counts below.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "ragkit" / "data"
QUESTIONS = DATA / "python-reference" / "questions.jsonl"

MIN_ANSWERABLE = 70
MIN_HARD = 25
MIN_UNANSWERABLE = 12
MIN_TOPICS = 40
MIN_COVERAGE = 0.8  # share of a gold answer's content words found in its relevant topics

FIELDS = {"id": str, "question": str, "relevant": list, "answer": str, "answerable": bool, "difficulty": str}

STOP_WORDS = frozenset("""
a about above after again against all also an and any are as at be because been before being below
between both but by can could did do does doing down during each either else etc even ever every few
for from further had has have having here how however i if in into is it its itself just like may
might more most much must no nor not now of off often on once one only or other otherwise our out
over own per rather same should since so some such than that the their them then there these they
this those through thus to too under until up upon us very via was we were what when where whether
use which while who whom whose why will with within without would yes yet you your
""".split())


def _stem(word: str) -> str:
    """Crude plural folding, so that 'arguments' matches 'argument' and 'binds' matches 'bind'."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased words of two or more characters (identifiers like __init__ kept), stop words removed."""
    words = re.findall(r"[a-z0-9_]+", text.lower())
    return [_stem(w) for w in words if len(w) >= 2 and w not in STOP_WORDS]


def answer_coverage(answer: str, texts: list[str]) -> tuple[float, list[str]]:
    """Fraction of the answer's distinct content words present in the union of ``texts``."""
    wanted = sorted(set(content_words(answer)))
    if not wanted:
        return 0.0, []
    vocabulary: set[str] = set()
    for text in texts:
        vocabulary.update(content_words(text))
    missing = [w for w in wanted if w not in vocabulary]
    return 1 - len(missing) / len(wanted), missing


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:  # pragma: no cover - reported by the test
                    raise AssertionError(f"line {number} is not JSON: {error}") from error
    return rows


def _reference_topics() -> dict[str, str]:
    from pydoc_data.topics import topics as reference

    return reference


def _stdlib_docstrings() -> dict[str, str]:
    """Document id -> what the retrievers read of it: the title (id and signature), then the text."""
    from ragkit.eval.datasets import python_docstrings

    return {d.id: f"{d.title}\n{d.text}" for d in python_docstrings()}


# each set: its folder under data/, and {document id: text} of the corpus it labels
SETS = {"python-reference": _reference_topics, "python-stdlib": _stdlib_docstrings}


@dataclass(frozen=True)
class Labelled:
    name: str
    rows: list[dict]
    texts: dict[str, str]


@pytest.fixture(scope="module", params=sorted(SETS))
def labelled(request) -> Labelled:
    return Labelled(request.param, load_questions(DATA / request.param / "questions.jsonl"), SETS[request.param]())


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return load_questions()


@pytest.fixture(scope="module")
def topics() -> dict[str, str]:
    return _reference_topics()


def _answerable(questions):
    return [q for q in questions if q["answerable"]]


def test_file_parses_and_is_not_empty(labelled):
    assert labelled.rows


def test_schema(labelled):
    for q in labelled.rows:
        assert set(q) == set(FIELDS), q.get("id")
        for field, kind in FIELDS.items():
            assert isinstance(q[field], kind), (q["id"], field)
        assert re.fullmatch(r"q\d{3}", q["id"]), q["id"]
        assert q["question"].strip().endswith("?"), q["id"]
        assert q["difficulty"] in {"easy", "hard"}, q["id"]
        assert all(isinstance(key, str) for key in q["relevant"]), q["id"]
        assert len(set(q["relevant"])) == len(q["relevant"]), q["id"]


def test_ids_and_questions_unique(labelled):
    ids = Counter(q["id"] for q in labelled.rows)
    assert not [i for i, n in ids.items() if n > 1]
    texts = Counter(q["question"].strip().lower() for q in labelled.rows)
    assert not [t for t, n in texts.items() if n > 1]


def test_relevant_keys_exist(labelled):
    unknown = {(q["id"], key) for q in labelled.rows for key in q["relevant"] if key not in labelled.texts}
    assert not unknown


def test_counts(questions):
    answerable = _answerable(questions)
    assert len(answerable) >= MIN_ANSWERABLE
    assert sum(q["difficulty"] == "hard" for q in answerable) >= MIN_HARD
    assert sum(not q["answerable"] for q in questions) >= MIN_UNANSWERABLE
    assert len({key for q in answerable for key in q["relevant"]}) >= MIN_TOPICS


def test_answerable_have_answers_and_labels(labelled):
    for q in _answerable(labelled.rows):
        assert q["answer"].strip(), q["id"]
        assert q["relevant"], q["id"]
        assert content_words(q["answer"]), q["id"]


def test_unanswerable_are_empty(labelled):
    for q in labelled.rows:
        if not q["answerable"]:
            assert q["relevant"] == [] and q["answer"] == "", q["id"]


def test_gold_answers_are_grounded_in_relevant_documents(labelled):
    """At least 80% of each gold answer's content words occur in its labelled documents."""
    failures = []
    for q in _answerable(labelled.rows):
        coverage, missing = answer_coverage(q["answer"], [labelled.texts[key] for key in q["relevant"]])
        if coverage < MIN_COVERAGE:
            failures.append((q["id"], round(coverage, 2), missing))
    assert not failures


def test_grounding_check_rejects_wrong_labels(labelled):
    """Sanity check of the check itself: with every question's labels swapped for another
    question's (a rotation, skipping label sets that overlap), most answers are no longer grounded."""
    answerable = _answerable(labelled.rows)
    passed = tried = 0
    for i, q in enumerate(answerable):
        for shift in range(len(answerable) // 2, len(answerable)):
            other = answerable[(i + shift) % len(answerable)]
            if not set(other["relevant"]) & set(q["relevant"]):
                break
        else:  # pragma: no cover - needs a pathological data set
            continue
        tried += 1
        coverage, _ = answer_coverage(q["answer"], [labelled.texts[key] for key in other["relevant"]])
        passed += coverage >= MIN_COVERAGE
    assert tried >= len(answerable) // 2
    assert passed / tried < 0.25, f"{passed}/{tried} answers still look grounded under wrong labels"


def test_readme_counts_are_current(labelled):
    """The README's table of counts describes the file as it is."""
    readme = (DATA / labelled.name / "README.md").read_text(encoding="utf-8")
    questions = labelled.rows
    answerable = _answerable(questions)
    easy = sum(q["difficulty"] == "easy" for q in answerable)
    assert f"| questions | {len(questions)} |" in readme
    assert f"| answerable | {len(answerable)} ({easy} easy, {len(answerable) - easy} hard) |" in readme
    assert f"| unanswerable | {len(questions) - len(answerable)} |" in readme
