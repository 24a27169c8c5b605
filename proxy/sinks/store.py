"""The audit store writer: fact rows -> Parquet segments, exactly once, never pulled from under a reader.

Runs on the recorder's worker thread only (never the event loop). Rows are buffered per table;
`flush` writes one segment per table through an in-memory DuckDB connection (COPY to a hidden
temp file, then an atomic rename).

Segment files have stable names, `<slot>-<n>.parquet`, and are never deleted while proxies run:
a file is only ever atomically replaced (by new rows, or by a zero-row placeholder once its rows
were merged elsewhere). So a reader that globbed a name always finds a valid file there, and
`duckdb -readonly` queries never fail because a compaction ran. Which names hold live rows, and
which journal range each covers, is the slot's *manifest*, written atomically together with the
journal checkpoint in STORE/journal/<slot>/checkpoint.json.

Exactly once across crashes: a segment written after the last checkpoint is not in the manifest;
`begin_slot` turns every such file into a placeholder before that journal is replayed, so replayed
records are written once. The same repair finishes a compaction that crashed half-way.

When the store cannot be written (read-only directory, disk full) rows stay buffered, the
journal keeps the records, and flush retries with backoff; nothing the proxy serves waits on it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from analytics import store as layout
from analytics.schema import to_row
from analytics.store import one_line
from proxy.recording import journal
from proxy.serving.exchange import Exchange
from proxy.facts import Fact
from proxy.recording.journal import Position

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
    """Per-table row buffer, and how a batch becomes Parquet.

    Why JSON: the batch is serialized column-wise by orjson (C, no per-value Python work) and
    DuckDB parses and writes it with the GIL released, which keeps the event loop's share of the
    GIL high; binding Python values one by one costs about twice as much.
    """

    def __init__(self, name: str, fact_cls: type) -> None:
        self.name = name
        self.columns = layout.table_columns(fact_cls)
        self.names = [c for c, _ in self.columns]
        spec = ", ".join(f"'{c}': '{t}[]'" for c, t in self.columns)
        unnest = ", ".join(f'UNNEST("{c}") AS "{c}"' for c, _ in self.columns)
        self.select_sql = (f"SELECT {unnest} FROM read_json('{{path}}', columns={{{{{spec}}}}}, "
                           "format='unstructured', maximum_object_size=2147483647)")
    def batch_json(self, rows: list[tuple[Any, ...]]) -> bytes:
        doc = dict(zip(self.names, map(list, zip(*rows))))
        try:
            return orjson.dumps(doc, default=str)
        except (TypeError, orjson.JSONEncodeError):  # lone surrogates, ints past 64 bits: hostile input
            return orjson.dumps({k: [_clean(v) for v in vs] for k, vs in doc.items()}, default=str)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return journal.text_safe(value)  # the same text a replay of the journal would store
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value



class _Chunk:
    """Buffered rows of consecutive exchanges, written as one segment per table. A backlog is
    several chunks, so after an outage it is written in bounded pieces, each one committed (and
    its journal range released) before the next: one flush of everything may never fit."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.first: Position | None = None
        self.last: Position | None = None
        self.records = 0
        self.unjournaled = 0


