"""An index folder on disk: three files, saved all or nothing, every byte checked when read.

    index.json      what the index is: model, dimension, count, and the sha256 of each file below
    vectors.npy     the float32 unit vectors, one row per chunk (numpy's format, never a pickle)
    chunks.jsonl    the chunks, one JSON object a line, in the same order

- A save writes the new files beside the old ones (`.vectors.npy.pending`, ...), then the new
  index.json (`.index.json.pending`, written whole and renamed into place: the moment the new index
  exists), then renames them over the old files. Killed before that moment, the old index is intact;
  after it, the next read (or save) finishes the renames. Readers never see half a save.
- A save holds the folder's lock (`.lock`), so two writers never interleave: the second waits up
  to `wait` seconds, then gets `IndexBusy`.
- A read checks index.json's own checksum, each file's sha256, then every field of every chunk:
  anything else than what `save_index` writes is an `IndexFileError` that says how to rebuild.

>>> save_index(tmp_path / "idx", vectors, chunks, "local/all-MiniLM-L6-v2-int8")   # doctest: +SKIP
>>> vectors, chunks, model = load_index(tmp_path / "idx")                           # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import time
import warnings
from contextlib import contextmanager
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import IndexBusy, IndexFileError
from .files import Locked, atomic_write, file_lock
from .types import Chunk

__all__ = ["DATA_FILES", "FILES", "FORMAT", "VERSION", "folder_state", "load_index", "remove_index", "save_index",
           "writing"]

FORMAT = "ragkit-index"
VERSION = 2  # 1: the checksum covered the vectors only
DATA_FILES = ("vectors.npy", "chunks.jsonl")
FILES = ("index.json", *DATA_FILES)
_TYPES = {"str": str, "int": int}
_CHUNK_FIELDS = {f.name: (_TYPES[f.type], f.default is MISSING) for f in fields(Chunk)}


def rebuild_hint(folder: Path) -> str:
    """Return the command that rebuilds the index in `folder`."""
    return f"rebuild it: ragkit index YOUR_DOCS --index {shlex.quote(str(folder))}"


def damaged(folder: Path, what: str) -> IndexFileError:
    return IndexFileError(f"the index at {folder} is damaged: {what}; {rebuild_hint(folder)}")


@contextmanager
def writing(folder: str | Path, wait: float = 60.0) -> Iterator[None]:
    """Hold the folder's write lock while the block runs (made if missing); `IndexBusy` if another
    process still holds it after `wait` seconds. Re-entrant in one thread."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with file_lock(folder / ".lock", wait):
            yield
    except Locked as exc:
        who = f"ragkit (process {exc.holder})" if exc.holder else "ragkit"
        raise IndexBusy(f"another {who} is writing the index at {folder}; wait until it is done, or write "
                        f"to another folder (--index)") from None


def folder_state(folder: str | Path) -> str:
    """Return what a folder holds: "missing", "empty" (dot files aside), "index" (an index.json, or a save
    to finish), "partial" (index files without index.json) or "other" (files that are not an index)."""
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    names = {p.name for p in folder.iterdir()}
    if "index.json" in names or ".index.json.pending" in names:
        return "index"
    if names & set(DATA_FILES):
        return "partial"
    return "other" if any(not n.startswith(".") for n in names) else "empty"


