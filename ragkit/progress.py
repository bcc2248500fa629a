"""Progress bars on long work (embedding a corpus, downloading, answering a question set).

`progress_bar(progress, total, desc)` opens one as a context manager and gives back a function that
moves it on; when `progress` is off, or there is nothing to do, that function does nothing:

>>> with progress_bar(False, 10, "embedding") as advance:
...     advance(10)

tqdm draws the bar; where it goes depends on where ragkit runs:

- in a terminal: on stderr, redrawn in place on each update (tqdm's own rate limit);
- in a Jupyter kernel: as one output, replaced on each update (a display id), so a saved notebook
  shows the finished bar, not its first frame;
- elsewhere (a log file, CI, a pipe): nothing while it runs, then one line with the final state.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["in_notebook", "notice", "progress_bar"]


class _LastLine:
    """A file for tqdm that keeps only the bar's latest state, and hands it to `show` if given."""

    def __init__(self, show: Callable[[str], None] | None = None):
        self.line = ""
        self._show = show

    def write(self, text: str) -> None:
        lines = text.replace("\r", "\n").strip().splitlines()
        if lines and lines[-1] != self.line:
            self.line = lines[-1]
            if self._show is not None:
                self._show(self.line)

    def flush(self) -> None:
        pass


def _notebook_display() -> Callable[[str], None] | None:
    """Return a function that shows a line as one notebook output, replaced on each call; None
    outside a Jupyter kernel."""
    if not in_notebook():
        return None
    from IPython.display import display

    handle = None

    def show(line: str) -> None:
        nonlocal handle
        if handle is None:
            handle = display({"text/plain": line}, raw=True, display_id=True)
        else:
            handle.update({"text/plain": line}, raw=True)

    return show


def in_notebook() -> bool:
    """Return whether this code runs in a Jupyter kernel (where stderr shows as a pink box)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def notice(line: str, brief: str | None = None) -> None:
    """Tell the user something once: `line` on stderr in a terminal or a log; in a notebook, `brief`
    (or `line`) as a plain output line, since a notice there is part of the lesson, not an alarm.

    >>> notice("ragkit: a long line, with the paths a terminal user may need", brief="ragkit: short")
    """
    if in_notebook():
        print(brief or line)
    else:
        print(line, file=sys.stderr)


def _is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress_bar(progress: bool | Callable, total: int | None, desc: str, unit: str = "chunk",
                 **options) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`, which moves a tqdm bar (or what a callable `progress(total=...)` makes) by n;
    the bar is closed when the block ends, however it ends. No bar when `progress` is off or total is 0."""
    if not progress or total == 0:
        yield lambda n: None
        return
    last = None
    if callable(progress):
        bar = progress(total=total)
    else:
        from tqdm import tqdm

        show = _notebook_display()
        if show is None and _is_terminal():
            target = sys.stderr
        else:
            target = last = _LastLine(show)
            options.setdefault("mininterval", 0.5)
        bar = tqdm(total=total, desc=desc, unit=unit, file=target, **options)
    try:
        yield bar.update
    finally:
        bar.close()
        if last is not None and last._show is None and last.line:
            print(last.line, file=sys.stderr)
