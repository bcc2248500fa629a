"""The workbook's labelled sets: corpora shipped with Python or ragkit, and questions written for them.

- `python_reference`: the Python Language Reference topics that ship with CPython, as Documents.
- `python_docstrings`: the docstrings of the public API of 29 standard-library modules, as Documents.
- `load_questions`: hand-written questions about a corpus (JSONL), and `questions_as_qrels` to
  score retrieval on them with `ragkit.eval.metrics`.
- `demo_corpus`: the short articles about RAG shipped in the package (`ragkit/data/demo`).
- `load_beir` (from `ragkit.eval.beir`): a BEIR benchmark dataset, from a folder or downloaded.

>>> [d.id for d in demo_corpus()][:2]
['01-what-is-rag.md', '02-chunking.md']
"""
from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import packaged_data
from ..documents import load_documents
from ..types import Document
from .beir import BEIR_MD5, BEIR_URL, BeirDataset, load_beir

__all__ = [
    "BEIR_MD5", "BEIR_URL", "BeirDataset", "QUESTION_SETS", "Question", "STDLIB_MODULES", "demo_corpus", "load_beir",
    "load_questions", "python_docstrings", "python_reference", "questions_as_qrels",
]

# The labelled question sets shipped in the package (ragkit/data/NAME/questions.jsonl).
QUESTION_SETS = ("python-reference", "python-stdlib")


# --------------------------------------------------------------------------------------------------
# The Python Language Reference, as shipped with CPython


def python_reference() -> list[Document]:
    """Return the Python Language Reference topics bundled with CPython, one Document per topic.

    They are the pages `help("assert")` shows (module `pydoc_data.topics`, PSF licence; 79 topics
    on Python 3.11), sorted by key: id = the key, title = the topic's first line.

    >>> doc = next(d for d in python_reference() if d.id == "assert")
    >>> doc.title, doc.source
    ('The "assert" statement', 'pydoc_data.topics:assert')
    """
    from pydoc_data.topics import topics

    return [Document(key, topics[key], title=topics[key].strip().splitlines()[0].strip(),
                     source=f"pydoc_data.topics:{key}")
            for key in sorted(topics) if topics[key].strip()]


# --------------------------------------------------------------------------------------------------
# The standard library's docstrings, as shipped with CPython

# Pure-Python (or C-accelerated) modules whose API has been stable from Python 3.10 to 3.13.
STDLIB_MODULES = (
    "argparse", "base64", "bisect", "calendar", "collections", "csv", "datetime", "difflib", "fnmatch",
    "functools", "glob", "hashlib", "heapq", "itertools", "json", "logging", "os.path", "pathlib", "random",
    "re", "shutil", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "urllib.parse",
    "zipfile",
)
# Where a module's own objects may say they were defined, besides the module itself and its
# submodules: its C accelerator ("_csv" for csv), and for os.path (posixpath or ntpath) genericpath.
_ALSO_DEFINED_IN = {"os.path": ("genericpath",)}


def python_docstrings(modules: Sequence[str] = STDLIB_MODULES) -> list[Document]:
    """Return the API documentation of standard-library modules, one Document per docstring.

    What `help(json.dumps)` shows, for the public functions and classes of each module (default:
    `STDLIB_MODULES`, 29 modules) and the public methods and properties of those classes: id =
    "module.name" ("json.dumps", "pathlib.PurePath.parent"), title = the id and its signature when
    `inspect.signature` can read one, text = the object's own docstring, cleaned as `inspect.getdoc`
    does. Left out: private names (a leading "_"), names a module imports from another (its
    `__module__` is not the module, a submodule or its C accelerator), objects without a docstring of
    their own, and a docstring already given under a shorter id (`random.randint`, not also
    `random.Random.randint`). Sorted by id; 775 documents on Python 3.11 (774 on 3.10, 783 on 3.12,
    766 on 3.13), PSF licence, read from the installed Python.

    >>> docs = python_docstrings()
    >>> doc = next(d for d in docs if d.id == "json.dumps")
    >>> doc.title[:len("json.dumps(obj, *, skipkeys=False")], doc.source, doc.text.splitlines()[0]
    ('json.dumps(obj, *, skipkeys=False', 'json:dumps', 'Serialize ``obj`` to a JSON formatted ``str``.')
    """
    found: dict[str, tuple[str, str, str]] = {}  # id -> (title, text, source)
    for name in modules:
        module = importlib.import_module(name)
        homes = (module.__name__, f"_{module.__name__.rsplit('.', 1)[-1]}", *_ALSO_DEFINED_IN.get(name, ()))
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            home = getattr(obj, "__module__", None) or ""
            if not any(home == h or home.startswith(f"{h}.") for h in homes):
                continue
            _add_docstring(found, name, attr, obj)
            if inspect.isclass(obj):
                for member, raw in sorted(vars(obj).items()):
                    if not member.startswith("_") and (inspect.isroutine(raw) or inspect.isdatadescriptor(raw)):
                        described = raw if inspect.isdatadescriptor(raw) else getattr(obj, member)
                        _add_docstring(found, name, f"{attr}.{member}", described)
    by_text: dict[str, str] = {}  # the same docstring under two names: keep the shorter id
    for docid in sorted(found, key=lambda d: (len(d), d)):
        by_text.setdefault(found[docid][1], docid)
    return [Document(docid, found[docid][1], title=found[docid][0], source=found[docid][2])
            for docid in sorted(by_text.values())]


