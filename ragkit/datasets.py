"""Datasets: corpora with questions and relevance judgements, to measure retrieval on.

- `load_beir`: a BEIR benchmark dataset (e.g. SciFact: scientific claims and the abstracts that
  hold their evidence), from a local folder, or downloaded once by name into the cache.
- `python_reference`: the Python Language Reference topics that ship with CPython, as Documents.
- `python_docstrings`: the docstrings of the public API of 29 standard-library modules, as Documents.
- `load_questions`: hand-written questions about a corpus (JSONL), and `questions_as_qrels` to
  score retrieval on them with `ragkit.evaluate`.
- `demo_corpus`: the short articles in the repository's `data/demo`.

>>> ds = load_beir("scifact")                        # doctest: +SKIP
>>> ds                                               # doctest: +SKIP
BeirDataset('scifact': 5183 documents, 300 queries, splits test (339 judgements))
>>> evaluate(ds.qrels["test"], my_run)               # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .cache import default_cache_dir, progress_bar
from .chunking import Document, load_documents
from .evaluate import read_qrels_tsv

__all__ = [
    "BEIR_MD5",
    "BEIR_URL",
    "BeirDataset",
    "DatasetError",
    "DatasetUnavailable",
    "Question",
    "STDLIB_MODULES",
    "demo_corpus",
    "load_beir",
    "load_questions",
    "python_docstrings",
    "python_reference",
    "questions_as_qrels",
]

# Where the BEIR authors publish their datasets, one zip per dataset, and the md5 of each zip:
# the "Available Datasets" table of the BEIR README (https://github.com/beir-cellar/beir#readme),
# whose download links are f"{BEIR_URL}/{name}.zip".
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
BEIR_MD5 = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}

REPO_DATA = Path(__file__).resolve().parent.parent / "data"


class DatasetError(ValueError):
    """A dataset file or archive is damaged, unsafe or not in the expected format."""


class DatasetUnavailable(OSError):
    """A dataset could not be downloaded (no network, or the server refused)."""

    def __init__(self, message: str, url: str = "", reason: str = ""):
        super().__init__(message)
        self.url = url
        self.reason = reason  # the underlying error, for debugging

    def __str__(self) -> str:
        return self.args[0]


# --------------------------------------------------------------------------------------------------
# BEIR


@dataclass(frozen=True, repr=False)
class BeirDataset:
    """A BEIR dataset: documents by id, query texts by id, and judgements (qrels) by split.

    `queries` holds the queries judged in the loaded split(s), in file order.
    """

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> {qid: {docid: grade}}
    path: Path | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        splits = ", ".join(f"{s} ({sum(map(len, q.values()))} judgements)" for s, q in self.qrels.items())
        return (f"BeirDataset({self.name!r}: {len(self.corpus)} documents, {len(self.queries)} queries, "
                f"splits {splits or 'none'})")

    def documents(self) -> list[Document]:
        """Return the corpus as a list of Documents, in file order (ready for `chunk_documents`)."""
        return list(self.corpus.values())


def load_beir(path_or_name: str | Path, split: str | Sequence[str] | None = "test",
              cache_dir: str | Path | None = None, base_url: str | None = None,
              progress: bool = True, timeout: float = 60.0) -> BeirDataset:
    """Return a BEIR dataset from a folder, a downloaded zip, or a name such as "scifact".

    A folder must hold `corpus.jsonl` (`{"_id", "title", "text"}` per line), `queries.jsonl`
    (`{"_id", "text"}`) and `qrels/{split}.tsv`. A name that is not an existing path is looked up
    in the cache (`cache_dir`, default `$RAGKIT_CACHE_DIR/datasets`); if it is not there,
    `{base_url}/{name}.zip` (default: the BEIR project's archive) is downloaded, checked (zip CRCs,
    the md5 BEIR publishes, no paths leaving the folder) and unpacked into the cache, atomically.
    `split` picks the qrels to load: a name, several, or None for all.

    Raises DatasetUnavailable when the download fails (e.g. offline), DatasetError for a bad archive.

    >>> ds = load_beir("scifact")                   # doctest: +SKIP
    >>> len(ds.corpus), len(ds.queries)             # doctest: +SKIP
    (5183, 300)
    """
    given = Path(path_or_name)
    if given.is_dir():
        return _read_beir(_dataset_root(given), split, name=given.name)
    if given.is_file():
        if given.suffix.lower() != ".zip":
            raise DatasetError(f"{given} is a file; pass a BEIR folder (with corpus.jsonl) or its .zip")
        name = given.stem
        folder = Path(cache_dir) if cache_dir else default_cache_dir() / "datasets"
        target = folder / name
        if not (target / "corpus.jsonl").is_file():
            _unpack(given, name, target, BEIR_MD5.get(name))
        return _read_beir(target, split, name=name)
    name = str(path_or_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name.endswith(".zip"):
        raise FileNotFoundError(f"{name} does not exist (working directory: {Path.cwd()}); pass a BEIR folder "
                                "(with corpus.jsonl) or a BEIR dataset name such as 'scifact'")
    folder = Path(cache_dir) if cache_dir else default_cache_dir() / "datasets"
    target = folder / name
    if not (target / "corpus.jsonl").is_file():
        url = f"{(base_url or BEIR_URL).rstrip('/')}/{name}.zip"
        _fetch(name, url, target, progress=progress, timeout=timeout)
    return _read_beir(target, split, name=name)


def _fetch(name: str, url: str, target: Path, progress: bool, timeout: float) -> None:
    """Download url into a temporary file next to target, check it and unpack it to target."""
    import httpx

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".zip.part")
    offline = f"cannot download {name} from {url} (no network?): download it by hand and pass the folder"
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
                    if response.status_code != 200:
                        hint = (f"; is {name!r} a BEIR dataset? known names: {', '.join(sorted(BEIR_MD5))}"
                                if response.status_code == 404 else "")
                        raise DatasetUnavailable(f"cannot download {name} from {url}: HTTP "
                                                 f"{response.status_code}{hint}", url, f"HTTP {response.status_code}")
                    total = int(response.headers.get("content-length") or 0) or None
                    bar = progress_bar(progress, total, f"downloading {name}", "B", unit_scale=True)
                    try:
                        for chunk in response.iter_bytes(1 << 20):
                            out.write(chunk)
                            if bar is not None:
                                bar.update(len(chunk))
                    finally:
                        if bar is not None:
                            bar.close()
            except httpx.HTTPError as err:  # connection refused, DNS, timeout, cut-off body
                raise DatasetUnavailable(offline, url, f"{type(err).__name__}: {err}") from None
        _unpack(Path(part), name, target, BEIR_MD5.get(name), source=url)
    finally:
        Path(part).unlink(missing_ok=True)


def _unpack(archive: Path, name: str, target: Path, md5: str | None, source: str | None = None) -> None:
    """Check a zip (md5 if known, CRCs, safe paths) and move its dataset folder to target atomically."""
    source = source or str(archive)
    if md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        with archive.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != md5:
            raise DatasetError(f"{name}.zip from {source} has md5 {digest.hexdigest()}, but BEIR publishes "
                               f"{md5}: the download is damaged or not the BEIR file; try again")
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member(info, name)
            bad = zf.testzip()
            if bad is not None:
                raise DatasetError(f"{name}.zip from {source} is damaged ({bad!r} fails its CRC check); "
                                   "delete it and download again")
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}.unpack-"))
            try:
                zf.extractall(scratch)
                try:
                    root = _dataset_root(scratch)
                except DatasetError as err:
                    raise DatasetError(f"{name}.zip from {source} is not a BEIR dataset: "
                                       f"{str(err).replace(str(scratch), 'the archive')}") from None
                try:
                    os.replace(root, target)  # atomic: target is either absent or complete
                except OSError:
                    if not (target / "corpus.jsonl").is_file():  # else another process got there first
                        raise DatasetError(f"cannot move the unpacked {name} to {target}: it exists but has "
                                           "no corpus.jsonl; delete that folder and try again") from None
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError) as err:
        raise DatasetError(f"{name}.zip from {source} is not a readable zip archive ({err}); "
                           "delete it and download again") from None


def _check_member(info: zipfile.ZipInfo, name: str) -> None:
    """Refuse archive members that would land outside the folder: absolute, '..', drives, symlinks."""
    path = info.filename.replace("\\", "/")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise DatasetError(f"{name}.zip holds {info.filename!r}, a path outside the dataset folder; "
                           "refusing to unpack it")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetError(f"{name}.zip holds a symbolic link {info.filename!r}; refusing to unpack it")


def _dataset_root(folder: Path) -> Path:
    """Return the folder holding corpus.jsonl: folder itself or its one subfolder that does."""
    if (folder / "corpus.jsonl").is_file():
        return folder
    inside = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "corpus.jsonl").is_file()
                    and not p.name.startswith(("__MACOSX", ".")))
    if len(inside) == 1:
        return inside[0]
    if inside:
        raise DatasetError(f"{folder} holds several datasets ({', '.join(p.name for p in inside)}); "
                           "pass one of those folders")
    raise DatasetError(f"{folder} has no corpus.jsonl; a BEIR folder holds corpus.jsonl, queries.jsonl "
                       "and qrels/<split>.tsv")


def _jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a JSON-lines file."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or "_id" not in row:
                raise DatasetError(f"{path}:{number}: expected an object with an '_id'")
            yield number, row


def _text(row: dict, key: str, path: Path, number: int) -> str:
    value = row.get(key) or ""
    if not isinstance(value, str):
        raise DatasetError(f"{path}:{number}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _read_beir(folder: Path, split, name: str) -> BeirDataset:
    corpus: dict[str, Document] = {}
    path = folder / "corpus.jsonl"
    for number, row in _jsonl(path):
        docid = str(row["_id"])
        if docid in corpus:
            raise DatasetError(f"{path}:{number}: document id {docid!r} appears twice")
        corpus[docid] = Document(docid, _text(row, "text", path, number), title=_text(row, "title", path, number),
                                 source=f"{name}:{docid}")

    available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    splits = available if split is None else [split] if isinstance(split, str) else list(split)
    for s in splits:
        if s not in available:
            raise DatasetError(f"{folder} has no qrels/{s}.tsv; its splits are: {', '.join(available) or 'none'}")
    qrels = {s: read_qrels_tsv(folder / "qrels" / f"{s}.tsv") for s in splits}

    judged = {q for s in qrels.values() for q in s}
    queries: dict[str, str] = {}
    path = folder / "queries.jsonl"
    for number, row in _jsonl(path):
        qid = str(row["_id"])
        if split is None or qid in judged:
            queries[qid] = _text(row, "text", path, number)
    missing_q = judged - queries.keys()
    missing_d = {d for s in qrels.values() for j in s.values() for d in j} - corpus.keys()
    if missing_q or missing_d:
        warnings.warn(f"{folder}: the qrels judge {len(missing_q)} queries missing from queries.jsonl and "
                      f"{len(missing_d)} documents missing from corpus.jsonl", stacklevel=3)
    return BeirDataset(name, corpus, queries, qrels, path=folder)


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
    every relevant id must be a document of it. Default path: the repository's
    `data/python-reference/questions.jsonl`.

    >>> questions = load_questions(corpus=python_reference())          # doctest: +SKIP
    >>> questions[0].relevant                                          # doctest: +SKIP
    ('assert',)
    """
    path = Path(path) if path is not None else REPO_DATA / "python-reference" / "questions.jsonl"
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
    """Return qrels {question id: {doc id: 1}} for the answerable questions, for `ragkit.evaluate`.

    >>> questions_as_qrels([Question("q1", "What does assert do?", ("assert",), "...", True, "easy")])
    {'q1': {'assert': 1}}
    """
    return {q.id: {d: 1 for d in q.relevant} for q in questions if q.answerable}


# --------------------------------------------------------------------------------------------------
# The demo corpus


def demo_corpus() -> list[Document]:
    """Return the repository's demo articles (`data/demo`), one Document per file.

    >>> [d.id for d in demo_corpus()][:2]
    ['01-what-is-rag.md', '02-chunking.md']
    """
    folder = REPO_DATA / "demo"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: the demo corpus ships with the ragkit repository; "
                                "run from a clone (pip install -e .)")
    return load_documents(folder)
