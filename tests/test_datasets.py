"""Datasets: BEIR folders and downloads (from a real HTTP server on loopback), the Python reference,
question files, the demo corpus."""
from __future__ import annotations

import io
import json
import socket
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import write_files

from ragkit.documents import load_documents
from ragkit.errors import DatasetError, DatasetUnavailable
from ragkit.eval.datasets import (
    BEIR_URL,
    BeirDataset,
    Question,
    demo_corpus,
    load_beir,
    load_questions,
    python_reference,
    questions_as_qrels,
)

REPO = Path(__file__).resolve().parents[1]
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


# --------------------------------------------------------------------------------------------------
# A tiny BEIR dataset, a zip of it, and a file server on loopback


def tiny_files() -> dict[str, str]:
    corpus = [{"_id": "d1", "title": "Reranking", "text": "A reranker reads the query and passage together."},
              {"_id": "d2", "title": "Chunking", "text": "Chunks are passages small enough to embed."},
              {"_id": "d3", "title": "", "text": "Untitled."}]
    queries = [{"_id": "q1", "text": "What does a reranker do?"}, {"_id": "q2", "text": "What is a chunk?"},
               {"_id": "q3", "text": "Train question"}]
    return {
        "corpus.jsonl": "".join(json.dumps(r) + "\n" for r in corpus),
        "queries.jsonl": "".join(json.dumps(r) + "\n" for r in queries),
        "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td3\t0\n",
        "qrels/train.tsv": "query-id\tcorpus-id\tscore\nq3\td3\t1\n",
    }