def _add_docstring(found: dict, module: str, qualname: str, obj) -> None:
    """Note obj's documentation under "module.qualname" if it has a docstring of its own."""
    own = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__  # a class's own, not inherited
    if not isinstance(own, str) or not own.strip():
        return
    docid = f"{module}.{qualname}"
    title = docid
    if not inspect.isdatadescriptor(obj):
        try:
            signature = str(inspect.signature(obj))
        except (TypeError, ValueError):  # many builtins have no signature
            signature = ""
        if " at 0x" not in signature:  # a sentinel's repr would change from run to run
            title += signature
    found.setdefault(docid, (title, inspect.cleandoc(own), f"{module}:{qualname}"))


# --------------------------------------------------------------------------------------------------
# Hand-written questions


@dataclass(frozen=True)
class Question:
    """A question about a corpus, the ids of the documents that answer it, and the expected answer."""

    id: str
    question: str
    relevant: tuple[str, ...]  # ids of the documents that hold the answer
    answer: str
    answerable: bool  # False: the corpus does not say; a good system should decline
    difficulty: str


_QUESTION_TYPES = {"id": str, "question": str, "relevant": list, "answer": str, "answerable": bool,
                   "difficulty": str}


def load_questions(path: str | Path | None = None, corpus: Iterable[Document] | None = None) -> list[Question]:
    """Return the questions of a JSONL file, checked: one object per line with keys
    id, question, relevant (list of doc ids), answer, answerable, difficulty.

    Ids must be unique and an answerable question must name a relevant document; with `corpus`,
    every relevant id must be a document of it. `path` is a file, or the name of a set shipped in the
    package (`QUESTION_SETS`: "python-reference", the default, or "python-stdlib").

    >>> len(load_questions("python-stdlib"))
    118

    >>> questions = load_questions(corpus=python_reference())          # doctest: +SKIP
    >>> questions[0].relevant                                          # doctest: +SKIP
    ('assert',)
    """
    if path is None or path in QUESTION_SETS:
        path = packaged_data(path or QUESTION_SETS[0], "questions.jsonl")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (working directory: {Path.cwd()})")
    known = {d.id for d in corpus} if corpus is not None else None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in _QUESTION_TYPES if k not in row]
            if missing:
                raise ValueError(f"{where}: missing {', '.join(map(repr, missing))}; each line needs "
                                 f"{', '.join(_QUESTION_TYPES)}")
            for key, kind in _QUESTION_TYPES.items():
                if not isinstance(row[key], kind):
                    raise ValueError(f"{where}: {key!r} must be a {kind.__name__}, got {type(row[key]).__name__} "
                                     f"{row[key]!r}")
            qid, relevant = row["id"], row["relevant"]
            if not qid.strip() or not row["question"].strip():
                raise ValueError(f"{where}: 'id' and 'question' must not be empty")
            if qid in seen:
                raise ValueError(f"{where}: id {qid!r} is already used on line {seen[qid]}; ids must be unique")
            seen[qid] = number
            if not all(isinstance(d, str) and d for d in relevant):
                raise ValueError(f"{where}: 'relevant' must be a list of document ids (non-empty strings)")
            if len(set(relevant)) != len(relevant):
                raise ValueError(f"{where}: 'relevant' lists a document twice: {relevant}")
            if row["answerable"] and not relevant:
                raise ValueError(f"{where}: question {qid!r} is answerable but lists no relevant document")
            if known is not None and (unknown := [d for d in relevant if d not in known]):
                raise ValueError(f"{where}: question {qid!r} names documents not in the corpus: {unknown}")
            questions.append(Question(qid, row["question"], tuple(relevant), row["answer"], row["answerable"],
                                      row["difficulty"]))
    return questions


def questions_as_qrels(questions: Iterable[Question]) -> dict[str, dict[str, int]]:
    """Return qrels {question id: {doc id: 1}} for the answerable questions, for `ragkit.eval.metrics`.

    >>> questions_as_qrels([Question("q1", "What does assert do?", ("assert",), "...", True, "easy")])
    {'q1': {'assert': 1}}
    """
    return {q.id: {d: 1 for d in q.relevant} for q in questions if q.answerable}


# --------------------------------------------------------------------------------------------------
# The demo corpus


def demo_corpus() -> list[Document]:
    """Return the demo articles shipped in the package (`ragkit/data/demo`), one Document per file.

    >>> [d.id for d in demo_corpus()][:2]
    ['01-what-is-rag.md', '02-chunking.md']
    """
    return load_documents(packaged_data("demo"))
