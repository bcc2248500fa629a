"""The standard library's docstrings (`ragkit.eval.datasets.python_docstrings`) and the question set over
them (ragkit/data/python-stdlib).

Fast and model-free. The corpus is deterministic, public names only, and each module's own objects
only; the questions load against it with the documented counts (105 answerable, 54 easy and 51 hard,
13 unanswerable) over most of the modules. Schema, labels and grounded gold answers are checked for
both question sets in test_questions.py.
"""
from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path

import pytest

from ragkit.eval.datasets import STDLIB_MODULES, load_questions, python_docstrings, questions_as_qrels

QUESTIONS = Path(__file__).resolve().parent.parent / "ragkit" / "data" / "python-stdlib" / "questions.jsonl"

ANSWERABLE, EASY, HARD, UNANSWERABLE = 105, 54, 51, 13
MIN_MODULES = 25  # modules of STDLIB_MODULES that some question is about


@pytest.fixture(scope="module")
def docs():
    return python_docstrings()


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


def test_counts(rows):
    answerable = _answerable(rows)
    assert len(answerable) == ANSWERABLE
    assert sum(q["difficulty"] == "easy" for q in answerable) == EASY
    assert sum(q["difficulty"] == "hard" for q in answerable) == HARD
    assert len(rows) - len(answerable) == UNANSWERABLE
    modules = {m for q in answerable for d in q["relevant"] for m in STDLIB_MODULES if d.startswith(f"{m}.")}
    assert len(modules) >= MIN_MODULES
