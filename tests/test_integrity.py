"""Index folders: nothing changed goes unnoticed, nothing malformed gives a traceback (issue 14,
finding 3), and nothing the user built is lost (finding 4): no silent rebuild, saves that are all or
nothing (a kill or a full disk mid-save leaves the old index), one writer at a time."""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import DEMO
from test_cli import ragkit
from ragkit import ConfigError, IndexFileError
from ragkit.index import VectorIndex
from ragkit.stores import open_store
from ragkit.types import Chunk

FILES = ("index.json", "vectors.npy", "chunks.jsonl")


def small_index(n=6, tag="a") -> VectorIndex:
    rng = np.random.default_rng(len(tag))
    chunks = [Chunk(f"{tag}#{i}", tag, "Tips", f"Rerank the top {50 + i} candidates.", i, 0, 30, section="Tips")
              for i in range(n)]
    return VectorIndex(rng.normal(size=(n, 8)), chunks, "m/one")


def same(a: VectorIndex, b: VectorIndex) -> bool:
    return a.model == b.model and a.chunks == b.chunks and np.array_equal(a.vectors, b.vectors)


# -- finding 3: a checksum over every file, every malformed shape refused -----------------------

def test_one_changed_number_in_chunks_is_detected(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    text = (folder / "chunks.jsonl").read_text(encoding="utf-8")
    (folder / "chunks.jsonl").write_text(text.replace("top 50", "top 10"), encoding="utf-8")
    with pytest.raises(IndexFileError, match=r"chunks\.jsonl does not match .* rebuild it: ragkit index YOUR_DOCS "
                                             r"--index "):
        VectorIndex.load(folder)


def test_swapped_chunk_lines_are_detected(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    lines = (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    (folder / "chunks.jsonl").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(IndexFileError, match="chunks.jsonl does not match"):
        VectorIndex.load(folder)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(FILES), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_flipped_bit_in_any_file_is_refused_or_harmless(tmp_path_factory, which, where, bit):
    original = small_index()
    folder = original.save(tmp_path_factory.mktemp("idx"))
    data = bytearray((folder / which).read_bytes())
    data[int(where * len(data))] ^= 1 << bit
    (folder / which).write_bytes(bytes(data))
    try:
        loaded = VectorIndex.load(folder)
    except IndexFileError:
        return
    assert same(loaded, original), f"a flipped bit in {which} changed the index silently"


def reseal(folder):
    """Recompute index.json's checksums after an edit: what a buggy writer (or a determined hand) leaves."""
    try:
        meta = json.loads((folder / "index.json").read_text())
    except ValueError:  # not JSON at all: nothing to recompute
        return
    if isinstance(meta, dict) and isinstance(meta.get("files"), dict):
        meta["files"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in FILES[1:]}
        fields = {k: v for k, v in meta.items() if k != "checksum"}
        meta["checksum"] = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    (folder / "index.json").write_text(json.dumps(meta))


def edit_meta(change):
    def edit(folder):
        meta = json.loads((folder / "index.json").read_text())
        (folder / "index.json").write_text(json.dumps(change(meta)))
    return edit


def edit_chunk(change):
    def edit(folder):
        lines = (folder / "chunks.jsonl").read_text().splitlines()
        lines[0] = json.dumps(change(json.loads(lines[0])))
        (folder / "chunks.jsonl").write_text("\n".join(lines) + "\n")
    return edit


MALFORMED = {
    "an empty vectors.npy": lambda f: (f / "vectors.npy").write_bytes(b""),
    "vectors.npy cut short": lambda f: (f / "vectors.npy").write_bytes((f / "vectors.npy").read_bytes()[:-7]),
    "vectors.npy of float64": lambda f: np.save(f / "vectors.npy", np.ones((6, 8))),
    "vectors.npy of one dimension": lambda f: np.save(f / "vectors.npy", np.ones(48, dtype=np.float32)),
    "vectors.npy with NaN": lambda f: np.save(f / "vectors.npy", np.full((6, 8), np.nan, dtype=np.float32)),
    "index.json without count": edit_meta(lambda m: {k: v for k, v in m.items() if k != "count"}),
    "index.json a JSON list": lambda f: (f / "index.json").write_text("[1, 2, 3]"),
    "index.json with dim a string": edit_meta(lambda m: {**m, "dim": "8"}),
    "index.json with count a float": edit_meta(lambda m: {**m, "count": 6.0}),
    "index.json not UTF-8": lambda f: (f / "index.json").write_bytes(b'{"format": "\xff"}'),
    "index.json of a newer format": edit_meta(lambda m: {**m, "version": 3}),
    "a section that is null": edit_chunk(lambda c: {**c, "section": None}),
    "a chunk without text": edit_chunk(lambda c: {k: v for k, v in c.items() if k != "text"}),
    "a position that is a string": edit_chunk(lambda c: {**c, "position": "0"}),
    "a position that is true": edit_chunk(lambda c: {**c, "position": True}),
    "a field no chunk has": edit_chunk(lambda c: {**c, "evil": 1}),
    "offsets the wrong way round": edit_chunk(lambda c: {**c, "start": 9, "end": 2}),
    "a chunk line that is a list": lambda f: (f / "chunks.jsonl").write_text(
        "[1]\n" + "\n".join((f / "chunks.jsonl").read_text().splitlines()[1:]) + "\n"),
    "chunks.jsonl not UTF-8": lambda f: (f / "chunks.jsonl").write_bytes(b"\xff\xfe" + (f / "chunks.jsonl").read_bytes()),
    "a chunk id twice": lambda f: (f / "chunks.jsonl").write_text(
        "\n".join([(f / "chunks.jsonl").read_text().splitlines()[0]] * 6) + "\n"),
}


@pytest.mark.parametrize("resealed", [False, True], ids=["as found", "checksums recomputed"])
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_shape_is_an_index_file_error_that_names_the_fix(tmp_path, name, resealed):
    folder = small_index().save(tmp_path / "idx")
    MALFORMED[name](folder)
    if resealed:
        reseal(folder)
    with pytest.raises(IndexFileError, match="ragkit index YOUR_DOCS --index"):
        VectorIndex.load(folder)


def test_an_index_saved_by_an_older_ragkit_still_loads_with_a_warning(tmp_path):
    index = small_index()
    folder = tmp_path / "old"
    folder.mkdir()
    np.save(folder / "vectors.npy", index.vectors)
    (folder / "chunks.jsonl").write_text("".join(json.dumps(c.__dict__) + "\n" for c in index.chunks))
    (folder / "index.json").write_text(json.dumps({"format": "ragkit-index", "version": 1, "model": "m/one", "dim": 8,
                                                   "count": 6, "sha256": hashlib.sha256(index.vectors.tobytes()).hexdigest()}))
    with pytest.warns(UserWarning, match="older ragkit"):
        assert same(VectorIndex.load(folder), index)
    index.save(folder)  # saved again: every file checked from now on
    assert json.loads((folder / "index.json").read_text())["version"] == 2


# -- finding 4: never a silent rebuild ----------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A folder with the user's own index, built by `ragkit index` (the kettle document)."""
    where = tmp_path_factory.mktemp("built")
    (where / "docs").mkdir()
    (where / "docs" / "kettles.md").write_text("# Kettles\n\nThe Zorbex 3000 kettle has a blue handle.\n")
    out = ragkit("index", "docs", cwd=where)
    assert out.returncode == 0, out.stderr
    return where


def copy_of(built, tmp_path):
    shutil.copytree(built, tmp_path / "w", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "w"


def test_ask_with_index_json_missing_refuses_and_leaves_the_users_chunks(built, tmp_path):
    where = copy_of(built, tmp_path)
    (where / ".ragkit" / "index" / "index.json").unlink()
    before = (where / ".ragkit" / "index" / "chunks.jsonl").read_bytes()
    out = ragkit("ask", "What colour is the kettle's handle?", cwd=where)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "incomplete: index.json is missing; rebuild it: ragkit index YOUR_DOCS --index .ragkit/index" in out.stderr
    assert (where / ".ragkit" / "index" / "chunks.jsonl").read_bytes() == before and "demo" not in out.stderr


def test_ask_with_a_damaged_index_refuses_then_ragkit_index_replaces_it(built, tmp_path):
    where = copy_of(built, tmp_path)
    chunks = where / ".ragkit" / "index" / "chunks.jsonl"
    chunks.write_text(chunks.read_text().replace("blue", "pink"))
    out = ragkit("ask", "What colour is the kettle's handle?", cwd=where)
    assert out.returncode == 1 and "chunks.jsonl does not match" in out.stderr and "demo" not in out.stderr
    fixed = ragkit("index", "docs", cwd=where)  # the command the message names
    assert fixed.returncode == 0 and "replacing the index at .ragkit/index" in fixed.stderr, fixed.stderr
    assert "blue" in chunks.read_text()


@pytest.mark.parametrize("spec", ["garbage", "no/such/folder"])
def test_a_store_that_is_neither_a_url_nor_an_index_is_refused(built, tmp_path, monkeypatch, spec):
    where = copy_of(built, tmp_path)
    monkeypatch.setenv("RAGKIT_STORE", spec)
    for command in (["ask", "anything?"], ["index", "docs"]):
        out = ragkit(*command, cwd=where)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"ConfigError: the store '{spec}' (--store or RAGKIT_STORE) is neither a database URL" in out.stderr
        assert f"--index {spec}" in out.stderr
    assert not (where / spec).exists()
    with pytest.raises(ConfigError):
        open_store()


def test_an_existing_index_folder_is_a_fine_store(built, tmp_path, monkeypatch):
    where = copy_of(built, tmp_path)
    monkeypatch.setenv("RAGKIT_STORE", str(where / ".ragkit" / "index"))
    out = ragkit("ask", "What colour is the handle of the Zorbex 3000?", "-k", "1", "--keep", "1", cwd=where)
    assert out.returncode == 0 and "Kettles" in out.stdout, out.stderr


def test_ask_with_a_named_folder_that_holds_no_index_names_the_command(tmp_path):
    out = ragkit("ask", "anything?", "--index", "mine", cwd=tmp_path)
    assert out.returncode == 1 and "no index at mine; build one first: ragkit index YOUR_DOCS --index mine" in out.stderr
    assert not (tmp_path / "mine").exists()


# -- finding 4: saves that are all or nothing ---------------------------------------------------

def test_a_save_that_fails_midway_leaves_the_old_index(tmp_path, monkeypatch):
    old = small_index(tag="old")
    folder = old.save(tmp_path / "idx")
    real_save = np.save

    def disk_full(file, array, *args, **kwargs):
        target = open(file, "wb") if isinstance(file, (str, os.PathLike)) else file
        target.write(b"\x93NUMPY half of it")
        target.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        small_index(n=9, tag="new").save(folder)
    monkeypatch.setattr(np, "save", real_save)
    assert same(VectorIndex.load(folder), old)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(FILES)


MAKE = """
import sys, numpy as np
from ragkit.index import VectorIndex
from ragkit.types import Chunk
def make(tag, seed):
    chunks = [Chunk(f"{tag}#{i}", tag, tag, f"{tag} passage {i} " * 4, i, 0, 10) for i in range(20000)]
    return VectorIndex(np.random.default_rng(seed).normal(size=(20000, 64)), chunks, "m/" + tag)
a, b = make("a", 0), make("b", 1)
"""
SAVER = MAKE + """
print("ready", flush=True)
while True:
    b.save(sys.argv[1])
    a.save(sys.argv[1])
"""


def test_a_save_killed_at_any_moment_leaves_one_whole_index(tmp_path):
    made: dict = {}
    exec(MAKE, made)
    folder = made["a"].save(tmp_path / "idx")
    rng = random.Random(14)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(folder)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.8))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        loaded = VectorIndex.load(folder)  # never raises: one whole index or the other
        assert same(loaded, made["b"] if loaded.model == "m/b" else made["a"])


# -- finding 4: one writer at a time ------------------------------------------------------------

HOLDER = """
import sys, time
from ragkit.index_files import writing
with writing(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(folder, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_ragkit_index_into_the_same_folder_is_refused_at_once(built, tmp_path):
    where = copy_of(built, tmp_path)
    before = (where / ".ragkit" / "index" / "chunks.jsonl").read_bytes()
    holder = hold(where / ".ragkit" / "index", 60)
    try:
        started = time.monotonic()
        out = ragkit("index", str(DEMO), cwd=where)
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(10)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"IndexBusy: another ragkit (process {holder.pid}) is writing the index at .ragkit/index" in out.stderr
    assert "indexed" not in out.stderr and took < 50
    assert (where / ".ragkit" / "index" / "chunks.jsonl").read_bytes() == before


def test_a_library_save_waits_for_the_other_writer(tmp_path):
    folder = small_index().save(tmp_path / "idx")
    holder = hold(folder, 1.5)
    try:
        started = time.monotonic()
        small_index(tag="later").save(folder)
        waited = time.monotonic() - started
    finally:
        holder.wait(10)
    assert waited >= 1.0 and VectorIndex.load(folder).chunks[0].doc_id == "later"


def test_two_ragkit_index_runs_at_once_never_interleave(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        for i in range(12):
            (tmp_path / name / f"{name}-{i}.md").write_text(f"# {name} {i}\n\nA passage about {name}, part {i}.\n")
    env = {k: v for k, v in os.environ.items() if k not in {"OPENROUTER_API_KEY", "RAGKIT_BASE_URL"}}
    runs = [subprocess.Popen([sys.executable, "-m", "ragkit.cli", "index", name], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("one", "two")]
    results = [(r.wait(300), r.stderr.read()) for r in runs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or "IndexBusy: another ragkit" in err, err
    docs = {c.doc_id.split("-")[0] for c in VectorIndex.load(tmp_path / ".ragkit" / "index").chunks}
    assert docs in ({"one"}, {"two"})


def test_an_empty_database_store_is_refused_with_the_command_and_no_password():
    from types import SimpleNamespace

    from ragkit.cli import _refuse_empty

    url = "postgresql://alice:s3cret@db.example/rag"
    with pytest.raises(SystemExit) as exit_:
        _refuse_empty(SimpleNamespace(store=url, index=None), SimpleNamespace(url=url))
    message = str(exit_.value)
    assert "ragkit index YOUR_DOCS --store postgresql://alice@db.example/rag" in message and "s3cret" not in message
