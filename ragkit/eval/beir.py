"""BEIR benchmark datasets (e.g. SciFact: scientific claims and the abstracts that hold their
evidence), from a local folder, or downloaded once by name into the cache, checked and unpacked safely.

>>> ds = load_beir("scifact")                        # doctest: +SKIP
>>> ds                                               # doctest: +SKIP
BeirDataset('scifact': 5183 documents, 300 queries, splits test (339 judgements))
>>> evaluate(ds.qrels["test"], my_run)               # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
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

from .. import config
from ..errors import DatasetError, DatasetUnavailable, DownloadFailed
from ..files import download
from ..types import Document
from .trec import read_qrels_tsv

__all__ = ["BEIR_MD5", "BEIR_URL", "BeirDataset", "load_beir"]

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
        folder = Path(cache_dir) if cache_dir else config.settings().cache_dir / "datasets"
        target = folder / name
        if not (target / "corpus.jsonl").is_file():
            _unpack(given, name, target, BEIR_MD5.get(name))
        return _read_beir(target, split, name=name)
    name = str(path_or_name)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name.endswith(".zip"):
        raise FileNotFoundError(f"{name} does not exist (working directory: {Path.cwd()}); pass a BEIR folder "
                                "(with corpus.jsonl) or a BEIR dataset name such as 'scifact'")
    folder = Path(cache_dir) if cache_dir else config.settings().cache_dir / "datasets"
    target = folder / name
    if not (target / "corpus.jsonl").is_file():
        url = f"{(base_url or BEIR_URL).rstrip('/')}/{name}.zip"
        _fetch(name, url, target, progress=progress, timeout=timeout)
    return _read_beir(target, split, name=name)


def _fetch(name: str, url: str, target: Path, progress: bool, timeout: float) -> None:
    """Download url into a temporary file next to target, check it and unpack it to target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".zip.part")
    os.close(fd)
    try:
        try:
            download(url, part, timeout=timeout, progress=progress, desc=f"downloading {name}")
        except DownloadFailed as err:
            if err.status is not None:
                hint = (f"; is {name!r} a BEIR dataset? known names: {', '.join(sorted(BEIR_MD5))}"
                        if err.status == 404 else "")
                raise DatasetUnavailable(f"cannot download {name} from {url}: HTTP {err.status}{hint}", url,
                                         err.reason) from None
            raise DatasetUnavailable(f"cannot download {name} from {url} (no network?): download it by hand "
                                     f"and pass the folder", url, err.reason) from None
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
