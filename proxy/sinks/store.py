"""The audit store writer: fact rows -> immutable Parquet segments, exactly once.

Runs on the recorder's worker thread only (never the event loop). Rows are buffered per table;
`flush` writes one segment per table through an in-memory DuckDB connection (COPY to a hidden
temp file, then an atomic rename), then records in the slot's journal checkpoint the last
journal position those segments cover.

Exactly once across crashes: a segment's name carries the journal range it covers
(`<slot>-<first>-<last>.parquet`). A crash between the renames and the checkpoint leaves
segments past the checkpoint; `begin_slot` deletes them before that journal is replayed, so
replayed records are written once. Compaction merges a run of adjacent small segments into one
named by the run's range; a crash before the parts are deleted is repaired the same way (a
segment whose range lies inside another's is removed).

When the store cannot be written (read-only directory, disk full) rows stay buffered, the
journal keeps the records, and flush retries with backoff; nothing the proxy serves waits on it.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from analytics import store as layout
from analytics.schema import to_row
from analytics.store import one_line
from proxy import journal
from proxy.exchange import Exchange
from proxy.facts import Fact
from proxy.journal import Position

log = logging.getLogger("assistants_audit.store")

MiB = 1024 * 1024


def error_kind(exc: BaseException) -> str:
    """The `kind` label of assistants_audit_store_errors_total."""
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if code == errno.ENOSPC or "no space left" in text:
        return "disk_full"
    if code in (errno.EACCES, errno.EROFS, errno.EPERM) or any(s in text for s in ("permission denied", "not permitted", "read-only")):
        return "read_only"
    if isinstance(exc, (OSError, duckdb.IOException)):
        return "io"
    return "other"


class _Table:
    """Per-table buffer and the INSERT ... UNNEST statement that turns columns into rows fast."""

    def __init__(self, name: str, fact_cls: type) -> None:
        self.name = name
        self.columns = layout.table_columns(fact_cls)
        selects = ", ".join(f'UNNEST(${i + 1}::{t}[]) AS "{c}"' for i, (c, t) in enumerate(self.columns))
        self.create_sql = f"CREATE OR REPLACE TEMP TABLE buf AS SELECT {selects}"
        self.rows: list[tuple[Any, ...]] = []

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)


class StoreSink:
    """Sink that writes facts to STORE/tables/*; see the module docstring for the guarantees."""

    wants_replay = True  # journal replay at start-up is for the store; metrics and spans skip it

    def __init__(
        self,
        store: str | os.PathLike[str],
        *,
        compact_after: int = 32,
        compact_max_bytes: int = 8 * MiB,
        compact_every: float = 30.0,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = Path(store).absolute()
        self.compact_after = compact_after
        self.compact_max_bytes = compact_max_bytes
        # Compaction deletes files a reader may have just globbed (its query then fails with
        # "No such file"; rerunning it works): rare, batched, and only past a file-count bound.
        self.compact_every = compact_every
        self._next_compact = clock() + compact_every
        self.max_backoff = max_backoff
        self.clock = clock
        self.on_commit: Callable[[str, Position], None] | None = None  # set by the recorder
        self.on_flush: list[Callable[[float], None]] = []  # flush durations, for the metrics sink
        self.errors: dict[str, int] = {}
        self.flushes = 0
        self.pending_records = 0  # exchanges buffered, not yet in a committed segment
        self.unjournaled_pending = 0  # of those, the ones the journal could not take
        self._con: duckdb.DuckDBPyConnection | None = None
        self._tables: dict[str, _Table] = {}
        self._slot: str | None = None
        self._position: Position | None = None
        self._first: Position | None = None
        self._last: Position | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._unjournaled = 0  # segments named without a journal range (journal was failing)
        self.healthy = True

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the layout (idempotent). Raises if the store directory is unusable."""
        self._con = duckdb.connect(":memory:")
        self._tables = {name: _Table(name, cls) for name, cls in layout.fact_tables().items()}
        layout.ensure_schema_segments(self.store, self._con)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.open()
        assert self._con is not None
        return self._con

    def close(self) -> None:
        self.flush()
        if self._con is not None:
            self._con.close()
            self._con = None

    # --- journal bookkeeping ------------------------------------------------------------------

    def begin_slot(self, slot: str | None) -> Position | None:
        """Switch to rows from journal slot `slot`; repair its segments; return its checkpoint.

        The caller holds the slot's lock, so no other process writes segments named for it.
        """
        if self.pending_records:
            raise RuntimeError("begin_slot with unflushed rows")
        self._connection()
        self._slot = slot
        if slot is None:
            return None
        checkpoint = journal.read_checkpoint(self.store / "journal" / slot)
        for table in self._tables:
            directory = layout.tables_dir(self.store) / table
            for name in os.listdir(directory):
                if name.startswith(f".{slot}-") and name.endswith(".tmp"):
                    _unlink(directory / name)
            for seg in layout.list_data_segments(directory, slot):
                if checkpoint is None or seg.first > (checkpoint.seq, checkpoint.offset):
                    log.info("store: removing %s, written after the last checkpoint (will be replayed)", seg.path.name)
                    _unlink(seg.path)
            segments = layout.list_data_segments(directory, slot)
            for seg in segments:
                if any(o is not seg and o.first <= seg.first and seg.last <= o.last and (o.first, o.last) != (seg.first, seg.last)
                       for o in segments):
                    log.info("store: removing %s, already merged by a compaction", seg.path.name)
                    _unlink(seg.path)
        return checkpoint

    def journal_position(self, slot: str | None, position: Position | None) -> None:
        """The recorder says where in the journal the next on_exchange comes from (None: not journaled)."""
        if slot is not None and slot != self._slot:
            raise RuntimeError(f"journal_position for slot {slot} while writing {self._slot}")
        self._position = position

    # --- Sink ---------------------------------------------------------------------------------

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        self._connection()
        for fact in facts:
            self._tables[fact.TABLE].add(to_row(fact))
        pos = self._position
        self._position = None
        if pos is not None:
            if self._first is None:
                self._first = pos
            self._last = pos
        else:
            self.unjournaled_pending += 1
        self.pending_records += 1

    def flush(self) -> bool:
        """Write buffered rows. True when nothing is left pending. Never raises."""
        if not self.pending_records:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        started = time.perf_counter()
        written: list[Path] = []
        try:
            self._write_segments(written)
            if self._last is not None and self._slot is not None:
                journal.write_checkpoint(self.store / "journal" / self._slot, self._last)
        except Exception as exc:
            for path in written:
                _unlink(path)
            kind = error_kind(exc)
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
            self._retry_at = now + self._backoff
            level = logging.ERROR if self.healthy else logging.DEBUG
            log.log(level, "store: flush of %d exchanges failed (%s: %s); keeping them in the journal, retrying",
                    self.pending_records, kind, one_line(exc))
            self.healthy = False
            return False
        if not self.healthy:
            log.warning("store: writable again, flushed %d pending exchanges", self.pending_records)
        self.healthy = True
        self._backoff = 0.0
        committed = self._last
        for table in self._tables.values():
            table.rows.clear()
        self.pending_records = self.unjournaled_pending = 0
        self._first = self._last = None
        self.flushes += 1
        elapsed = time.perf_counter() - started
        for callback in self.on_flush:
            callback(elapsed)
        if committed is not None and self._slot is not None and self.on_commit is not None:
            self.on_commit(self._slot, committed)
        if self.clock() >= self._next_compact:
            self._next_compact = self.clock() + self.compact_every
            self.compact()
        return True

    def _write_segments(self, written: list[Path]) -> None:
        con = self._connection()
        if self._first is not None and self._last is not None and self._slot is not None:
            slot, first, last = self._slot, (self._first.seq, self._first.offset), (self._last.seq, self._last.offset)
        else:
            # rows whose journal append failed: a name outside any slot's range bookkeeping
            self._unjournaled += 1
            slot = f"{self._slot or 'x'}_mem{os.getpid()}"
            first = last = (int(time.time()), self._unjournaled)
        name = layout.segment_filename(slot, first, last)
        for table in self._tables.values():
            if not table.rows:
                continue
            directory = layout.tables_dir(self.store) / table.name
            tmp = directory / f".{name}.tmp"
            target = directory / name
            columns = [list(col) for col in zip(*table.rows)]
            con.execute(table.create_sql, columns)
            con.execute(f"COPY buf TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)")
            con.execute("DROP TABLE buf")
            os.replace(tmp, target)
            written.append(target)

    # --- compaction ---------------------------------------------------------------------------

    def compact(self) -> int:
        """Merge runs of adjacent small segments of the current slot so file counts stay bounded."""
        if self._slot is None or self.pending_records:
            return 0
        merged = 0
        con = self._connection()
        for table in self._tables:
            directory = layout.tables_dir(self.store) / table
            segments = layout.list_data_segments(directory, self._slot)
            if len(segments) <= self.compact_after:
                continue
            run = _longest_small_run(segments, self.compact_max_bytes)
            if len(run) < 2:
                continue
            name = layout.segment_filename(self._slot, run[0].first, run[-1].last)
            tmp = directory / f".{name}.tmp"
            files = ", ".join(f"'{_sql_path(s.path)}'" for s in run)
            try:
                con.execute(f"COPY (SELECT * FROM read_parquet([{files}], union_by_name=true)) "
                            f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)")
                os.replace(tmp, directory / name)
            except Exception as exc:
                _unlink(tmp)
                log.warning("store: compaction of %s failed: %s", table, one_line(exc))
                continue
            for seg in run:
                _unlink(seg.path)
            merged += len(run)
        return merged


def _longest_small_run(segments: list[layout.Segment], max_bytes: int) -> list[layout.Segment]:
    best: list[layout.Segment] = []
    current: list[layout.Segment] = []
    for seg in segments:
        if seg.size < max_bytes:
            current.append(seg)
            if len(current) > len(best):
                best = list(current)
        else:
            current = []
    return best


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("store: could not remove %s: %s", path, exc)
