"""The audit store on disk, and the read-only way in.

    STORE/tables/<table>/_schema.parquet          zero rows, the table's current columns
    STORE/tables/<table>/<slot>-<n>.parquet       a writer slot's segments (stable names)
    STORE/audit.duckdb                            views only (no data), for `duckdb -readonly`

Data lives in immutable Parquet segments written by the recorder (proxy.sinks.store) with an
atomic rename, so a reader never sees half a file and never needs a lock on data. The views
glob the segment files at query time: a new segment is visible to the next query.

DuckDB reads a segment's footer when it plans a query and opens the file again to scan it, so a
writer must not replace a file a running query has planned. Readers make themselves known with a
shared lock, which writers look for (`readers_present`) and never wait on: `duckdb -readonly
STORE/audit.duckdb` holds one on audit.duckdb (DuckDB's own), and `connect()` (`sql`, `report`)
one on STORE/.readers.lock. While a reader is present, writers only add new files.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import struct
import threading
from pathlib import Path
from typing import Any

import duckdb

from analytics import schema
from analytics.prices import (
    Prices,
    connection_models,
    cost_views_sql,
    install_price_tables,
    price_paths,
    price_views_sql,
    store_models,
    write_price_table,
)

log = logging.getLogger("assistants_audit.store")

VIEWS_SQL = Path(__file__).with_name("views.sql")
# audit.duckdb is written in an old storage format so older `duckdb` CLIs can open it too.
VIEWS_DB_STORAGE_VERSION = "v1.0.0"
SCHEMA_SEGMENT = "_schema.parquet"
# statements `assistants-audit sql` runs; everything else (DROP, COPY, ATTACH, INSTALL, SET...) is refused
READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


READERS_LOCK = ".readers.lock"
_FLOCK = "hhqqixxxx"  # struct flock on Linux: type, whence, start, len, pid
# A process's fcntl locks on a file all go when it closes *any* descriptor of that file, so the
# probe below and this process's own DuckDB use of audit.duckdb (write_views_db) take turns.
_PROBE = threading.Lock()
_held_reader_locks: dict[Path, int] = {}  # lock file -> descriptor kept open for the life of the process


def readers_present(store: str | os.PathLike[str]) -> bool:
    """Whether another process is reading the store right now (see the module docstring)."""
    for name in ("audit.duckdb", READERS_LOCK):
        with _PROBE:
            try:
                fd = os.open(Path(store) / name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                held = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            except OSError:
                continue
            finally:
                os.close(fd)
        if struct.unpack(_FLOCK, held)[0] != fcntl.F_UNLCK:
            return True
    return False


def announce_reader(store: Path) -> None:
    """Hold a shared lock on STORE/.readers.lock until this process exits (best effort: a store
    whose writer never started has nothing to protect, so without the file it goes unannounced).
    The writers create the file (ensure_schema_segments): a reader never writes to the store."""
    path = store / READERS_LOCK
    if path in _held_reader_locks:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return
    _held_reader_locks[path] = fd


class StoreError(Exception):
    """A user-facing store problem: one line, no traceback."""


# --- columns ---------------------------------------------------------------------------------


def table_columns(fact_cls: type) -> list[tuple[str, str]]:
    """[(column, duckdb type)] in dataclass field order (analytics.schema owns the mapping)."""
    return list(schema.columns(fact_cls))


def fact_tables() -> dict[str, type]:
    return dict(schema.TABLES)


# --- segment names ---------------------------------------------------------------------------

_SEGMENT_RE = re.compile(r"^(?P<slot>[A-Za-z0-9_]+)-(?P<n>\d{6})\.parquet$")


def segment_name(slot: str, n: int) -> str:
    """The n-th stable segment name of a writer slot (see proxy.sinks.store)."""
    return f"{slot}-{n:06d}.parquet"


def segment_slot(filename: str) -> str | None:
    m = _SEGMENT_RE.match(filename)
    return m.group("slot") if m else None


def segment_filename(slot: str, first: tuple[int, int], last: tuple[int, int]) -> str:
    """A one-off segment name for tools that build a store directly (tests, imports)."""
    return f"{slot}_{first[0]}_{first[1]}_{last[0]}_{last[1]}.parquet"


# --- layout ----------------------------------------------------------------------------------


def tables_dir(store: Path) -> Path:
    return Path(store).absolute() / "tables"


def glob_for(store: Path, table: str) -> str:
    return str(tables_dir(store) / table / "*.parquet")


def raw_view_sql(store: Path, table: str, schema: str | None = None) -> str:
    name = f"{schema}.{table}" if schema else table
    path = glob_for(store, table).replace("'", "''")
    return f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{path}', union_by_name=true)"


def public_views_sql(store: Path) -> str:
    """What audit.duckdb holds after the raw views: analytics/views.sql, the price views over
    STORE/tables/_prices/ and analytics/costs.sql."""
    return "\n".join([VIEWS_SQL.read_text(), price_views_sql(store), cost_views_sql()])


def ensure_schema_segments(store: Path, con: duckdb.DuckDBPyConnection) -> None:
    """Write each table's zero-row schema segment when missing or out of date (atomic rename).

    It is why a fresh store answers `SELECT * FROM runs` with no rows instead of an error, and
    why a new column shows up (NULL in old segments) through union_by_name.
    """
    tables_dir(store).mkdir(parents=True, exist_ok=True)
    (Path(store) / READERS_LOCK).touch(0o600)  # for the readers to lock (announce_reader)
    for table, cls in fact_tables().items():
        directory = tables_dir(store) / table
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / SCHEMA_SEGMENT
        columns = table_columns(cls)
        if target.exists():
            try:
                have = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{target}')").fetchall()
                if [(r[0], r[1]) for r in have] == columns:
                    continue
            except duckdb.Error:
                pass
        select = ", ".join(f"NULL::{ctype} AS {name}" for name, ctype in columns)
        tmp = directory / f".{SCHEMA_SEGMENT}.{os.getpid()}.tmp"  # several writers may start at once
        con.execute(f"COPY (SELECT {select} LIMIT 0) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, target)


def views_fingerprint(store: Path) -> str:
    text = "\n".join([str(tables_dir(store)), *sorted(fact_tables()), public_views_sql(store), VIEWS_DB_STORAGE_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()


_DUCKDB_MAGIC = (8, b"DUCK")  # offset and bytes of DuckDB's file header magic


def views_db_intact(store: Path) -> bool:
    """Whether STORE/audit.duckdb is there and starts like a DuckDB file (not deleted, not
    truncated by a full disk or a careless `> audit.duckdb`)."""
    with _PROBE:
        return _views_db_intact(store)


def _views_db_intact(store: Path) -> bool:
    offset, magic = _DUCKDB_MAGIC
    try:
        with open(Path(store) / "audit.duckdb", "rb") as f:
            return os.pread(f.fileno(), len(magic), offset) == magic
    except OSError:
        return False


def views_db_current(store: Path) -> bool:
    marker = Path(store) / ".views.sha256"
    try:
        return views_db_intact(store) and marker.read_text() == views_fingerprint(store)
    except FileNotFoundError:
        return False


def write_views_db(store: Path) -> None:
    """(Re)create STORE/audit.duckdb holding only views. Raises duckdb.IOException while a reader
    holds the file; the caller retries with backoff (it holds the file only for these statements)."""
    store = Path(store).absolute()
    with _PROBE:
        db = store / "audit.duckdb"
        if db.exists() and not _views_db_intact(store):
            db.unlink()  # DuckDB cannot attach a damaged file; it holds only views, so start anew
        _write_views_db(store)
    (store / ".views.sha256").write_text(views_fingerprint(store))


def _write_views_db(store: Path) -> None:
    if not all(p.exists() for p in price_paths(store).values()):
        write_price_table(store, store_models(store))  # the price views read these files
    con = duckdb.connect()
    try:
        db = str(store / "audit.duckdb").replace("'", "''")
        con.execute(f"ATTACH '{db}' AS audit (STORAGE_VERSION '{VIEWS_DB_STORAGE_VERSION}')")
        try:
            con.execute("USE audit")
            for table in fact_tables():
                con.execute(raw_view_sql(store, table))
            con.execute(public_views_sql(store))
            con.execute("USE memory")
        finally:
            con.execute("DETACH audit")
    finally:
        con.close()


# --- reading ---------------------------------------------------------------------------------


def connect(store: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A query connection on the store: in-memory DuckDB with the views, locked down.

    It never opens audit.duckdb, so it never contends with the writers; file access is limited to
    the store's tables and the configuration is locked, so queries cannot write files, attach
    databases or install extensions.
    """
    root = Path(store).absolute()
    tdir = tables_dir(root)
    if not tdir.is_dir():
        raise StoreError(f"no audit store at {root} (expected {tdir}; start the proxy with --store {store})")
    announce_reader(root)  # so writers do not replace a file this connection's queries planned
    attempts = 3
    while True:
        attempts -= 1
        try:
            return _connect(root, tdir)
        except duckdb.IOException as exc:
            # a writer removed a placeholder between DuckDB's glob and its read (it does that only
            # when a reader stays for long; see proxy.sinks.store): the next glob will not list it
            if "No such file" not in str(exc) or not attempts:
                raise


