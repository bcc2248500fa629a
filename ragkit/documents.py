"""Loading documents: the files of a folder, as `Document`s ready to chunk.

Kinds read, by extension: plain text (.txt), Markdown (.md, .markdown), reStructuredText (.rst), HTML
(.html, .htm: the main text, not navigation, scripts or styles, read with BeautifulSoup; headings kept
as Markdown headings so heading-aware chunks carry their section path) and PDF (.pdf: the text layer
of each page, read with pypdf; `Document.pages` says where each page starts, so chunks know their
page). A file whose content does not match (a binary renamed .txt, a PDF without a text layer) is
skipped with a warning naming it.

Each document gets a date (`Document.date`, an ISO day), for filters such as `where={"date": "2024"}`:
the one the file states about itself (Markdown's front matter `date:`, a reST `:date:` field, an HTML
`<meta>` date such as `article:published_time`, a PDF's creation date), else the day the file was
last modified.

>>> from ragkit.config import packaged_data
>>> docs = load_documents(packaged_data("demo"))
>>> docs[0].id, docs[0].title
('01-what-is-rag.md', 'Retrieval-augmented generation')
"""
from __future__ import annotations

import codecs
import re
import warnings
from datetime import datetime
from pathlib import Path
from typing import Iterable

from .dates import day
from .headings import headings
from .types import Document

__all__ = ["HTML_SUFFIXES", "PDF_SUFFIXES", "SUFFIXES", "TEXT_SUFFIXES", "html_text", "load_documents", "looks_binary",
           "text_date"]

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES
_SNIFF = 8192  # bytes looked at to tell text from binary