def make_zip(entries: dict[str, str | bytes], stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def tiny_zip(top: str = "tiny", stored: bool = False) -> bytes:
    return make_zip({f"{top}/{name}": data for name, data in tiny_files().items()}, stored=stored)


class FileServer:
    """Serves `files` ({url path: bytes}) over HTTP on 127.0.0.1 and records each requested path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/beir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """$RAGKIT_CACHE_DIR for this test; datasets land in its datasets/ folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RAGKIT_CACHE_DIR", str(folder))
    return folder


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders a download left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


# --------------------------------------------------------------------------------------------------
# BEIR from a folder


def test_load_beir_folder(tmp_path):
    folder = write_files(tmp_path / "tiny", tiny_files())
    ds = load_beir(folder)
    assert isinstance(ds, BeirDataset) and ds.name == "tiny" and ds.path == folder
    assert list(ds.corpus) == ["d1", "d2", "d3"]
    d1 = ds.corpus["d1"]
    assert (d1.id, d1.title, d1.text, d1.source) == ("d1", "Reranking", "A reranker reads the query and passage "
                                                     "together.", "tiny:d1")
    assert ds.queries == {"q1": "What does a reranker do?", "q2": "What is a chunk?"}  # the test split's
    assert ds.qrels == {"test": {"q1": {"d1": 2}, "q2": {"d2": 1, "d3": 0}}}
    assert [d.id for d in ds.documents()] == ["d1", "d2", "d3"]
    assert repr(ds) == "BeirDataset('tiny': 3 documents, 2 queries, splits test (3 judgements))"


def test_load_beir_splits(tmp_path):
    folder = write_files(tmp_path / "tiny", tiny_files())
    everything = load_beir(folder, split=None)
    assert set(everything.qrels) == {"test", "train"} and len(everything.queries) == 3
    assert set(load_beir(folder, split="train").queries) == {"q3"}
    assert set(load_beir(folder, split=["train", "test"]).qrels) == {"train", "test"}
    with pytest.raises(DatasetError, match="no qrels/dev.tsv.*splits are: test, train"):
        load_beir(folder, split="dev")


def test_load_beir_parent_folder_and_bad_files(tmp_path):
    write_files(tmp_path / "download" / "tiny", tiny_files())
    assert len(load_beir(tmp_path / "download").corpus) == 3  # the folder the zip was unpacked in
    files = tiny_files()
    files["corpus.jsonl"] += '{"_id": "d4", "title": "x", "text": \n'
    with pytest.raises(DatasetError, match=r"corpus.jsonl:4: not valid JSON"):
        load_beir(write_files(tmp_path / "broken", files))
    files = tiny_files()
    files["corpus.jsonl"] += json.dumps({"_id": "d1", "text": "again"}) + "\n"
    with pytest.raises(DatasetError, match=r"corpus.jsonl:4: document id 'd1' appears twice"):
        load_beir(write_files(tmp_path / "dup", files))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no corpus.jsonl"):
        load_beir(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_beir(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------------
# BEIR by name: download, check, cache


def test_download_then_cache_hit(server, cache):
    server.files["/beir/tiny.zip"] = tiny_zip()
    ds = load_beir("tiny", base_url=server.url, progress=False)
    assert len(ds.corpus) == 3 and ds.qrels["test"]["q1"] == {"d1": 2}
    assert server.requests == ["/beir/tiny.zip"]
    assert ds.path == cache / "datasets" / "tiny"
    assert (cache / "datasets" / "tiny" / "corpus.jsonl").is_file()
    assert leftovers(cache / "datasets") == []  # no .part file, no unpacking folder
    again = load_beir("tiny", base_url=server.url, progress=False)
    assert server.requests == ["/beir/tiny.zip"]  # served from the cache: no second request
    assert again == ds


def test_download_into_a_given_cache_dir(server, tmp_path):
    server.files["/beir/tiny.zip"] = tiny_zip()
    ds = load_beir("tiny", cache_dir=tmp_path / "mine", base_url=server.url + "/", progress=False)
    assert ds.path == tmp_path / "mine" / "tiny"


def test_corrupt_zip_is_rejected(server, cache):
    server.files["/beir/tiny.zip"] = b"PK\x03\x04 this is not a zip archive"
    with pytest.raises(DatasetError, match="tiny.zip from http://127.0.0.1:.* is not a readable zip"):
        load_beir("tiny", base_url=server.url, progress=False)
    data = tiny_zip(stored=True)  # stored: the text is in the archive as is, so we can damage it
    server.files["/beir/tiny.zip"] = data.replace(b"A reranker reads", b"A reranker READS")
    with pytest.raises(DatasetError, match=r"damaged \('tiny/corpus.jsonl' fails its CRC check\)"):
        load_beir("tiny", base_url=server.url, progress=False)
    assert not (cache / "datasets" / "tiny").exists() and leftovers(cache / "datasets") == []
    server.files["/beir/tiny.zip"] = tiny_zip()  # a good file later: downloaded afresh
    assert len(load_beir("tiny", base_url=server.url, progress=False).corpus) == 3
    assert len(server.requests) == 3


def test_published_md5_is_checked(server, cache):
    server.files["/beir/scifact.zip"] = tiny_zip("scifact")  # right layout, wrong bytes
    with pytest.raises(DatasetError, match="md5 .* but BEIR publishes 5f7d1de60b170fc8027bb7898e2efca1"):
        load_beir("scifact", base_url=server.url, progress=False)
    assert not (cache / "datasets" / "scifact").exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "tiny/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt",
                                  "tiny\\..\\..\\evil.txt"])
def test_zip_with_a_path_outside_the_folder_is_rejected(server, cache, evil):
    entries = {f"tiny/{name}": data for name, data in tiny_files().items()}
    entries[evil] = "gotcha"
    server.files["/beir/tiny.zip"] = make_zip(entries)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        load_beir("tiny", base_url=server.url, progress=False)
    assert not list(cache.parent.rglob("evil.txt"))
    assert not (cache / "datasets" / "tiny").exists() and leftovers(cache / "datasets") == []


def test_zip_with_a_symlink_is_rejected(server, cache):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in tiny_files().items():
            zf.writestr(f"tiny/{name}", data)
        link = zipfile.ZipInfo("tiny/passwd")
        link.external_attr = (0o120777 << 16)  # a symbolic link ...
        zf.writestr(link, "/etc/passwd")  # ... to this
    server.files["/beir/tiny.zip"] = buffer.getvalue()
    with pytest.raises(DatasetError, match="symbolic link"):
        load_beir("tiny", base_url=server.url, progress=False)


def test_zip_without_a_dataset_is_rejected(server, cache):
    server.files["/beir/tiny.zip"] = make_zip({"tiny/README.txt": "nothing here"})
    with pytest.raises(DatasetError, match="is not a BEIR dataset: the archive has no corpus.jsonl"):
        load_beir("tiny", base_url=server.url, progress=False)
    assert leftovers(cache / "datasets") == []


def test_offline_gives_one_clear_line(cache):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/beir"
    with pytest.raises(DatasetUnavailable) as info:
        load_beir("scifact", base_url=url, progress=False, timeout=5)
    message = str(info.value)
    assert message == (f"cannot download scifact from {url}/scifact.zip (no network?): "
                       "download it by hand and pass the folder")
    assert "\n" not in message and info.value.url == f"{url}/scifact.zip"
    assert "ConnectError" in info.value.reason
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
    assert leftovers(cache / "datasets") == []


def test_unknown_name_is_a_404(server, cache):
    with pytest.raises(DatasetUnavailable, match="HTTP 404; is 'scifakt' a BEIR dataset"):
        load_beir("scifakt", base_url=server.url, progress=False)


def test_local_zip(tmp_path, cache):
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(tiny_zip())
    ds = load_beir(archive)
    assert len(ds.corpus) == 3 and ds.path == cache / "datasets" / "tiny"


def test_default_url_is_beirs_archive():
    assert BEIR_URL == "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"


@pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"no SciFact copy at {SCIFACT}")
def test_real_scifact():
    ds = load_beir(SCIFACT)
    assert len(ds.corpus) == 5183
    assert len(ds.queries) == 300
    assert len(ds.qrels["test"]) == 300
    assert sum(len(j) for j in ds.qrels["test"].values()) == 339
    assert ds.qrels["test"]["1"] == {"31715818": 1}
    assert set(ds.queries) == set(ds.qrels["test"])
    assert ds.corpus["4983"].title.startswith("Microstructural development of human newborn cerebral white matter")
    full = load_beir(SCIFACT, split=None)
    assert len(full.queries) == 1109 and sum(len(j) for j in full.qrels["train"].values()) == 919


