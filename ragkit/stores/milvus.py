"""The index in Milvus: Milvus Lite in a local file, or a Milvus server / cluster by URL, same code.

Needs `pip install "ragkit[milvus]"` (pymilvus and milvus-lite):

>>> store = MilvusStore("rag.db")                       # Milvus Lite: a local file           # doctest: +SKIP
>>> store = MilvusStore("http://milvus.example:19530", token="user:password")              # doctest: +SKIP
>>> sync(store, chunks, backend)                        # from ragkit.stores                  # doctest: +SKIP

One collection (`ragkit_chunks` unless you name another) holds the chunk's fields and its vector,
keyed by chunk id, so writing a chunk again replaces it (`upsert`): an interrupted build can simply
be run again. The embedding model's name is kept with the collection, its dimension in the schema.
The vector index, chosen when the collection is created, is HNSW (`ann=True`) or FLAT, an exact scan
(`ann=False`); inner product of unit vectors is the cosine similarity. Milvus Lite always scans
exactly, whatever `ann` says: its engine (milvus-lite 2.5) refuses HNSW, and its one other index,
IVF_FLAT, probes with fixed settings and found only 80% of the exact top 10 among 106,000 real
embeddings. The exact scan takes about 10-15 ms at 100,000 384-d vectors on 2 cores.
"""
from __future__ import annotations

import logging
import re
import time
from contextlib import contextmanager
from typing import Callable, Sequence

from ..dates import DateRange
from ..errors import StoreError, StoreUnavailable
from ..types import Chunk, Embeddings, Hit
from .base import (CHUNK_FIELDS, StoreBase, batches, check_model, check_where, chunk_rows, dedupe,
                     reason, redact)

log = logging.getLogger("ragkit.milvus")

MODEL_PROPERTY = "ragkit.model"
TEXT_BYTES = 65_535  # Milvus's longest VARCHAR
# "Session": a client sees its own writes at once, and otherwise does not wait for the server's clock
# ("Strong" makes every search on a Milvus server wait for the next time tick, a few hundred ms).
CONSISTENCY = "Session"