def load_documents(paths: str | Path | Iterable[str | Path]) -> list[Document]:
    """Return a Document for each file given, or found (recursively) in a folder given, of a kind
    ragkit reads (`SUFFIXES`: text, Markdown, reST, HTML, PDF).

    Files in a folder are read in sorted order and their id is the path relative to that folder
    ("guide/install.md"); a file given directly has its file name as id. The title is the first
    heading (an HTML page's <title>, a PDF's metadata title), or else the first line (at most 80
    characters). Bytes that are not UTF-8 are replaced with U+FFFD, with a warning naming the file.
    Hidden files and folders are skipped; so, with a warning, are files that are not text by their
    content and PDFs with no text layer.

    >>> docs = load_documents("my-docs/")                 # doctest: +SKIP
    >>> [(d.id, len(d.pages)) for d in docs]              # doctest: +SKIP
    [('guide.md', 0), ('report.pdf', 3), ('site/index.html', 0)]
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
                and p.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
            if not files:
                raise ValueError(f"no {'/'.join(SUFFIXES)} files under {given}")
            found += files
        elif given.is_file():
            if given.suffix.lower() not in SUFFIXES:
                raise ValueError(f"{given}: ragkit reads {', '.join(SUFFIXES)} files, not {given.suffix!r}")
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
        doc, problems = _load(doc_id, path)
        for problem in problems:
            warnings.warn(problem, stacklevel=2)
        if doc is not None:
            docs.append(doc)
    return docs


def _load(doc_id: str, path: Path) -> tuple[Document | None, list[str]]:
    """Return the Document of one file (None if it cannot be read as text) and what to warn about."""
    suffix = path.suffix.lower()
    with path.open("rb") as f:
        head = f.read(_SNIFF)
    if suffix in PDF_SUFFIXES:
        if not head.startswith(b"%PDF-"):
            return _skip(path, "is not a PDF (it does not start with %PDF-)")
        return _pdf(doc_id, path)
    if looks_binary(head):
        return _skip(path, "is not text (its first bytes hold NUL or other control bytes): a binary file?")
    text, problems = _read_text(path)
    if suffix in HTML_SUFFIXES:
        title, text, stated = _html(text)
    else:
        title, stated = "", text_date(text)
    return Document(doc_id, text, title=title or _title(text), source=str(path),
                    date=_dated(path, stated, problems)), problems


def _dated(path: Path, stated: str, problems: list[str]) -> str:
    """Return the date a file states (an ISO day), else the day it was last modified (local time).
    A stated date that is not one is warned about, in `problems`."""
    if stated:
        try:
            return day(stated)
        except ValueError:
            problems.append(f"{path} gives its date as {stated!r}, which is not a date (YYYY-MM-DD); "
                            "using the day the file was last modified")
    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d")


def text_date(text: str) -> str:
    """Return the date a Markdown or reST text states about itself ("" if none): `date:` in the YAML
    front matter at its top, or a `:date:` field in its first lines; as written, to be checked.

    >>> text_date("---\\ntitle: Notes\\ndate: 2024-05-01\\n---\\n# Notes"), text_date(":date: 2023-11-30\\n")
    ('2024-05-01', '2023-11-30')
    """
    lines = text.lstrip("\ufeff").splitlines()[:60]
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], start=1) if line.strip() in ("---", "...")), 0)
        found = (re.match(r"date\s*:\s*(.+)", line) for line in lines[1:end])
    else:
        found = (re.match(r"\s*:date:\s*(.+)", line, re.IGNORECASE) for line in lines)
    return next((m.group(1).strip().strip("'\"") for m in found if m), "")


def _skip(path: Path, why: str) -> tuple[None, list[str]]:
    return None, [f"{path} {why}; skipped"]


def looks_binary(head: bytes) -> bool:
    """Return True if the first bytes of a file are not text: a NUL byte, or over 10% control bytes
    other than tab, newline, carriage return and form feed (UTF-8 and Latin text have none).

    >>> looks_binary(b"\\x7fELF\\x02\\x01\\x01\\x00\\x00"), looks_binary("Grüße, 世界\\n".encode())
    (True, False)
    """
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return bool(head) and control > len(head) // 10


def _read_text(path: Path) -> tuple[str, list[str]]:
    """Return a file's text, decoded as UTF-8 in blocks; bytes that are not UTF-8 become U+FFFD, with
    a warning naming the first."""
    try:
        return _decode(path, "strict"), []
    except _BadByte as bad:
        return _decode(path, "replace"), [f"{path} is not valid UTF-8 (byte {bad.args[0]}); undecodable bytes "
                                          "were replaced with U+FFFD. Re-save the file as UTF-8 to keep its characters."]


class _BadByte(Exception):
    """The offset of the first byte that is not UTF-8."""


def _decode(path: Path, errors: str) -> str:
    decoder, parts, done = codecs.getincrementaldecoder("utf-8-sig")(errors), [], 0
    with path.open("rb") as f:
        while True:
            block = f.read(1 << 20)
            held = len(decoder.getstate()[0])  # bytes of a character cut by the previous block
            try:
                parts.append(decoder.decode(block, final=not block))
            except UnicodeDecodeError as err:
                raise _BadByte(done - held + err.start) from None
            if not block:
                return "".join(parts)
            done += len(block)


def _title(text: str, limit: int = 80) -> str:
    heads = headings(text)
    title = heads[0][2] if heads else next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


# What is not a page's main text: code, styling, and the parts every page of a site repeats.
_NOT_MAIN = ["script", "style", "noscript", "template", "svg", "canvas", "iframe", "form", "button", "nav",
             "header", "footer", "aside", "menu", "dialog"]
_NOT_MAIN_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
_BLOCKS = ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "dt", "dd", "td", "th",
           "figcaption", "caption"]
_SPACE = re.compile(r"\s+")


def html_text(html: str) -> tuple[str, str]:
    """Return (title, text) of an HTML page: its main text as paragraphs, headings as Markdown
    headings (`## Install`), without navigation, headers, footers, scripts and styles.

    The main text is the page's <main> (else its <article>, else its <body>); inside it, elements
    marked as navigation, banner or footer (by tag, ARIA role, or `hidden`) are dropped.

    >>> html_text("<title>T</title><nav>Home | About</nav><main><h1>Guide</h1><p>Read <b>this</b>.</p>"
    ...           "<script>track()</script></main>")
    ('T', '# Guide\\n\\nRead this.')
    """
    return _html(html)[:2]


# <meta> names and properties that give a page's date, the first one found winning
_DATE_META = ("article:published_time", "date", "dc.date", "dcterms.date", "dcterms.created", "dc.date.issued",
              "article:modified_time", "dcterms.modified", "last-modified")


def _html(html: str) -> tuple[str, str, str]:
    """Return (title, main text, stated date) of an HTML page (see `html_text`)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    metas = {(m.get("name") or m.get("property") or "").lower(): m.get("content") or ""
             for m in soup.find_all("meta")}
    stated = next((metas[name].strip() for name in _DATE_META if metas.get(name, "").strip()), "")
    for tag in soup.find_all(_NOT_MAIN):
        tag.decompose()
    for tag in soup.find_all(lambda t: t.get("role") in _NOT_MAIN_ROLES or t.has_attr("hidden")
                             or t.get("aria-hidden") == "true"):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines = []
    for block in root.find_all(_BLOCKS):
        if block.find_parent(_BLOCKS) is not None:
            continue  # its text is part of the enclosing block's
        if block.name == "pre":
            text = block.get_text().strip("\n")
        else:
            text = _SPACE.sub(" ", block.get_text(" ")).strip()
            text = re.sub(r" ([.,;:!?)])", r"\1", text)
        if text:
            lines.append(f"{'#' * int(block.name[1])} {text}" if re.fullmatch(r"h[1-6]", block.name) else text)
    return title, "\n\n".join(lines), stated


def _pdf(doc_id: str, path: Path) -> tuple[Document | None, list[str]]:
    """Return a PDF's text layer as a Document with its page offsets, or None (warned) if it has none."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
        stated = _pdf_date(reader.metadata)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        return _skip(path, f"could not be read as a PDF ({type(exc).__name__}: {exc})")
    if not any(pages):
        return _skip(path, f"has no text layer on any of its {len(pages)} pages (a scan?); run OCR on it "
                     "first, e.g. ocrmypdf, to index it")
    empty = [str(n) for n, text in enumerate(pages, start=1) if not text]
    problems = [f"{path}: page(s) {', '.join(empty)} have no text layer (scanned?); their text is not indexed"
                ] if empty else []
    starts, offset = [], 0
    for text in pages:
        starts.append(offset)
        offset += len(text) + 2
    text = "\n\n".join(pages)
    return Document(doc_id, text, title=str(meta_title).strip() or _title(text), source=str(path),
                    pages=tuple(starts), date=_dated(path, stated, problems)), problems


def _pdf_date(metadata) -> str:
    """Return a PDF's creation (else modification) date from its metadata as an ISO day, or ""."""
    for name in ("creation_date", "modification_date"):
        try:
            value = getattr(metadata, name, None) if metadata else None
        except ValueError:  # a date pypdf cannot parse: try the next
            continue
        if value is not None:
            return value.strftime("%Y-%m-%d")
    return ""