class StoreSink:
    """Sink that writes facts to STORE/tables/*; see the module docstring for the guarantees."""

    wants_replay = True  # journal replay at start-up is for the store; metrics and spans skip it

    def __init__(
        self,
        store: str | os.PathLike[str],
        *,
        compact_after: int = 24,
        compact_max_bytes: int = 8 * MiB,
        compact_every: float = 5.0,
        max_deferred: int = 12,
        compact_limit: int = 64,
        placeholder_limit: int = 64,
        chunk_records: int = 500,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = Path(store).absolute()
        self.compact_after = compact_after
        self.compact_max_bytes = compact_max_bytes
        self.compact_every = compact_every  # seconds between compaction checks
        self._next_compact = clock() + compact_every
        # a reader may stay for hours: past these bounds compaction runs anyway (see compact)
        self.max_deferred = max_deferred
        self.compact_limit = compact_limit
        self.placeholder_limit = placeholder_limit
        self._deferred = 0
        self.max_backoff = max_backoff
        self.chunk_records = chunk_records
        self.clock = clock
        self.on_commit: Callable[[str, Position], None] | None = None  # set by the recorder
        self.on_flush: list[Callable[[float], None]] = []  # flush durations, for the metrics sink
        self.errors: dict[str, int] = {}
        self.flushes = 0
        self.compactions_deferred = 0  # compaction checks skipped because a reader was present
        self.pending_records = 0  # exchanges buffered, not yet in a committed segment
        self.unjournaled_pending = 0  # of those, the ones the journal could not take
        self._con: duckdb.DuckDBPyConnection | None = None
        self._tables: dict[str, _Table] = {}
        self._slot: str | None = None
        self._position: Position | None = None
        self._chunks: list[_Chunk] = []  # oldest first; the last one takes new rows
        self._backoff = 0.0
        self._retry_at = 0.0
        self._unjournaled = 0  # segments written with no journal slot at all
        self._manifest: dict[str, dict[str, Any]] = {}  # table -> segment name -> journal range | None (free)
        self._committed: Position | None = None
        self.healthy = True

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the layout (idempotent). Raises if the store directory is unusable."""
        # One thread: segments are small, and DuckDB's default (a thread
        # per core, each with its own buffers) grew the proxy's RSS at every compaction (soak).
        self._con = duckdb.connect(":memory:", config={"threads": 1})
        self._tables = {name: _Table(name, cls) for name, cls in layout.fact_tables().items()}
        layout.ensure_schema_segments(self.store, self._con)

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.open()
        assert self._con is not None
        return self._con

    def close(self) -> None:
        self.flush()
        if self._slot is not None and not self.pending_records and not layout.readers_present(self.store):
            with contextlib.suppress(Exception):  # a full disk: the next start tries again
                self._drop_placeholders(keep=0)
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
        self._manifest = {}
        self._committed = None
        if slot is None:
            return None
        state = journal.read_state(self.store / "journal" / slot)
        self._manifest = {t: dict(v) for t, v in (state.get("segments") or {}).items()}
        self._committed = journal.read_checkpoint(self.store / "journal" / slot)
        # with no reader about, no query can have planned a stale name: remove it rather than
        # leave an empty placeholder behind (they piled up by the thousand under a long reader)
        readers = layout.readers_present(self.store)
        for table in self._tables:
            directory = layout.tables_dir(self.store) / table
            live = {n for n, rng in self._manifest.get(table, {}).items() if rng is not None}
            for name in os.listdir(directory):
                if name.startswith(f".{slot}-") and name.endswith(".tmp"):
                    _unlink(directory / name)
                elif layout.segment_slot(name) == slot and name not in live:
                    if readers:
                        self._placeholder(table, name)
                    else:
                        _unlink(directory / name)
        if not readers:
            with contextlib.suppress(OSError):  # a full disk: they wait for the next start
                self._drop_placeholders(keep=0)
        return self._committed

    def journal_position(self, slot: str | None, position: Position | None) -> None:
        """The recorder says where in the journal the next on_exchange comes from (None: not journaled)."""
        if slot is not None and slot != self._slot:
            raise RuntimeError(f"journal_position for slot {slot} while writing {self._slot}")
        self._position = position

    # --- Sink ---------------------------------------------------------------------------------

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        self._connection()
        if not self._chunks or self._chunks[-1].records >= self.chunk_records:
            self._chunks.append(_Chunk())
        chunk = self._chunks[-1]
        for fact in facts:
            chunk.rows.setdefault(fact.TABLE, []).append(to_row(fact))
        pos = self._position
        self._position = None
        if pos is not None:
            if chunk.first is None:
                chunk.first = pos
            chunk.last = pos
        else:
            chunk.unjournaled += 1
            self.unjournaled_pending += 1
        chunk.records += 1
        self.pending_records += 1

    def flush(self) -> bool:
        """Write buffered rows. True when nothing is left pending. Never raises."""
        if not self.pending_records:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        started = time.perf_counter()
        recovered = 0
        while self._chunks:
            chunk = self._chunks[0]
            written: list[tuple[str, str]] = []
            try:
                self._write_segments(chunk, written)
            except Exception as exc:
                for table, name in written:  # not in the manifest: make sure no reader counts them
                    with contextlib.suppress(Exception):
                        self._placeholder(table, name)
                kind = error_kind(exc)
                self.errors[kind] = self.errors.get(kind, 0) + 1
                self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
                self._retry_at = now + self._backoff
                level = logging.ERROR if self.healthy else logging.DEBUG
                log.log(level, "store: flush of %d exchanges failed (%s: %s); keeping them in the journal, retrying",
                        self.pending_records, kind, one_line(exc))
                self.healthy = False
                return False
            self._chunks.pop(0)
            self.pending_records -= chunk.records
            self.unjournaled_pending -= chunk.unjournaled
            if not self.healthy:
                recovered += chunk.records
            if self._committed is not None and self._slot is not None and self.on_commit is not None:
                self.on_commit(self._slot, self._committed)  # its journal range can go: room for the next
        if not self.healthy:
            log.warning("store: writable again, flushed %d pending exchanges", recovered)
        self.healthy = True
        self._backoff = 0.0
        self.flushes += 1
        elapsed = time.perf_counter() - started
        for callback in self.on_flush:
            callback(elapsed)
        if self.clock() >= self._next_compact:
            self._next_compact = self.clock() + self.compact_every
            self.compact()
        return True

    @property
    def retry_at(self) -> float:
        """Clock time before which flush() will not try again (backoff)."""
        return self._retry_at

    def discard(self) -> None:
        """Forget the buffered rows (they are all in the journal; the recorder replays them)."""
        self._chunks.clear()
        self.pending_records = self.unjournaled_pending = 0
        self._position = None

    def _write_segments(self, chunk: _Chunk, written: list[tuple[str, str]]) -> None:
        con = self._connection()
        rng: list[list[int]] | str = "unjournaled"
        if chunk.first is not None and chunk.last is not None:
            rng = [[chunk.first.seq, chunk.first.offset], [chunk.last.seq, chunk.last.offset]]
        manifest = {t: dict(v) for t, v in self._manifest.items()}
        # a reader's running query may have planned a placeholder: then only brand-new names
        fresh = bool(chunk.rows) and layout.readers_present(self.store)
        for table in self._tables.values():
            rows = chunk.rows.get(table.name)
            if not rows:
                continue
            name = self._free_name(table.name, manifest, fresh=fresh) if self._slot else self._loose_name()
            directory = layout.tables_dir(self.store) / table.name
            tmp = directory / f".{name}.tmp"
            batch = directory / f".{name}.json.tmp"
            batch.write_bytes(table.batch_json(rows))
            try:
                select = table.select_sql.format(path=_sql_path(batch))
                con.execute(f"COPY ({select}) TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)")
            finally:
                _unlink(batch)
            os.replace(tmp, directory / name)
            written.append((table.name, name))
            manifest.setdefault(table.name, {})[name] = rng
        if self._slot is None:
            return  # no journal at all: nothing to checkpoint, the rows are simply stored
        committed = chunk.last or self._committed
        journal.write_checkpoint(self.store / "journal" / self._slot, committed, segments=manifest)
        self._manifest = manifest
        self._committed = committed

    def _free_name(self, table: str, manifest: dict[str, dict[str, Any]], also_used: Iterable[str] = (),
                   *, fresh: bool = False) -> str:
        """The lowest segment name not holding live rows (a placeholder is reused), or with
        `fresh`, the lowest name with no file at all."""
        known = manifest.get(table, {})
        used = set(known) if fresh else {n for n, rng in known.items() if rng is not None}
        used |= set(also_used)
        directory = layout.tables_dir(self.store) / table
        n = 0
        while (name := layout.segment_name(self._slot or "", n)) in used or (fresh and (directory / name).exists()):
            n += 1
        return name

    def _loose_name(self) -> str:
        self._unjournaled += 1
        return f"mem{os.getpid()}_{int(time.time() * 1000)}_{self._unjournaled}.parquet"

    def _placeholder(self, table: str, name: str) -> None:
        """Atomically replace a segment by a zero-row file: its name stays valid for readers."""
        directory = layout.tables_dir(self.store) / table
        schema = directory / layout.SCHEMA_SEGMENT
        target = directory / name
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == schema.stat().st_size and target.read_bytes() == schema.read_bytes():
                return
        tmp = directory / f".{name}.tmp"
        shutil.copyfile(schema, tmp)
        os.replace(tmp, target)

    # --- compaction ---------------------------------------------------------------------------

    def compact(self) -> int:
        """Merge the current slot's small segments into one so the number of live files stays
        bounded. The parts become placeholders (their names keep existing for readers)."""
        if self._slot is None or self.pending_records:
            return 0
        readers = layout.readers_present(self.store)
        if readers:
            # turning parts into placeholders would replace files a reader's query may have
            # planned: wait for the reader to leave, but not for ever. A session held open for
            # hours would pile up files (and slow every query); past max_deferred checks or
            # compact_limit live files, merge anyway: only a query running at that very
            # moment can fail, and it can be run again.
            most = max((sum(rng is not None for rng in m.values()) for m in self._manifest.values()), default=0)
            if self._deferred < self.max_deferred and most < self.compact_limit:
                self._deferred += 1
                self.compactions_deferred += 1
                return 0
            log.info("store: compacting although a reader is present (%d checks deferred, %d live segments)",
                     self._deferred, most)
        self._deferred = 0
        merged = self._merge()
        if readers:
            # the oldest placeholders are the least likely to be in a running query's plan
            self._drop_placeholders(keep=self.placeholder_limit)
        return merged

    def _drop_placeholders(self, keep: int) -> None:
        """Delete all but the `keep` newest placeholders of the slot, and forget their names."""
        assert self._slot is not None
        manifest = {t: dict(v) for t, v in self._manifest.items()}
        dropped = []
        for table, names in manifest.items():
            directory = layout.tables_dir(self.store) / table
            free = sorted((n for n, rng in names.items() if rng is None), key=lambda n: _mtime(directory / n))
            for name in free[: max(0, len(free) - keep)]:
                del names[name]
                dropped.append(directory / name)
        if not dropped:
            return
        # the manifest first: a crash in between leaves files begin_slot removes, not names it trusts
        journal.write_checkpoint(self.store / "journal" / self._slot, self._committed, segments=manifest)
        self._manifest = manifest
        for path in dropped:
            _unlink(path)

    def _merge(self) -> int:
        merged = 0
        con = self._connection()
        for table in self._tables:
            directory = layout.tables_dir(self.store) / table
            live = {n: rng for n, rng in self._manifest.get(table, {}).items() if rng is not None}
            if len(live) < self.compact_after:
                continue
            small = sorted(n for n in live if _size(directory / n) < self.compact_max_bytes)
            if len(small) < 2:
                continue
            manifest = {t: dict(v) for t, v in self._manifest.items()}
            for n in small:
                manifest[table][n] = None
            target = self._free_name(table, manifest, also_used=small)
            tmp = directory / f".{target}.tmp"
            files = ", ".join(f"'{_sql_path(directory / n)}'" for n in small)
            try:
                con.execute(f"COPY (SELECT * FROM read_parquet([{files}], union_by_name=true)) "
                            f"TO '{_sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)")
                os.replace(tmp, directory / target)
                manifest[table][target] = _span([live[n] for n in small])
                journal.write_checkpoint(self.store / "journal" / self._slot, self._committed, segments=manifest)
            except Exception as exc:
                _unlink(tmp)
                with contextlib.suppress(Exception):
                    if target not in live:
                        self._placeholder(table, target)
                log.warning("store: compaction of %s failed: %s", table, one_line(exc))
                continue
            self._manifest = manifest
            # a crash here leaves parts with live rows but no manifest entry: begin_slot repairs it
            for n in small:
                with contextlib.suppress(Exception):
                    self._placeholder(table, n)
            merged += len(small)
        return merged


def _span(ranges: list[Any]) -> Any:
    spans = [r for r in ranges if isinstance(r, list)]
    if not spans:
        return "unjournaled"
    return [min(r[0] for r in spans), max(r[1] for r in spans)]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("store: could not remove %s: %s", path, exc)
