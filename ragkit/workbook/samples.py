"""A small folder of mixed documents to index, written by ragkit itself: a PDF report whose facts sit on
known pages, an HTML page with navigation and scripts around its main text, a Markdown note, and a
"scanned" PDF with no text layer. Chapter 9 of the workbook and the tests index it.

The texts are invented for ragkit (a lighthouse's yearly report); `SAMPLE_QUESTIONS` says on which
file and page each answer is.

>>> folder = write_samples(tmp_path / "mydocs")                   # doctest: +SKIP
>>> sorted(p.name for p in folder.iterdir())                      # doctest: +SKIP
['rules.md', 'scan.pdf', 'report.pdf', 'visit.html']
"""
from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["SAMPLE_QUESTIONS", "write_pdf", "write_samples"]

REPORT_TITLE = "Skerry Point Lighthouse: annual report 2026"
REPORT_PAGES = [
    ["Skerry Point Lighthouse: annual report 2026",
     "This report describes a year of work at the Skerry Point lighthouse, on the north shore of the bay. "
     "The station is run by a keepers' trust with four volunteers and one paid keeper. It covers the lamp, "
     "the tower, the budget and the visitors."],
    ["The lamp",
     "In March the old halogen lamp was replaced with a 35-watt LED module. The new lamp is visible from "
     "22 nautical miles on a clear night and uses a tenth of the electricity of the old one. "
     "Its flash pattern stays the same: two white flashes every ten seconds."],
    ["Budget and the tower",
     "The trust's budget for 2027 is 48,000 euros. Most of it will pay for repainting the tower: "
     "salt had damaged the paint on the seaward side, and the gallery railing was rusted through in two places; "
     "the railing was repaired in October."],
]
VISIT_HTML = """<!doctype html>
<html lang="en"><head><title>Visiting Skerry Point</title>
<meta property="article:published_time" content="2026-04-18T09:00:00+01:00">
<style>nav { float: left } .cookie { position: fixed }</style>
<script>window.track && track("visit");</script></head>
<body>
<header><a href="/">Skerry Point Trust</a> <a href="/news">News</a> <a href="/donate">Donate</a></header>
<nav role="navigation"><ul><li><a href="/">Home</a></li><li><a href="/history">History</a></li>
<li><a href="/visit">Visit</a></li></ul></nav>
<main>
<h1>Visiting the lighthouse</h1>
<p>The lighthouse is open to visitors from Tuesday to Sunday, from 10:00 to 17:00, between April and October.</p>
<h2>Tickets</h2>
<p>A ticket costs 6 euros for adults; children under twelve climb the 114 steps of the tower for free.</p>
<h2>Getting there</h2>
<p>Bus 7 from the harbour stops at the lighthouse gate every hour.</p>
</main>
<aside class="cookie">We use cookies to count visitors. <button>OK</button></aside>
<footer>Skerry Point Trust, all rights reserved. <a href="/privacy">Privacy</a></footer>
<script>document.querySelector(".cookie").hidden = false;</script>
</body></html>
"""
RULES_MD = """# Safety rules for volunteers

## On the gallery

Never climb onto the gallery in winds above 40 km/h. Clip the safety line to the ring before you step out.

## In the lamp room

Switch the lamp off at the panel before cleaning the lens, and wear the tinted goggles kept by the door.
"""
# (question, the file that answers it, its page in that file: 0 when the file has no pages)
SAMPLE_QUESTIONS = [
    ("How many watts does the new lighthouse lamp use?", "report.pdf", 2),
    ("What is the trust's budget for 2027?", "report.pdf", 3),
    ("When is the lighthouse open to visitors?", "visit.html", 0),
    ("In what wind must volunteers stay off the gallery?", "rules.md", 0),
]


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})".encode("cp1252")


def write_pdf(path: str | Path, pages: list[list[str]], title: str = "", date: str = "") -> Path:
    """Write a PDF with a text layer, one page per list of paragraphs (Helvetica, wrapped); return the path.
    `title` and `date` (an ISO day: its creation date) go in its metadata.

    An empty list makes a page with no text at all, as a scanned page without OCR looks to a reader.

    >>> from pypdf import PdfReader
    >>> PdfReader(write_pdf(tmp_path / "a.pdf", [["Hello, page one."], []])).pages[0].extract_text()  # doctest: +SKIP
    'Hello, page one.'
    """
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica"),
                             NameObject("/Encoding"): NameObject("/WinAnsiEncoding")})
    for paragraphs in pages:
        page = writer.add_blank_page(width=595, height=842)  # A4, in points
        lines = [b"BT /F1 11 Tf 15 TL 60 780 Td"]
        for paragraph in paragraphs:
            for line in textwrap.wrap(paragraph, 90):
                lines.append(_pdf_string(line) + b" Tj T*")
            lines.append(b"T*")
        lines.append(b"ET")
        stream = DecodedStreamObject()
        stream.set_data(b"\n".join(lines) if paragraphs else b"")
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        page.replace_contents(stream)
    if title:
        writer.add_metadata({"/Title": title})
    if date:
        writer.add_metadata({"/CreationDate": f"D:{date.replace('-', '')}120000Z"})
    path = Path(path)
    with path.open("wb") as f:
        writer.write(f)
    return path


def write_samples(folder: str | Path) -> Path:
    """Write the sample documents into `folder` (made if need be) and return it: report.pdf (3 pages,
    created 2026-03-02), visit.html (published 2026-04-18), rules.md (dated by the file, as written), and
    scan.pdf (2 pages, no text layer)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_pdf(folder / "report.pdf", REPORT_PAGES, title=REPORT_TITLE, date="2026-03-02")
    write_pdf(folder / "scan.pdf", [[], []])
    (folder / "visit.html").write_text(VISIT_HTML, encoding="utf-8")
    (folder / "rules.md").write_text(RULES_MD, encoding="utf-8")
    return folder