def _connect(root: Path, tdir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    try:
        for table, cls in fact_tables().items():
            if (tdir / table / SCHEMA_SEGMENT).exists():
                con.execute(raw_view_sql(root, table))
            else:  # a store being created right now: the table is empty so far
                cols = ", ".join(f'NULL::{ctype} AS "{name}"' for name, ctype in table_columns(cls))
                con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {cols} LIMIT 0")
        con.execute(VIEWS_SQL.read_text())
        if all(p.exists() for p in price_paths(root).values()):
            con.execute(price_views_sql(root))
        else:  # no writer has priced this store yet: price it on this connection, in memory
            install_price_tables(con, Prices.load(), connection_models(con))
        con.execute(cost_views_sql())
        con.execute(f"SET allowed_directories=['{str(tdir).replace(chr(39), chr(39) * 2)}/']")
        con.execute("SET enable_external_access=false")
        con.execute("SET autoinstall_known_extensions=false")
        con.execute("SET autoload_known_extensions=false")
        con.execute("SET lock_configuration=true")
    except BaseException:
        con.close()
        raise
    return con


def open_store(store: str | os.PathLike[str]) -> "Store":
    return Store(connect(store))


class Store:
    """Read-only queries: only SELECT / EXPLAIN statements (DESCRIBE, SHOW, SUMMARIZE are SELECTs)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def check(self, sql: str) -> None:
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as exc:
            raise StoreError(one_line(exc)) from None
        if not statements:
            raise StoreError("empty query")
        if len(statements) > 1:
            raise StoreError("one statement at a time, please")
        for st in statements:
            if st.type not in READ_STATEMENTS:
                kind = str(st.type).rsplit(".", 1)[-1]
                raise StoreError(f"read-only store: {kind} statements are not allowed (only SELECT, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN)")

    def query(self, sql: str, params: list[Any] | None = None, *, retries: int = 3) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run `sql` and return (column names, rows). Timestamps come back as ISO text.

        Retries when a segment vanished between the glob and the read (a compaction replaced it).
        """
        self.check(sql)
        attempt = 0
        while True:
            try:
                rel = self.con.sql(sql, params=params) if params else self.con.sql(sql)
                if rel is None:
                    return [], []
                names = list(rel.columns)
                types_ = [str(t) for t in rel.types]
                if any("TIME ZONE" in t or t.startswith("TIMESTAMP") for t in types_):
                    # the Python conversion of TIMESTAMPTZ needs pytz; text is what we render anyway
                    cols = ", ".join(
                        f'"{n}"::VARCHAR AS "{n}"' if types_[i].startswith("TIMESTAMP") else f'"{n}"'
                        for i, n in enumerate(c.replace('"', '""') for c in names)
                    )
                    rel = rel.query("q", f"SELECT {cols} FROM q")
                return names, rel.fetchall()
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                attempt += 1
                if attempt > retries or "No such file" not in str(exc) and "No files found" not in str(exc):
                    raise StoreError(one_line(exc)) from None
            except duckdb.Error as exc:
                raise StoreError(one_line(exc)) from None

    def close(self) -> None:
        self.con.close()


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
