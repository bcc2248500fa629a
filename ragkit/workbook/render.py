"""The workbook rendered: each chapter executed in a fresh kernel, its outputs kept, one HTML page per
chapter and an `index.html` linking them, so a workshop can hand the chapters out to read without
running anything (`ragkit workbook --out DIR`).

The chapters are the notebooks of a source checkout (`notebooks/`, next to the `ragkit` package): the
wheel carries the library only, so a pip-installed ragkit has none, and `find_chapters` says where to get
them. A chapter runs as Jupyter would run it: in its own folder, in a `python3` kernel, in the
local models, offline (a key or a base URL in the environment is left out; `online=True` keeps them, to
render the online path). nbclient executes it, nbconvert writes the HTML; what is done here by hand is
what makes a saved page read well:

- **streams coalesced**: a cell that printed a streamed answer piece by piece has one output per piece,
  which a page shows as one box per token; consecutive pieces of one stream become one text, and a
  carriage return (a redrawn progress line) keeps only what was drawn last;
- **nothing empty**: outputs with nothing to show are dropped;
- **widgets named**: an interactive widget needs a running kernel, so its output is replaced by a
  sentence saying so (chapter 3 draws the same lists statically with `show_result`).

>>> chapter_number("03-reranking.ipynb")
'03'
"""
from __future__ import annotations

import html
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import config
from ..errors import ChapterFailed, ConfigError

__all__ = ["Rendered", "chapter_number", "chapter_title", "coalesce_streams", "execute", "find_chapters",
           "index_page", "readable", "render_workbook", "source_notebooks", "to_html", "which_backend"]

CHAPTER = re.compile(r"^(\d{2})-[\w-]+\.ipynb$")
CELL_TIMEOUT = 900  # seconds one cell may run (chapter 6's reranking takes a minute or two, cold)
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<p><em>An interactive widget is here when the chapter runs in Jupyter: it needs a running "
               "kernel.</em></p>")


@dataclass(frozen=True)
class Rendered:
    """One chapter written as HTML: its file name, title, page, seconds to run and outputs shown."""

    chapter: str
    title: str
    html: Path
    seconds: float
    outputs: int


def chapter_number(name: str) -> str:
    """Return the two-digit number a chapter's file name starts with.

    >>> chapter_number("09-your-documents.ipynb")
    '09'
    """
    found = CHAPTER.match(name)
    if not found:
        raise ConfigError(f"{name!r} is not a chapter's file name (NN-name.ipynb)")
    return found.group(1)


