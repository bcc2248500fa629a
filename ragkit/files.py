"""Files that are never half-written: atomic writes, downloads checked before they land, damaged
files set aside rather than trusted or deleted.

- `atomic_write(path)`: write beside the target, rename over it when complete (a crash leaves the old file).
- `download(url, dest)`: the same for a download, after checking its size and sha256.
- `set_aside(path)`: move a damaged file out of the way, keeping it for inspection.
- `file_lock(path)`: hold a lock file, so two processes (or threads) never write the same thing at once.

>>> with atomic_write(tmp_path / "notes.txt") as f:     # doctest: +SKIP
...     f.write("all or nothing")
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from .errors import DownloadFailed
from .progress import progress_bar

__all__ = ["Locked", "atomic_write", "download", "file_lock", "set_aside"]


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on success rename it to `path`, else delete it.

    Readers see the old file or the new one, never a part of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, **({} if binary else {"newline": "\n"})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_aside(path: str | Path, companions: tuple[str, ...] = ()) -> Path:
    """Rename a damaged file to `<name>.corrupt-<unix time>` and return the new path; files named
    `<name><suffix>` for each of `companions` (e.g. SQLite's "-wal", "-shm") are deleted.
    """
    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    path.rename(aside)
    for suffix in companions:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return aside


def etag_sha256(response) -> str | None:
    """Return the sha256 a server vouches for in `X-Linked-Etag` or `ETag` (the Hugging Face hub sends a
    large file's sha256 there), or None."""
    for r in [*response.history, response]:
        for key in ("x-linked-etag", "etag"):
            tag = r.headers.get(key, "").strip('"').removeprefix("W/").strip('"')
            if re.fullmatch(r"[0-9a-f]{64}", tag):
                return tag
    return None


def download(url: str, dest: str | Path, *, client=None, timeout: float = 60.0, sha256: str | None = None,
             etag: bool = False, progress: bool | Callable = False, desc: str = "downloading") -> Path:
    """Download `url` to `dest` and return `dest`; raise `DownloadFailed` (nothing written) if it fails.

    The bytes go to a temporary file beside `dest`, renamed when complete and checked: the length
    the server announced, and the sha256 given (or, with `etag=True`, the one the server's ETag
    vouches for). `client` is an `httpx.Client` (one is made for this call otherwise); `progress`
    shows a bar of bytes.
    """
    import httpx

    dest = Path(dest)
    own = client is None
    if own:
        client = httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                              headers={"user-agent": "ragkit"})
    try:
        with atomic_write(dest, "wb") as out, client.stream("GET", url) as r:
            if r.status_code != 200:
                raise DownloadFailed(f"GET {url} returned HTTP {r.status_code}", url, f"HTTP {r.status_code}",
                                     status=r.status_code)
            announced = r.headers.get("content-length")
            digest, size = hashlib.sha256(), 0
            with progress_bar(progress, int(announced) if announced else None, desc, "B", unit_scale=True) as advance:
                for block in r.iter_bytes(1 << 20):
                    out.write(block)
                    digest.update(block)
                    size += len(block)
                    advance(len(block))
            if announced is not None and int(announced) != size:
                raise DownloadFailed(f"GET {url} stopped after {size} of {announced} bytes", url, "cut short")
            expected = sha256 or (etag_sha256(r) if etag else None)
            if expected and digest.hexdigest() != expected:
                whose = "the expected" if sha256 else "the hub's"
                raise DownloadFailed(f"GET {url}: sha256 {digest.hexdigest()[:12]}... does not match {whose} "
                                     f"{expected[:12]}...", url, "checksum")
        return dest
    except httpx.HTTPError as exc:
        raise DownloadFailed(f"GET {url} failed: {type(exc).__name__}: {exc}", url,
                             f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:
        if isinstance(exc, DownloadFailed):
            raise
        raise DownloadFailed(f"could not write {dest}: {exc}", url, str(exc)) from None
    finally:
        if own:
            client.close()


class Locked(BlockingIOError):
    """Another process holds the lock: `holder` is what it wrote in the lock file (its pid), if anything."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {'process ' + holder if holder else 'another process'}")
        self.path, self.holder = path, holder


_held: dict[str, list] = {}  # lock path -> [a re-entrant lock for this process's threads, open file, depth]
_held_guard = threading.Lock()


@contextmanager
def file_lock(path: str | Path, wait: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if missing) while the block runs; raise `Locked` if another
    process or thread still holds it after `wait` seconds. Re-entrant within one thread.

    The operating system's own advisory lock (`fcntl.flock`, `msvcrt.locking` on Windows): it is gone
    when the process ends, even killed, so a crash never leaves a folder locked. The holder's pid is
    written into the file, for the message.

    >>> with file_lock(tmp_path / ".lock"):     # doctest: +SKIP
    ...     pass                                   # nobody else can take it here
    """
    key = str(Path(path).resolve())
    with _held_guard:
        entry = _held.setdefault(key, [threading.RLock(), None, 0])
    if not entry[0].acquire(timeout=wait if wait > 0 else 0.001):
        raise Locked(Path(path), str(os.getpid()))
    try:
        if entry[2] == 0:
            entry[1] = _lock_file(Path(path), wait)
        entry[2] += 1
        try:
            yield
        finally:
            entry[2] -= 1
            if entry[2] == 0:
                entry[1].close()  # closing releases the operating system's lock
                entry[1] = None
    finally:
        entry[0].release()


def _lock_file(path: Path, wait: float) -> IO:
    f = open(path, "a+")
    deadline = time.monotonic() + wait
    while True:
        try:
            if os.name == "nt":
                import msvcrt

                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                f.seek(0)
                holder = f.read(40).strip()
                f.close()
                raise Locked(path, holder) from None
            time.sleep(0.05)
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