def save_index(folder: str | Path, vectors: np.ndarray, chunks: Sequence[Chunk], model: str,
               wait: float = 60.0) -> Path:
    """Write an index to `folder`, all or nothing (see the module docstring); return the folder."""
    folder = Path(folder)
    with writing(folder, wait):
        finish_save(folder)
        sums = {}
        with atomic_write(folder / ".vectors.npy.pending", "wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        with atomic_write(folder / ".chunks.jsonl.pending", "wb") as f:
            for c in chunks:
                f.write((json.dumps(asdict(c), ensure_ascii=False) + "\n").encode("utf-8"))
        for name in DATA_FILES:
            sums[name] = _sha256_file(folder / f".{name}.pending")
        meta = {"format": FORMAT, "version": VERSION, "model": model, "dim": int(vectors.shape[1]),
                "count": len(chunks), "files": sums}
        meta["checksum"] = _meta_checksum(meta)
        with atomic_write(folder / ".index.json.pending") as f:  # the new index exists from here on
            f.write(json.dumps(meta, indent=2) + "\n")
        finish_save(folder)
    return folder


def finish_save(folder: Path) -> None:
    """Finish a save that was stopped after its index.json was written (nothing to do otherwise)."""
    marker = folder / ".index.json.pending"
    if not marker.exists():
        return
    try:
        for name in DATA_FILES:
            _replace(folder / f".{name}.pending", folder / name)
        _replace(marker, folder / "index.json")
    except OSError as exc:
        raise IndexFileError(f"a save of the index at {folder} was interrupted and cannot be finished "
                             f"({exc}); {rebuild_hint(folder)} (with write access to the folder)") from None


def _replace(source: Path, target: Path) -> None:
    try:
        os.replace(source, target)
    except FileNotFoundError:  # already renamed, by another reader finishing the same save
        pass


def remove_index(folder: str | Path) -> None:
    """Remove an index's files from `folder` (index.json first: from then on there is no index)."""
    folder = Path(folder)
    if folder.is_dir():
        with writing(folder):
            for name in (".index.json.pending", *FILES):
                (folder / name).unlink(missing_ok=True)


def load_index(folder: str | Path) -> tuple[np.ndarray, list[Chunk], str]:
    """Return (vectors, chunks, model) read from an index folder, every part checked; raise
    IndexFileError saying what is wrong and how to rebuild, for anything `save_index` did not write."""
    folder = Path(folder)
    for _ in range(3):
        try:
            return _load(folder)
        except _Replaced:  # a writer renamed new files in while this read: read the new index
            time.sleep(0.05)
    raise damaged(folder, "it kept changing while it was read")


class _Replaced(Exception):
    pass


def _load(folder: Path) -> tuple[np.ndarray, list[Chunk], str]:
    finish_save(folder)
    state = folder_state(folder)
    if state != "index":
        if state == "partial":
            raise IndexFileError(f"the index at {folder} is incomplete: index.json is missing; "
                                 f"{rebuild_hint(folder)}")
        raise IndexFileError(f"no ragkit index at {folder} (index.json is missing); build one: ragkit index "
                             f"YOUR_DOCS --index {shlex.quote(str(folder))}")
    raw = _read(folder, "index.json")
    meta = _check_meta(folder, raw)
    data = {name: _read(folder, name) for name in DATA_FILES}
    if meta["version"] == 2:
        for name, content in data.items():
            if hashlib.sha256(content).hexdigest() != meta["files"][name]:
                if _read(folder, "index.json") != raw:
                    raise _Replaced
                raise damaged(folder, f"{name} does not match the sha256 index.json holds for it (it changed "
                                      f"after it was saved)")
    vectors = _vectors(folder, data["vectors.npy"])
    chunks = _chunks(folder, data["chunks.jsonl"])
    if vectors.shape != (meta["count"], meta["dim"]) or len(chunks) != meta["count"]:
        raise damaged(folder, f"index.json says {meta['count']} chunks of {meta['dim']}-d vectors, the files "
                              f"hold {len(chunks)} chunks and vectors of shape {vectors.shape}")
    if len({c.id for c in chunks}) != len(chunks):
        raise damaged(folder, "chunks.jsonl holds the same chunk id twice")
    if meta["version"] == 1:
        if hashlib.sha256(vectors.tobytes()).hexdigest() != meta["sha256"]:
            raise damaged(folder, "vectors.npy does not match the sha256 index.json holds for it")
        warnings.warn(f"the index at {folder} was saved by an older ragkit, whose checksum covers vectors.npy "
                      f"only; save it again to have every file checked ({rebuild_hint(folder)})", stacklevel=4)
    return vectors, chunks, meta["model"]


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise IndexFileError(f"the index at {folder} is incomplete: {name} is missing; "
                             f"{rebuild_hint(folder)}") from None
    except OSError as exc:
        raise IndexFileError(f"cannot read {folder / name} ({exc.strerror or exc})") from None


def _check_meta(folder: Path, raw: bytes) -> dict:
    """Return index.json's fields if they have the shape `save_index` writes (version 1 or 2)."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged(folder, f"index.json is not JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IndexFileError(f"{folder} is not a ragkit index (index.json is not a {FORMAT!r} object); "
                             f"{rebuild_hint(folder)}")
    if meta.get("version") not in (1, 2):
        raise IndexFileError(f"the index at {folder} has format version {meta.get('version')!r}; this ragkit "
                             f"reads versions 1 and 2; {rebuild_hint(folder)}")
    shape = {"model": str, "dim": int, "count": int, **({"files": dict, "checksum": str} if meta["version"] == 2
                                                        else {"sha256": str})}
    wrong = [k for k, kind in shape.items() if type(meta.get(k)) is not kind]
    if wrong or not meta["model"] or meta["dim"] < 1 or meta["count"] < 0:
        raise damaged(folder, f"index.json lacks or has a wrong value for {', '.join(wrong) or 'model/dim/count'}")
    if meta["version"] == 2 and (meta["checksum"] != _meta_checksum(meta) or set(meta["files"]) != set(DATA_FILES)
                                 or not all(isinstance(v, str) for v in meta["files"].values())):
        raise damaged(folder, "index.json does not match its own checksum (it changed after it was saved)")
    return meta


def _meta_checksum(meta: dict) -> str:
    fields_ = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode("utf-8")).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _vectors(folder: Path, data: bytes) -> np.ndarray:
    """Return the float32 matrix in .npy bytes, read without numpy's loader (so never a pickle)."""
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(buf)
    except (ValueError, TypeError, EOFError, OSError) as exc:
        raise damaged(folder, f"vectors.npy is not a numpy array file ({exc or 'empty'})") from None
    if dtype != np.float32 or fortran or len(shape) != 2:
        raise damaged(folder, f"vectors.npy holds a {dtype} array of shape {shape}, not a 2-d float32 matrix")
    size = int(np.prod(shape))
    if len(data) - buf.tell() != 4 * size:
        raise damaged(folder, f"vectors.npy is cut short or too long for its {shape} array")
    vectors = np.frombuffer(data, dtype=np.float32, count=size, offset=buf.tell()).reshape(shape)
    if not np.isfinite(vectors).all():
        raise damaged(folder, "vectors.npy holds values that are not finite")
    return vectors


def _chunks(folder: Path, data: bytes) -> list[Chunk]:
    """Return the chunks of chunks.jsonl, each line checked field by field against `Chunk`."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise damaged(folder, f"chunks.jsonl is not UTF-8 ({exc})") from None
    chunks = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise damaged(folder, f"line {n} of chunks.jsonl is not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise damaged(folder, f"line {n} of chunks.jsonl is not an object")
        wrong = sorted(k for k in item if k not in _CHUNK_FIELDS or type(item[k]) is not _CHUNK_FIELDS[k][0])
        missing = sorted(k for k, (_, required) in _CHUNK_FIELDS.items() if required and k not in item)
        if wrong or missing or not 0 <= item["start"] <= item["end"]:
            what = ", ".join([*(f"{k!r} ({type(item[k]).__name__})" for k in wrong), *(f"no {k!r}" for k in missing)])
            raise damaged(folder, f"line {n} of chunks.jsonl is not a chunk: {what or 'its offsets'}")
        chunks.append(Chunk(**item))
    return chunks