def source_notebooks() -> Path:
    """Return the `notebooks/` folder of the source checkout this ragkit was imported from (it need not exist)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def find_chapters(folder: Path | None = None, only: Sequence[str] = ()) -> list[Path]:
    """Return the chapters in `folder` (default: the source checkout's), in order; with `only`, those
    numbers (`"3"` is `"03"`). Raises ConfigError, naming the fix, for a missing folder or an unknown number.

    >>> [p.name for p in find_chapters(only=["0", "03"])]
    ['00-quickstart.ipynb', '03-reranking.ipynb']
    """
    where = Path(folder) if folder is not None else source_notebooks()
    chapters = sorted(p for p in where.glob("*.ipynb") if CHAPTER.match(p.name)) if where.is_dir() else []
    if not chapters:
        fix = ("pass --notebooks with the folder that has them" if folder is not None else
               "the wheel carries the library only: clone ragkit's repository, `pip install -e .` there, and run "
               "`ragkit workbook` from that checkout, or pass --notebooks path/to/ragkit/notebooks")
        raise ConfigError(f"no workbook chapters (NN-name.ipynb) in {where}; {fix}")
    numbers = {chapter_number(p.name): p for p in chapters}
    wanted = [n.zfill(2) for n in only]
    unknown = [n for n in wanted if n not in numbers]
    if unknown:
        raise ConfigError(f"no chapter {', '.join(unknown)} in {where}; the chapters are {', '.join(numbers)}")
    return [numbers[n] for n in dict.fromkeys(wanted)] if wanted else chapters


def _last_drawn(text: str) -> str:
    """Return `text` as a terminal shows it when each line keeps only what follows its last carriage return."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def coalesce_streams(outputs: Iterable[dict]) -> list[dict]:
    """Return a cell's outputs with each run of consecutive pieces of one stream merged into one text,
    carriage returns applied, and streams left with nothing to show dropped. Other outputs keep their place.

    >>> pieces = [{"output_type": "stream", "name": "stdout", "text": t} for t in ["The ", "pass ", "statement"]]
    >>> coalesce_streams(pieces)
    [{'output_type': 'stream', 'name': 'stdout', 'text': 'The pass statement'}]
    >>> err = {"output_type": "stream", "name": "stderr", "text": " 10%\\r100%\\n"}
    >>> [o["text"] for o in coalesce_streams([pieces[0], err, pieces[1], {"output_type": "stream",
    ...                                         "name": "stdout", "text": "\\n"}])]
    ['The ', '100%\\n', 'pass \\n']
    """
    merged: list[dict] = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (last is not None and output.get("output_type") == "stream" == last.get("output_type")
                and output.get("name") == last.get("name")):
            last["text"] += output.get("text", "")
        else:
            merged.append(type(output)(output) if output.get("output_type") == "stream" else output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = _last_drawn(output.get("text", ""))
    return [o for o in merged if o.get("output_type") != "stream" or o["text"].strip()]


def _shows_something(output: dict) -> bool:
    if output.get("output_type") not in ("display_data", "execute_result"):
        return True
    return any(str(value).strip() for value in output.get("data", {}).values())


def readable(nb) -> int:
    """Make an executed notebook read well as a page (streams coalesced, empty outputs dropped, widgets
    named), in place; return the number of outputs left."""
    shown = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = [o for o in coalesce_streams(cell.get("outputs", [])) if _shows_something(o)]
        for output in outputs:
            if WIDGET in output.get("data", {}):
                output["data"] = {"text/html": WIDGET_NOTE}
        cell["outputs"] = outputs
        shown += len(outputs)
    nb.metadata.pop("widgets", None)  # the widget state would only load scripts from a CDN
    return shown


def chapter_title(nb, default: str = "") -> str:
    """Return the text of a notebook's first top-level heading (`# ...`), else `default`.

    >>> import nbformat
    >>> chapter_title(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 0 · Quickstart\\n\\nHi")]))
    '0 · Quickstart'
    """
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            found = re.search(r"^#\s+(.+?)\s*$", cell.get("source", ""), re.M)
            if found:
                return found.group(1)
    return default


def _first_error(nb) -> tuple[int | None, str]:
    """Return the number of the first code cell with an error output (1-based) and the error, in one line."""
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    for number, cell in enumerate(code, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return number, f"{output.get('ename')}: {output.get('evalue')}"
    return None, ""


def execute(path: Path, timeout: int = CELL_TIMEOUT, online: bool = False):
    """Return the chapter at `path` executed top to bottom in a fresh kernel, in its own folder, with the
    local models (`online`: with the backend the environment picks). Raises ChapterFailed naming the cell
    and the error when a cell fails, the kernel dies or a cell times out."""
    import nbformat
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=["--log-level=ERROR"],
                            resources={"metadata": {"path": str(path.parent)}})  # the kernel's own log: errors only
    try:
        client.execute(env=config.child_environment(offline=not online))
    except CellExecutionError as exc:
        cell, error = _first_error(nb)
        error = error or f"{exc.ename}: {exc.evalue}"
        raise ChapterFailed(f"{path.name} failed in code cell {cell}: {error}; open it in Jupyter (jupyter lab "
                            f"{path}) and run it to see the whole traceback", path.name, cell) from None
    except NoSuchKernel:
        raise ChapterFailed(f"{path.name} cannot start: no Jupyter kernel named python3 in this environment; "
                            f"install one: {sys.executable} -m pip install ipykernel", path.name) from None
    except (CellTimeoutError, DeadKernelError) as exc:
        raise ChapterFailed(f"{path.name} did not finish: {type(exc).__name__}: {str(exc).strip()[:300]}; "
                            f"run it in Jupyter to see where it stops", path.name) from None
    return nb


def to_html(nb, title: str) -> str:
    """Return a readable executed notebook as one self-contained HTML page (pictures inlined) titled `title`."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def index_page(pages: Sequence[Rendered], backend: str) -> str:
    """Return the `index.html` that links every rendered chapter, with how and when it was run.

    >>> page = index_page([Rendered("00-quickstart.ipynb", "0 · Quickstart", Path("00-quickstart.html"), 9.5, 20)],
    ...                   "the local models (offline)")
    >>> '<a href="00-quickstart.html">0 · Quickstart</a>' in page
    True
    """
    rows = "\n".join(f'<li><a href="{html.escape(p.html.name)}">{html.escape(p.title)}</a> '
                     f'<small>({html.escape(p.chapter)}, ran in {p.seconds:.0f} s)</small></li>' for p in pages)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>ragkit workbook</title></head>\n'
            f'<body>\n<h1>ragkit workbook</h1>\n<p>Each chapter was run top to bottom with {html.escape(backend)}, '
            f'ragkit {html.escape(config.version())}, on {when}. To change and run the code, open the notebooks '
            f'in Jupyter.</p>\n<ol>\n{rows}\n</ol>\n</body>\n</html>\n')


def which_backend(online: bool = False) -> str:
    """Return, in words, the backend the chapters will pick (`online`: in this environment).

    >>> which_backend()
    'the local models (offline)'
    """
    s = config.settings()
    if not online:
        return "the local models (offline)"
    if s.base_url:
        return f"the server at RAGKIT_BASE_URL ({s.base_url})"
    return "OpenRouter (OPENROUTER_API_KEY is set)" if s.openrouter_api_key else "the local models (offline)"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render_workbook(out: Path, only: Sequence[str] = (), notebooks: Path | None = None, online: bool = False,
                    say: Callable[[str], None] = _say) -> list[Rendered]:
    """Return the chapters rendered: each executed (offline, or with `online` the backend the environment
    picks), made readable and written to `out` as `NN-name.html`, then `out/index.html` linking them;
    `say` gets one progress line per chapter. Raises ConfigError for a missing folder or an unknown
    chapter, ChapterFailed for a chapter that stops with an error."""
    chapters = find_chapters(notebooks, only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backend = which_backend(online)
    say(f"ragkit: workbook: running {len(chapters)} chapter(s) from {chapters[0].parent} with {backend}")
    pages = []
    for number, path in enumerate(chapters, start=1):
        start = time.perf_counter()
        nb = execute(path, online=online)
        shown = readable(nb)
        title = chapter_title(nb, path.stem)
        page = out / f"{path.stem}.html"
        page.write_text(to_html(nb, title), encoding="utf-8")
        pages.append(Rendered(path.name, title, page, time.perf_counter() - start, shown))
        say(f"ragkit: workbook [{number}/{len(chapters)}] {path.name}: {pages[-1].seconds:.1f} s, "
            f"{shown} outputs -> {page}")
    (out / "index.html").write_text(index_page(pages, backend), encoding="utf-8")
    say(f"ragkit: workbook: {out / 'index.html'} links {len(pages)} chapter(s)")
    return pages
