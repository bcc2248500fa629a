"""The labelled question set over the standard library's docstrings (data/python-stdlib), and its corpus.

Fast and model-free. The corpus, `ragkit.datasets.python_docstrings()`, is deterministic, public names
only, and each module's own objects only. The question file follows the schema of the
python-reference set, has the documented counts (105 answerable questions, 54 easy and 51 hard, and
13 unanswerable ones), every label names a document of the installed Python, and each gold answer is
made of words that the labelled documents contain (a check that the labels point at the right text).
"""
from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from test_questions import FIELDS, answer_coverage, content_words

from ragkit.datasets import STDLIB_MODULES, load_questions, python_docstrings, questions_as_qrels

QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "python-stdlib" / "questions.jsonl"

ANSWERABLE, EASY, HARD, UNANSWERABLE = 105, 54, 51, 13
MIN_MODULES = 25  # modules of STDLIB_MODULES that some question is about
MIN_COVERAGE = 0.8  # share of a gold answer's content words found in its relevant documents


@pytest.fixture(scope="module")
def docs():
    return python_docstrings()


@pytest.fixture(scope="module")
def corpus(docs) -> dict[str, str]:
    """Document id -> what the retrievers read of it: the title (id and signature), then the text."""
    return {d.id: f"{d.title}\n{d.text}" for d in docs}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with QUESTIONS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _answerable(rows):
    return [q for q in rows if q["answerable"]]


def _resolve(source: str):
    """The module and the top-level object named by a document's source, "module:Class.member"."""
    module_name, qualname = source.split(":")
    module = importlib.import_module(module_name)
    return module, getattr(module, qualname.split(".")[0])


# --------------------------------------------------------------------------------------------------
# The corpus


def test_corpus_is_sorted_unique_and_deterministic(docs):
    ids = [d.id for d in docs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({d.text for d in docs}) == len(docs)  # one document per docstring
    assert python_docstrings() == docs
    assert all(d.text.strip() and d.title.startswith(d.id) for d in docs)
    if sys.version_info[:2] == (3, 11):
        assert len(docs) == 775  # the count the loader's docstring gives


def test_corpus_covers_every_module(docs):
    covered = {d.source.split(":")[0] for d in docs}
    assert covered == set(STDLIB_MODULES)


def test_corpus_has_the_public_api(docs):
    by_id = {d.id: d for d in docs}
    dumps = by_id["json.dumps"]
    import json as json_module

    assert dumps.title == f"json.dumps{inspect.signature(json_module.dumps)}"
    assert dumps.text == inspect.getdoc(json_module.dumps)
    assert dumps.source == "json:dumps"
    for docid in ("json.JSONDecoder", "heapq.heappush", "os.path.exists", "pathlib.PurePath.parent",
                  "collections.deque.popleft", "random.randint", "tarfile.open"):
        assert docid in by_id, docid
    # The same docstring under two names is kept once, under the shorter one
    assert "random.Random.randint" not in by_id and "tarfile.TarFile.open" not in by_id


def test_corpus_skips_private_names(docs):
    assert not [d.id for d in docs if any(part.startswith("_") for part in d.id.split("."))]


def test_corpus_skips_names_imported_from_other_modules(docs):
    imported = {"statistics.sqrt", "functools.namedtuple", "calendar.repeat", "logging.Template", "zipfile.crc32",
                "argparse.gettext", "pathlib.Sequence", "urllib.parse.namedtuple"}
    assert not imported & {d.id for d in docs}
    for d in docs:
        module, obj = _resolve(d.source)
        homes = {module.__name__, "_" + module.__name__.rsplit(".", 1)[-1], "genericpath"}
        home = obj.__module__
        assert home in homes or home.startswith(f"{module.__name__}."), (d.id, home)
        assert home != "genericpath" or module.__name__ in {"posixpath", "ntpath"}, d.id


# --------------------------------------------------------------------------------------------------
# The questions


def test_file_loads_against_the_corpus(rows, docs):
    questions = load_questions(QUESTIONS, corpus=docs)  # raises if a label is not a document
    assert [q.id for q in questions] == [r["id"] for r in rows]
    assert len(questions_as_qrels(questions)) == ANSWERABLE


def test_schema(rows):
    for q in rows:
        assert set(q) == set(FIELDS), q.get("id")
        for field, kind in FIELDS.items():
            assert isinstance(q[field], kind), (q["id"], field)
        assert re.fullmatch(r"q\d{3}", q["id"]), q["id"]
        assert q["question"].strip().endswith("?"), q["id"]
        assert q["difficulty"] in {"easy", "hard"}, q["id"]
        assert len(set(q["relevant"])) == len(q["relevant"]), q["id"]


def test_ids_and_questions_unique(rows):
    assert not [i for i, n in Counter(q["id"] for q in rows).items() if n > 1]
    assert not [t for t, n in Counter(q["question"].strip().lower() for q in rows).items() if n > 1]


def test_counts(rows):
    answerable = _answerable(rows)
    assert len(answerable) == ANSWERABLE
    assert sum(q["difficulty"] == "easy" for q in answerable) == EASY
    assert sum(q["difficulty"] == "hard" for q in answerable) == HARD
    assert len(rows) - len(answerable) == UNANSWERABLE
    modules = {m for q in answerable for d in q["relevant"] for m in STDLIB_MODULES if d.startswith(f"{m}.")}
    assert len(modules) >= MIN_MODULES


def test_answerable_have_answers_and_labels(rows):
    for q in _answerable(rows):
        assert q["relevant"] and content_words(q["answer"]), q["id"]


def test_unanswerable_are_empty(rows):
    for q in rows:
        if not q["answerable"]:
            assert q["relevant"] == [] and q["answer"] == "", q["id"]


def test_gold_answers_are_grounded_in_relevant_docstrings(rows, corpus):
    """At least 80% of each gold answer's content words occur in its labelled documents."""
    failures = []
    for q in _answerable(rows):
        coverage, missing = answer_coverage(q["answer"], [corpus[d] for d in q["relevant"]])
        if coverage < MIN_COVERAGE:
            failures.append((q["id"], round(coverage, 2), missing))
    assert not failures


def test_grounding_check_rejects_wrong_labels(rows, corpus):
    """The check has teeth: with each question's labels swapped for another question's (a rotation,
    skipping label sets that overlap), most answers are no longer grounded."""
    answerable = _answerable(rows)
    passed = tried = 0
    for i, q in enumerate(answerable):
        for shift in range(len(answerable) // 2, len(answerable)):
            other = answerable[(i + shift) % len(answerable)]
            if not set(other["relevant"]) & set(q["relevant"]):
                break
        else:  # pragma: no cover - needs a pathological data set
            continue
        tried += 1
        coverage, _ = answer_coverage(q["answer"], [corpus[d] for d in other["relevant"]])
        passed += coverage >= MIN_COVERAGE
    assert tried >= ANSWERABLE // 2
    assert passed / tried < 0.25, f"{passed}/{tried} answers still look grounded under wrong labels"
