"""`ragkit workbook`: the chapters run and written as HTML pages to hand out, through the real command.

One real chapter only (00, the cheapest: CI time matters); the rest of the behaviour on tiny notebooks
run in a real kernel, and the stream coalescing on outputs made by hand.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from ragkit.errors import ChapterFailed, ConfigError
from ragkit.workbook.render import WIDGET_NOTE, chapter_title, coalesce_streams, find_chapters, readable

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def ragkit(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "ragkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def write_chapter(folder: Path, name: str, *sources: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]
                                  + [nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, folder / name)
    return folder / name


def shows_nothing(output) -> bool:
    return not output.get_text(strip=True) and not output.find(["img", "table", "svg", "iframe"])


def test_chapter_00_rendered_through_the_command(tmp_path):
    done = ragkit("workbook", "--out", tmp_path / "out", "--only", "00")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[1/1] 00-quickstart.ipynb:" in done.stderr and "the local models (offline)" in done.stderr
    assert "Kernel is running over TCP" not in done.stderr  # the kernel's own log stays quiet
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00-quickstart.html", "index.html"]

    source = nbformat.read(NOTEBOOKS / "00-quickstart.ipynb", as_version=4)
    title = chapter_title(source)
    page = BeautifulSoup((tmp_path / "out" / "00-quickstart.html").read_text(encoding="utf-8"), "html.parser")
    assert page.title.get_text() == title and title.startswith("0 ")
    assert title in page.find("h1").get_text()
    code_cells = sum(c.cell_type == "code" for c in source.cells)
    prompts = [p.get_text(" ", strip=True) for p in page.select(".jp-CodeCell .jp-InputArea-prompt")]
    assert [re.sub(r"\s+", " ", p) for p in prompts] == [f"In [{n}]:" for n in range(1, code_cells + 1)]  # all ran
    outputs = page.select(".jp-OutputArea-output")
    assert len(outputs) >= 5 and any(o.find("table") for o in outputs)  # executed: the committed copy has none
    assert not [o for o in outputs if shows_nothing(o)], "an output with nothing to show"
    assert not page.select(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] pre:empty")

    index = BeautifulSoup((tmp_path / "out" / "index.html").read_text(encoding="utf-8"), "html.parser")
    assert [(a["href"], a.get_text()) for a in index.find_all("a")] == [("00-quickstart.html", title)]


def test_unknown_chapter_and_missing_folder_name_the_fix(tmp_path):
    done = ragkit("workbook", "--out", tmp_path, "--only", "00", "10")
    assert done.returncode == 1 and "ConfigError: no chapter 10 in" in done.stderr
    assert "the chapters are 00, 01" in done.stderr and not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="pass --notebooks with the folder that has them"):
        find_chapters(tmp_path)
    assert [p.name for p in find_chapters(only=["3", "0"])] == ["03-reranking.ipynb", "00-quickstart.ipynb"]


def test_a_failing_chapter_names_its_cell_and_error(tmp_path):
    write_chapter(tmp_path / "nb", "01-fine.ipynb", "print('ok')")
    write_chapter(tmp_path / "nb", "02-broken.ipynb", "x = 1", "import sys\nprint(sys.version)", "1 / 0", "x")
    done = ragkit("workbook", "--out", tmp_path / "out", "--notebooks", tmp_path / "nb", timeout=300)
    assert done.returncode == 1
    assert "ChapterFailed: 02-broken.ipynb failed in code cell 3: ZeroDivisionError: division by zero" in done.stderr
    assert "jupyter lab" in done.stderr and "[1/2] 01-fine.ipynb" in done.stderr
    assert not (tmp_path / "out" / "index.html").exists()  # no index linking a chapter that is not there


def test_a_streamed_answer_is_one_text_on_the_page(tmp_path):
    """A real kernel sends one output per flushed piece; the page shows one text, in order with stderr."""
    write_chapter(tmp_path / "nb", "04-stream.ipynb",
                  "import sys, time\nfor piece in ['The ', 'pass ', 'statement']:\n"
                  "    print(piece, end='', flush=True); time.sleep(0.05)\n"
                  "print('\\nchecked', file=sys.stderr, flush=True); time.sleep(0.05)\nprint('done')")
    done = ragkit("workbook", "--out", tmp_path / "out", "--notebooks", tmp_path / "nb", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    page = BeautifulSoup((tmp_path / "out" / "04-stream.html").read_text(encoding="utf-8"), "html.parser")
    texts = [o.get_text(strip=True) for o in page.select(".jp-OutputArea-output")]
    assert texts == ["The pass statement", "checked", "done"]


def test_chapters_run_offline_unless_asked_online(tmp_path, monkeypatch):
    """A key in the shell does not reach the kernel (nor cost money) unless --online says so."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "not-a-real-key")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    write_chapter(tmp_path / "nb", "00-env.ipynb",
                  "import os\nprint('key set:', 'OPENROUTER_API_KEY' in os.environ, '| hub offline:', "
                  "os.environ.get('HF_HUB_OFFLINE'))")
    shown = {}
    for flags in ([], ["--online"]):
        out = tmp_path / f"out{len(flags)}"
        done = ragkit("workbook", "--out", out, "--notebooks", tmp_path / "nb", *flags, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        page = BeautifulSoup((out / "00-env.html").read_text(encoding="utf-8"), "html.parser")
        shown[bool(flags)] = (page.select_one(".jp-OutputArea-output").get_text(strip=True), done.stderr)
    assert shown[False][0] == "key set: False | hub offline: 1" and "the local models (offline)" in shown[False][1]
    assert shown[True][0] == "key set: True | hub offline: None" and "OpenRouter" in shown[True][1]
    assert "not-a-real-key" not in shown[True][1]


def test_coalescing_merges_runs_of_one_stream_and_keeps_the_order():
    outputs = [stream("a"), stream("b"), stream("warn\n", "stderr"), stream("c"), stream("d\n"),
               nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1), stream("e")]
    merged = coalesce_streams(outputs)
    assert [(o.output_type, o.get("name"), o.get("text") or o.data["text/plain"]) for o in merged] == [
        ("stream", "stdout", "ab"), ("stream", "stderr", "warn\n"), ("stream", "stdout", "cd\n"),
        ("execute_result", None, "42"), ("stream", "stdout", "e")]
    assert outputs[0].text == "a"  # the notebook's own outputs are not changed in place
    assert all(isinstance(o, nbformat.NotebookNode) for o in merged)  # nbconvert reads attributes


def test_coalescing_applies_carriage_returns_and_drops_empty_streams():
    redrawn = [stream("embedding  10%|#  |\r"), stream("embedding 100%|###|\r\n"), stream("next\r\n")]
    assert [o.text for o in coalesce_streams(redrawn)] == ["embedding 100%|###|\nnext\n"]
    assert coalesce_streams([stream(""), stream("\n"), stream("  ", "stderr")]) == []
    assert coalesce_streams([]) == []


def test_readable_drops_empty_outputs_and_names_widgets():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("w")])
    nb.cells[1].outputs = [
        stream("x"), stream("y"),
        nbformat.v4.new_output("display_data", data={"text/plain": "  "}),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                                                    "text/plain": "VBox(...)"})]
    nb.metadata["widgets"] = {"state": {}}
    assert readable(nb) == 2
    assert [o.get("text") or o.data for o in nb.cells[1].outputs] == ["xy", {"text/html": WIDGET_NOTE}]
    assert "widgets" not in nb.metadata
