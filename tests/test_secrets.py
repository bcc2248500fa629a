"""API keys never leak: not into notebook outputs, files written, logs, reprs or errors.

The notebooks run against `ragkit serve` on loopback with fake keys in the environment (so the
HTTP backend is the one in use and really sends a key), then every output, every file the run
wrote and the server's log are searched for the keys. The chapters share one cache, in order, as a
learner's do (so a chapter does not embed again over HTTP what an earlier one did); it is searched
after every chapter too.
"""
from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ragkit.backends.openrouter import OpenRouterBackend
from ragkit.backends.server import make_server

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
OPENROUTER_KEY = "sk-or-v1-fake0123456789abcdefRAGKITSECRET"
SERVER_KEY = "rk-fake-9876543210RAGKITSERVERSECRET"


def files_containing(root: Path, secrets: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {s[:12]}..." for s in secrets if s.encode() in data]
    return hits


@pytest.fixture(scope="module")
def server(local_backend):
    log = io.StringIO()
    srv = make_server(local_backend, port=0, log=log).start()
    yield srv, log
    srv.shutdown()


@pytest.fixture(scope="module")
def http_cache(tmp_path_factory):
    """One cache folder for all the chapters run over HTTP."""
    return tmp_path_factory.mktemp("http-cache")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_over_http_with_keys_set_leaks_nothing(path, server, http_cache, tmp_path, scratch_tmpdir,
                                                        monkeypatch):
    srv, log = server
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    monkeypatch.setenv("RAGKIT_API_KEY", SERVER_KEY)
    monkeypatch.setenv("RAGKIT_BASE_URL", srv.base_url)
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(http_cache))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print(repr(backend), backend.describe())"))
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = nbformat.writes(nb)
    assert "OpenAI-compatible server at 127.0.0.1" in outputs  # the HTTP backend really ran
    assert OPENROUTER_KEY not in outputs and SERVER_KEY not in outputs
    assert files_containing(tmp_path, [OPENROUTER_KEY, SERVER_KEY]) == []
    assert files_containing(http_cache, [OPENROUTER_KEY, SERVER_KEY]) == []
    assert files_containing(scratch_tmpdir, [OPENROUTER_KEY, SERVER_KEY]) == []
    assert OPENROUTER_KEY not in log.getvalue() and SERVER_KEY not in log.getvalue()


def test_key_is_sent_only_where_it_belongs(server, monkeypatch):
    srv, _ = server
    monkeypatch.setenv("OPENROUTER_API_KEY", OPENROUTER_KEY)
    monkeypatch.setenv("RAGKIT_BASE_URL", srv.base_url)
    b = OpenRouterBackend.from_env()   # another host: the OpenRouter key stays home
    assert "Authorization" not in b._http.client.headers
    assert OPENROUTER_KEY not in repr(b) and OPENROUTER_KEY not in b.describe()
