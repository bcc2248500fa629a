"""The user's own documents: a folder of PDF, HTML and Markdown indexed and cited to the page; files
that are not what they claim skipped with a warning; a huge one-line file in bounded memory; and the
CLI conventions (`--version`, `python -m ragkit`, `ask --json`, help on every option)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest

from ragkit.chunking import chunk_documents
from ragkit.cli import main, parser
from ragkit.documents import load_documents
from ragkit.workbook.samples import SAMPLE_QUESTIONS, write_pdf, write_samples


@pytest.fixture
def mydocs(tmp_path):
    return write_samples(tmp_path / "mydocs")


def test_a_mixed_folder_is_read_with_pages_and_section_paths(mydocs):
    with pytest.warns(UserWarning, match=r"scan\.pdf has no text layer on any of its 2 pages"):
        docs = load_documents(mydocs)
    assert [d.id for d in docs] == ["report.pdf", "rules.md", "visit.html"]
    chunks = chunk_documents(docs, "heading")
    pdf = [c for c in chunks if c.doc_id == "report.pdf"]
    assert [c.page for c in pdf] == [1, 2, 3]
    assert all(docs[0].text[c.start:c.end] == c.text for c in pdf)
    assert "35-watt" in pdf[1].text and pdf[1].where == "report.pdf p. 2"
    html = next(d for d in docs if d.id == "visit.html")
    assert html.title == "Visiting Skerry Point" and "open to visitors from Tuesday to Sunday" in html.text
    for noise in ("Donate", "History", "track(", "cookies", "Privacy", "rights reserved", "float"):
        assert noise not in html.text
    sections = {c.section for c in chunks if c.doc_id == "visit.html"}
    assert "Visiting the lighthouse > Tickets" in sections
    assert any(c.section == "Safety rules for volunteers > On the gallery" for c in chunks if c.doc_id == "rules.md")


def test_a_pdf_with_some_pages_scanned_says_which(tmp_path):
    path = write_pdf(tmp_path / "half.pdf", [["Text on page one."], [], ["Text on page three."]])
    with pytest.warns(UserWarning, match=r"half\.pdf: page\(s\) 2 have no text layer"):
        [doc] = load_documents(path)
    assert [c.page for c in chunk_documents([doc], "heading")] == [1, 3]


def test_files_that_are_not_text_by_content_are_skipped_with_a_warning(tmp_path):
    (tmp_path / "notes.md").write_text("# Notes\n\nReal text.\n", encoding="utf-8")
    (tmp_path / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    (tmp_path / "fake.pdf").write_bytes(b"<html>not a pdf</html>")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = load_documents(tmp_path)
    said = [str(w.message) for w in caught]
    assert [d.id for d in docs] == ["notes.md"]
    assert any("program.txt is not text" in s for s in said) and any("fake.pdf is not a PDF" in s for s in said)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_a_20_mb_one_line_file_is_chunked_in_bounded_memory(tmp_path):
    words = "the quick brown fox jumps over the lazy dog while retrieval chunks embeddings ".encode()
    (tmp_path / "one-line.txt").write_bytes(words * (20_000_000 // len(words)))
    # VmHWM: the peak resident memory of this program alone (ru_maxrss would carry pytest's own over exec)
    script = ("import re, sys; from ragkit.documents import load_documents; "
              "from ragkit.chunking import chunk_documents; "
              "chunks = chunk_documents(load_documents(sys.argv[1]), 'heading'); "
              "peak = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1); "
              "print(len(chunks), sum(len(c.text) for c in chunks), peak)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    n_chunks, n_chars, peak_kb = map(int, done.stdout.split())
    assert n_chunks > 10_000 and n_chars > 19_000_000
    peak_mb = peak_kb / 1024
    assert peak_mb < 700, f"peak {peak_mb:.0f} MB for a 20 MB file"


def test_ragkit_index_mydocs_answers_with_page_level_citations(mydocs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGKIT_INDEX", str(tmp_path / "index"))
    assert main(["index", str(mydocs)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ragkit: warning:")]
    assert len(warned) == 1 and "scan.pdf has no text layer" in warned[0]  # one line, no source lines
    question, file, page = SAMPLE_QUESTIONS[0]
    assert main(["ask", question]) == 0
    assert re.search(rf"\({re.escape(file)} p\. {page}, \d{{4}}-\d\d-\d\d, chunk", capsys.readouterr().out)
    for question, file, page in SAMPLE_QUESTIONS[1:]:
        assert main(["ask", "--json", question]) == 0
        reply = json.loads(capsys.readouterr().out)
        assert reply["sources"], reply
        assert (reply["sources"][0]["file"], reply["sources"][0]["page"] or 0) == (file, page)
        assert reply["mode"] in {"generated", "checked", "extractive"} and reply["answer"]
        assert set(reply["timings_ms"]) == {"retrieve", "rerank", "generate"}
        assert reply["usage"]["generate"]["requests"] == 1 and reply["models"]["chat"].startswith("local/")
        assert isinstance(reply["sources"][0]["rerank_score"], float)


def test_ragkit_ask_searches_only_the_documents_of_the_dates_asked_for(mydocs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGKIT_INDEX", str(tmp_path / "index"))
    assert main(["index", str(mydocs)]) == 0
    lamp, visits = SAMPLE_QUESTIONS[0][0], SAMPLE_QUESTIONS[2][0]  # report.pdf (2026-03-02), visit.html (04-18)

    def sources(question, *options):
        assert main(["ask", "--json", "-k", "5", "--keep", "3", *options, question]) == 0
        return [(s["file"], s["date"]) for s in json.loads(capsys.readouterr().out)["sources"]]

    assert sources(lamp, "--until", "2026-03") == [("report.pdf", "2026-03-02")]
    assert sources(visits, "--since", "2026-04")[0] == ("visit.html", "2026-04-18")
    assert sources(visits, "--where", "date=2026-04-18", "--where", "source=no-such-file") == []
    assert all(file == "visit.html" for file, _ in sources(visits, "--where", "date=2026-04"))
    assert sources(lamp, "--since", "2026-04") == []  # the report is older: no source, and no answer made up
    assert main(["ask", "--where", "date=1999", lamp]) == 0
    assert "no chunk in the index matches the filter {'date': '1999'}" in capsys.readouterr().out
    assert main(["ask", "--since", "spring", lamp]) == 1
    assert "not a period" in capsys.readouterr().err


def test_each_document_gets_the_date_it_states_else_its_files(tmp_path):
    import os
    from datetime import datetime

    (tmp_path / "post.md").write_text("---\ntitle: Post\ndate: '2024-05-01 10:00'\n---\n# Post\n\nText.\n")
    (tmp_path / "guide.rst").write_text("Guide\n=====\n\n:author: Ann\n:date: 2023-11-30\n\nText.\n")
    (tmp_path / "page.html").write_text('<html><head><meta name="DC.date" content="2022-02-22"></head>'
                                        '<body><p>Text.</p></body></html>')
    write_pdf(tmp_path / "report.pdf", [["Text on page one."]], date="2021-07-04")
    (tmp_path / "plain.txt").write_text("No date in here.\n")
    (tmp_path / "odd.md").write_text("---\ndate: next tuesday\n---\nText.\n")
    noon = datetime(2020, 1, 31, 12, 0).timestamp()
    for name in ("plain.txt", "odd.md"):
        os.utime(tmp_path / name, (noon, noon))
    with pytest.warns(UserWarning, match=r"odd\.md gives its date as 'next tuesday', which is not a date"):
        docs = {d.id: d.date for d in load_documents(tmp_path)}
    assert docs == {"post.md": "2024-05-01", "guide.rst": "2023-11-30", "page.html": "2022-02-22",
                    "report.pdf": "2021-07-04", "plain.txt": "2020-01-31", "odd.md": "2020-01-31"}
    chunks = chunk_documents(load_documents(tmp_path / "post.md"), "heading")
    assert chunks and {c.date for c in chunks} == {"2024-05-01"}


def test_a_document_date_is_an_iso_day_or_nothing():
    import datetime

    from ragkit.types import Document

    assert Document("a", "x", date=datetime.date(2024, 2, 29)).date == "2024-02-29"
    assert Document("a", "x", date=datetime.datetime(2024, 5, 1, 23, 59)).date == "2024-05-01"
    assert Document("a", "x").date == ""
    for wrong in ("2023-02-29", "01/05/2024", "2024-5-1", "2024-05-01T10:00"):
        with pytest.raises(ValueError, match="must be an ISO day"):
            Document("a", "x", date=wrong)
    with pytest.raises(TypeError, match="Document.date must be str"):
        Document("a", "x", date=20240501)


def test_version_and_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "ragkit", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("ragkit 0.")
    helped = subprocess.run([sys.executable, "-m", "ragkit", "ask", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert helped.returncode == 0 and "--json" in helped.stdout


@pytest.mark.parametrize("command", ["index", "ask", "eval"])
def test_every_option_has_help(command):
    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]
    silent = [a.option_strings or [a.dest] for a in sub._actions if a.dest != "help" and not (a.help or "").strip()]
    assert not silent, f"ragkit {command}: no help text for {silent}"
