"""Loading documents: the files of a folder, as `Document`s ready to chunk.

>>> from ragkit.config import packaged_data
>>> docs = load_documents(packaged_data("demo"))
>>> docs[0].id, docs[0].title
('01-what-is-rag.md', 'Retrieval-augmented generation')
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

from .headings import headings
from .types import Document

__all__ = ["TEXT_SUFFIXES", "load_documents"]

TEXT_SUFFIXES = (".txt", ".md", ".rst")


def load_documents(paths: str | Path | Iterable[str | Path]) -> list[Document]:
    """Return a Document for each .txt / .md / .rst file given, or found (recursively) in a folder given.

    Files in a folder are read in sorted order and their id is the path relative to that folder
    ("guide/install.md"); a file given directly has its file name as id. The title is the first
    heading, or else the first line (at most 80 characters). Bytes that are not UTF-8 are replaced
    with U+FFFD, with a warning naming the file. Hidden files and folders are skipped.

    >>> docs = load_documents("data/handbook")  # doctest: +SKIP
    >>> docs[0].id, docs[0].title  # doctest: +SKIP
    ('install.md', 'Installing ragkit')
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[tuple[str, Path]] = []
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(
                (p.relative_to(given).as_posix(), p)
                for p in given.rglob("*")
                if p.is_file()
                and p.suffix.lower() in TEXT_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
            if not files:
                raise ValueError(f"no {'/'.join(TEXT_SUFFIXES)} files under {given}")
            found += files
        elif given.is_file():
            if given.suffix.lower() not in TEXT_SUFFIXES:
                kinds = ", ".join(TEXT_SUFFIXES)
                raise ValueError(f"{given}: ragkit reads {kinds} files, not {given.suffix!r}")
            found.append((given.name, given))
        else:
            raise FileNotFoundError(f"{given} does not exist (working directory: {Path.cwd()})")
    docs, where = [], {}
    for doc_id, path in found:
        if doc_id in where:
            raise ValueError(
                f"{where[doc_id]} and {path} would both get id {doc_id!r}; load them in separate calls "
                "and give them distinct ids with dataclasses.replace(doc, id=...)"
            )
        where[doc_id] = path
        text = _read_text(path)
        docs.append(Document(id=doc_id, text=text, title=_title(text), source=str(path)))
    return docs


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        warnings.warn(
            f"{path} is not valid UTF-8 (byte {err.start}); undecodable bytes were replaced with U+FFFD. "
            "Re-save the file as UTF-8 to keep its characters.",
            stacklevel=3,
        )
        return data.decode("utf-8-sig", errors="replace")


def _title(text: str, limit: int = 80) -> str:
    heads = headings(text)
    title = heads[0][2] if heads else next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"