# --------------------------------------------------------------------------------------------------
# The Python Language Reference


def test_python_reference():
    from pydoc_data.topics import topics

    docs = python_reference()
    if sys.version_info[:2] == (3, 11):
        assert len(docs) == 79
    assert len(docs) == len(topics)
    assert [d.id for d in docs] == sorted(topics)
    doc = next(d for d in docs if d.id == "assert")
    assert doc.title == 'The "assert" statement'
    assert doc.source == "pydoc_data.topics:assert"
    assert doc.text == topics["assert"] and "assert_stmt" in doc.text
    assert all(d.title and "\n" not in d.title for d in docs)
    assert python_reference() == docs  # deterministic


# --------------------------------------------------------------------------------------------------
# Questions


def question(**change) -> dict:
    row = {"id": "q1", "question": "What does assert do?", "relevant": ["assert"], "answer": "It checks a condition.",
           "answerable": True, "difficulty": "easy"}
    return {**row, **change}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows))
    return path


def test_load_questions_and_qrels(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        question(),
        "",
        question(id="q2", question="What is the GIL switch interval?", relevant=[], answerable=False,
                 answer="", difficulty="hard"),
        question(id="q3", relevant=["if", "while"], difficulty="medium"),
    ])
    questions = load_questions(path, corpus=python_reference())
    assert questions[0] == Question("q1", "What does assert do?", ("assert",), "It checks a condition.", True, "easy")
    assert [q.id for q in questions] == ["q1", "q2", "q3"]
    assert questions_as_qrels(questions) == {"q1": {"assert": 1}, "q3": {"if": 1, "while": 1}}


@pytest.mark.parametrize("rows, error", [
    ([question(), question()], r"q.jsonl:2: id 'q1' is already used on line 1"),
    ([question(answerable="yes")], r"q.jsonl:1: 'answerable' must be a bool, got str 'yes'"),
    ([question(relevant="assert")], r"'relevant' must be a list"),
    ([question(relevant=[1])], r"'relevant' must be a list of document ids"),
    ([question(relevant=[])], r"answerable but lists no relevant document"),
    ([question(relevant=["assert", "assert"])], r"lists a document twice"),
    ([{k: v for k, v in question().items() if k != "difficulty"}], r"missing 'difficulty'"),
    ([question(id="")], r"must not be empty"),
    (["{not json"], r"q.jsonl:1: not valid JSON"),
    (["[1, 2]"], r"expected a JSON object"),
])
def test_load_questions_errors(tmp_path, rows, error):
    with pytest.raises(ValueError, match=error):
        load_questions(write_jsonl(tmp_path / "q.jsonl", rows))


def test_load_questions_checks_ids_against_the_corpus(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [question(relevant=["assert", "no-such-topic"])])
    assert load_questions(path)[0].relevant == ("assert", "no-such-topic")  # no corpus: not checked
    with pytest.raises(ValueError, match=r"not in the corpus: \['no-such-topic'\]"):
        load_questions(path, corpus=python_reference())


QUESTIONS = REPO / "ragkit" / "data" / "python-reference" / "questions.jsonl"


@pytest.mark.skipif(not QUESTIONS.is_file(), reason="ragkit/data/python-reference/questions.jsonl not written yet")
def test_the_repository_questions_fit_the_python_reference():
    questions = load_questions(corpus=python_reference())  # the default path
    assert questions and questions_as_qrels(questions)


# --------------------------------------------------------------------------------------------------
# Demo corpus


def test_demo_corpus():
    docs = demo_corpus()
    assert docs == load_documents(REPO / "ragkit" / "data" / "demo")
    assert [d.id for d in docs] == sorted(d.id for d in docs) and len(docs) >= 8