class MilvusStore(StoreBase):
    """Chunks and their vectors in a Milvus collection; HNSW or exact search, filtered by metadata."""

    def __init__(self, uri: str, collection: str = "ragkit_chunks", *, ann: bool = True, ef: int = 100,
                 m: int = 16, ef_construction: int = 200, token: str = "", timeout: float = 10):
        from pymilvus import MilvusClient

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
            raise ValueError(f"collection name {collection!r}: use letters, digits and _")
        lite = "://" not in uri  # Milvus Lite: a local file
        self.url = f"milvus://{uri}" if lite else uri  # how it is shown
        self.collection = collection
        self.ann, self.ef, self.m, self.ef_construction = ann and not lite, ef, m, ef_construction
        try:
            self.client = MilvusClient(uri=uri, token=token, timeout=timeout)
        except Exception as exc:  # pymilvus raises its own exceptions, and grpc's
            raise StoreUnavailable(f"cannot connect to Milvus at {redact(uri)}: {reason(exc, self.url)}; "
                                   f"is the server running and the URL right?") from None
        with self._errors():
            self._read_model()

    def __repr__(self) -> str:
        return (f"MilvusStore({redact(self.url)!r}, collection={self.collection!r}, {len(self)} chunks, "
                f"model={self.model!r}, {'HNSW' if self.ann else 'exact'})")

    def __len__(self) -> int:
        if self.model is None:
            return 0
        with self._errors():
            rows = self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                     consistency_level=CONSISTENCY)
        return int(rows[0]["count(*)"])

    @contextmanager
    def _errors(self):
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException

        try:
            yield
        except MilvusUnavailableException as exc:
            raise StoreUnavailable(f"lost the connection to Milvus at {redact(self.url)}: "
                                   f"{reason(exc, self.url)}") from None
        except MilvusException as exc:
            raise StoreError(f"Milvus at {redact(self.url)}: {reason(exc, self.url)}") from None

    def _read_model(self) -> None:
        self.model = self.dim = None
        self.fields = list(CHUNK_FIELDS)
        if not self.client.has_collection(self.collection):
            return
        self.client.load_collection(self.collection)  # a collection is searched in memory: load it
        info = self.client.describe_collection(self.collection)
        vector = next(f for f in info["fields"] if f["name"] == "vector")
        model = info.get("properties", {}).get(MODEL_PROPERTY) or vector.get("description")
        self.model, self.dim = model or None, int(vector["params"]["dim"])
        # a collection made before chunks had pages (dates) has no such field: its chunks read as 0 ("")
        self.fields = [f for f in CHUNK_FIELDS if f in {field["name"] for field in info["fields"]}]
        index = self.client.describe_index(self.collection, "vector") or {}
        self.ann = index.get("index_type", "HNSW" if self.ann else "FLAT") == "HNSW"

    def _create(self, model: str, dim: int) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=1024)
        for name in ("doc_id", "title", "section", "source"):
            schema.add_field(name, DataType.VARCHAR, max_length=4096)
        schema.add_field("date", DataType.VARCHAR, max_length=10)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_BYTES)
        for name in ("position", "start", "end", "n_tokens", "page"):
            schema.add_field(name, DataType.INT64)
        # The model's name, twice: Milvus Lite 2.5 keeps no collection properties, Milvus Lite 3 no descriptions.
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim, description=model)
        index = self.client.prepare_index_params()
        if self.ann:
            index.add_index("vector", index_type="HNSW", metric_type="IP",
                            params={"M": self.m, "efConstruction": self.ef_construction})
        else:
            index.add_index("vector", index_type="FLAT", metric_type="IP")
        self.client.create_collection(self.collection, schema=schema, index_params=index,
                                      consistency_level=CONSISTENCY, properties={MODEL_PROPERTY: model})
        self.model, self.dim, self.fields = model, dim, list(CHUNK_FIELDS)

    def upsert(self, chunks: Sequence[Chunk], embeddings: Embeddings, *, batch_size: int = 500,
               progress: bool | Callable = False) -> int:
        """Write chunks and their vectors in batches, replacing any with the same id; return how many."""
        vectors = check_model(f"collection {self.collection} at {redact(self.url)}", self.model, self.dim,
                              embeddings, "these vectors")
        chunks, vectors = dedupe(list(chunks), vectors)
        too_long = [c.id for c in chunks if len(c.text.encode("utf-8")) > TEXT_BYTES]
        if too_long:
            raise ValueError(f"chunk {too_long[0]} is longer than Milvus stores ({TEXT_BYTES} bytes); chunk smaller")
        with self._errors():
            if self.model is None:
                self._create(embeddings.model, int(vectors.shape[1]))
            rows = [{f: v for f, v in zip(CHUNK_FIELDS, row) if f in self.fields} for row in chunk_rows(chunks)]
            for start, stop in batches(len(rows), batch_size, progress, f"writing to {self.collection}"):
                self.client.upsert(self.collection, [{**rows[i], "vector": vectors[i].tolist()}
                                                     for i in range(start, stop)])
            self.client.flush(self.collection)  # seal the rows into segments, which get the HNSW index
            if self.ann:
                self.wait_for_index()
        return len(chunks)

    def wait_for_index(self, rows: int | None = None, timeout: float = 600.0, poll: float = 0.5) -> bool:
        """Wait until a Milvus server searches all `rows` (default: every row) through the HNSW index;
        return False on timeout.

        After a write, a server seals the new rows into segments, builds their index and hands them
        to its query nodes, all in the background (about 10 s for 5,000 rows on a Milvus 2.3 server).
        Until then it searches them through a temporary index: on SciFact the top 10 held 92% of the
        exact top 10 until the indexed segments were loaded, then 99.8%.
        """
        rows = len(self) if rows is None else rows
        deadline = time.monotonic() + timeout
        with self._errors():
            while True:
                info = self.client.describe_index(self.collection, "vector") or {}
                if info.get("state") == "Failed":
                    raise StoreError(f"Milvus could not build the index of {self.collection} at "
                                     f"{redact(self.url)}: {info.get('index_state_fail_reason') or 'no reason given'}")
                indexed = sum(s.num_rows for s in self.client.list_loaded_segments(self.collection)
                              if s.index_name and getattr(s.state, "name", str(s.state)).endswith("Sealed"))
                if indexed >= rows:
                    return True
                if time.monotonic() > deadline:
                    log.warning("the HNSW index of %s covers %d of %d rows so far; until it covers them all, "
                                "searches find fewer of the true nearest neighbours", self.collection, indexed, rows)
                    return False
                time.sleep(poll)

    def _filter(self, where: dict | None) -> str:
        """Return a Milvus filter expression, e.g. `doc_id in ["faq"] and date >= "2024-01-01"`."""
        terms = []
        for name, values in check_where(where).items():
            if not isinstance(values, DateRange):
                terms.append(f"{name} in [{', '.join(map(_literal, values))}]")
                continue
            if name not in self.fields:
                raise StoreError(f"collection {self.collection} at {redact(self.url)} was made before chunks had "
                                 f"dates, so it cannot filter on them; rebuild it (ragkit index ... --store ...)")
            terms += [f"{name} {op} {_literal(bound)}" for op, bound in values.conditions()]  # text comparisons
        return " and ".join(terms)

    def delete(self, where: dict) -> int:
        """Remove the chunks matching `where` (e.g. {"doc_id": "faq"}); return how many."""
        expr = self._filter(where)
        if not expr:
            raise ValueError("delete needs a filter, e.g. {'doc_id': 'faq'}; use clear() to empty the store")
        if self.model is None:
            return 0
        with self._errors():
            before = len(self)
            self.client.delete(self.collection, filter=expr)
            return before - len(self)

    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """Return the top k hits for every query vector, in one request."""
        vectors = check_model(f"collection {self.collection} at {redact(self.url)}", self.model, self.dim,
                              queries, "the query vectors")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.model is None:
            return [[] for _ in vectors]
        expr = self._filter(where)
        search_params = {"metric_type": "IP", "params": {"ef": max(self.ef, k)} if self.ann else {}}
        with self._errors():
            results = self.client.search(self.collection, data=vectors.tolist(), limit=k, filter=expr,
                                         consistency_level=CONSISTENCY,
                                         output_fields=self.fields[1:],
                                         search_params=search_params, anns_field="vector")
        return [[Hit(Chunk(hit["id"], **{f: hit["entity"][f] for f in self.fields[1:]}), float(hit["distance"]), rank)
                 for rank, hit in enumerate(result, start=1)] for result in results]

    def ids(self) -> set[str]:
        if self.model is None:
            return set()
        out: set[str] = set()
        quiet = logging.getLogger("pymilvus")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # Milvus Lite has no MVCC timestamp to give; pymilvus warns
        try:
            with self._errors():
                it = self.client.query_iterator(self.collection, batch_size=1000, filter="", output_fields=["id"])
                while batch := it.next():
                    out.update(row["id"] for row in batch)
                it.close()
        finally:
            quiet.setLevel(level)
        return out

    def clear(self) -> None:
        """Drop the collection (its vectors, chunks and model record)."""
        with self._errors():
            self.client.drop_collection(self.collection)
        self.model = self.dim = None

    def close(self) -> None:
        self.client.close()


def _literal(value: str) -> str:
    """Return a string as a Milvus expression literal, escaped so no value can change the expression.

    >>> print(_literal('say "hi"'))
    "say \\"hi\\""
    """
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'
