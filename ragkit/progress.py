"""Progress bars on long work (embedding a corpus, downloading, answering a question set).

`progress_bar(progress, total, desc)` opens one as a context manager and gives back a function that
moves it on; when `progress` is off, or there is nothing to do, that function does nothing:

>>> with progress_bar(False, 10, "embedding") as advance:
...     advance(10)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(progress: bool | Callable, total: int | None, desc: str, unit: str = "chunk",
                 **options) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`, which moves a tqdm bar (or what a callable `progress(total=...)` makes) by n;
    the bar is closed when the block ends, however it ends. No bar when `progress` is off or total is 0."""
    if not progress or total == 0:
        yield lambda n: None
        return
    if callable(progress):
        bar = progress(total=total)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit=unit, **options)
    try:
        yield bar.update
    finally:
        bar.close()
