"""The recording pipeline: journal on the event loop, everything else on one worker thread.

    submit(exchange)  [event loop]   one writev to the journal + SimpleQueue.put; never blocks, never raises
    worker thread "audit-recorder"   parse -> Dispatcher(sinks).on_exchange; flush every 0.5 s
    thread "audit-views"             (re)creates STORE/audit.duckdb when its views changed, with backoff

At start the worker replays, into the store only, every journal record not yet covered by a
checkpoint: first the slot this process claimed (left by a dead predecessor), then any orphan
slot (a crashed process's, its lock free). It looks for orphans again every 30 s.

Counters for the metrics sink (plain attributes, read on scrape): `queue_depth`,
`spooled_records` (accepted, not yet in the store), `lost_records` (could be neither journaled
nor stored), `errors` (by kind, incl. `journal`), and `flush_observers` (callbacks receiving each
flush duration in seconds).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from proxy import journal
from proxy.exchange import Exchange
from proxy.facts import ExchangeFact, Fact
from proxy.journal import JournalWriter, Position, Slot
from proxy.observers import Dispatcher, Sink
from proxy.sinks.store import StoreSink, error_kind

log = logging.getLogger("assistants_audit.recorder")

Parse = Callable[..., list[Fact]]
_STOP = object()
_REPLAY_BATCH = 1000  # exchanges per flush while replaying a journal
MiB = 1024 * 1024


def basic_facts(exchange: Exchange, *, capture_content: bool = False, parse_error: str | None = None) -> list[Fact]:
    """Just the ExchangeFact, from the Exchange alone. Used when the full parser is not installed
    or raised, so an exchange is never missing from the store."""
    when = datetime.fromtimestamp(exchange.started_at, tz=timezone.utc)
    ms = lambda s: None if s is None else s * 1000.0  # noqa: E731
    return [ExchangeFact(
        exchange_id=exchange.exchange_id, observed_at=when, worker=exchange.worker, origin=exchange.origin,
        started_at=when, duration_ms=exchange.duration_s * 1000.0, ttfb_ms=ms(exchange.ttfb_s),
        proxy_overhead_ms=exchange.proxy_overhead_s * 1000.0, method=exchange.method, path=exchange.path,
        route=exchange.path, operation="other", provider="openai", status_code=exchange.status,
        beta_header=exchange.header("openai-beta"), api_version=None, v1_semantics=False,
        azure_api_version=None, stream=False, upstream_request_id=exchange.header("x-request-id", response=True),
        processing_ms=None, ratelimit_remaining_requests=None, ratelimit_remaining_tokens=None,
        bytes_in=exchange.request_body_size, bytes_out=exchange.response_body_size,
        content_type=exchange.header("content-type", response=True),
        content_encoding=exchange.header("content-encoding", response=True), error_type=exchange.error_type,
        error_code=None, parse_error=parse_error, body_truncated=exchange.response_body_truncated,
        user_agent=exchange.header("user-agent"), sdk=None, sdk_lang=None, sdk_version=None, helper=None,
        retry_count=None, key_fingerprint=exchange.key_fingerprint, run_id=None, thread_id=None,
        assistant_id=None, vector_store_id=None, model=None,
    )]


def default_parse() -> Parse:
    try:
        from proxy.assistants import parse
    except ImportError as exc:
        if exc.name != "proxy.assistants":
            raise
        log.warning("proxy.assistants is not installed: recording exchanges only")
        return basic_facts
    return parse


class AuditRecorder:
    """Implements proxy.exchange.Recorder. start() before the first submit, close() at shutdown."""

    def __init__(
        self,
        settings: Any,
        sinks: Sequence[Sink],
        parse: Parse | None = None,
        *,
        flush_interval: float = 0.5,
        orphan_scan_interval: float = 30.0,
        segment_bytes: int = journal.DEFAULT_SEGMENT_BYTES,
        close_timeout: float = 10.0,
        queue_high_water: int = 2000,
        batch_size: int = 256,
        journal_rotate_seconds: float = 10.0,
        max_pending: int = 20000,
        views_check_interval: float = 5.0,
        journal_reserve: int | None = None,
        max_unjournaled: int = 20000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store_dir = Path(settings.store).absolute()
        self.capture_content = bool(getattr(settings, "capture_content", False))
        self.fsync = bool(getattr(settings, "journal_fsync", False))
        self.sinks = list(sinks)
        self.parse = parse or default_parse()
        self.flush_interval = flush_interval
        self.orphan_scan_interval = orphan_scan_interval
        self.segment_bytes = segment_bytes
        self.close_timeout = close_timeout
        self.queue_high_water = queue_high_water
        self.batch_size = batch_size
        self.journal_rotate_seconds = journal_rotate_seconds
        self._committed: Position | None = None  # the last of our records the store committed
        self.max_pending = max_pending
        self.views_check_interval = views_check_interval
        # free space the journal leaves to the store, so a backlog can always be written (and
        # its journal segments freed); None: a quarter of the volume, 1 to 64 MiB
        self.journal_reserve = journal_reserve
        self.max_unjournaled = max_unjournaled
        self._room = True  # the journal's volume has more than the reserve free
        self._room_checked = float("-inf")
        self.ledger: journal.Unjournaled | None = None
        self._ledger_lock = threading.Lock()
        # answered exchanges held in memory only: queued (in - out), then in the store's buffer;
        # each counter is written by one thread only
        self._unjournaled_in = 0
        self._unjournaled_out = 0
        self._dropping = False
        self.behind = False  # the store dropped its backlog and catches up from the journal
        self._store_skip_upto: Position | None = None
        self._skipped = 0  # exchanges left to the journal while behind
        self.clock = clock
        stores = [s for s in self.sinks if isinstance(s, StoreSink)]
        self.store: StoreSink | None = stores[0] if stores else None
        self._live = Dispatcher(self.sinks)
        self._replay = Dispatcher([s for s in self.sinks if getattr(s, "wants_replay", False)])
        self._others = Dispatcher([s for s in self.sinks if s is not self.store])
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.slot: Slot | None = None
        self.journal: JournalWriter | None = None
        self.lost_records = 0
        self.journal_errors = 0
        self.replayed = 0
        self._journal_failing = False
        # until the predecessor's records in our slot are stored, no live flush may checkpoint past them
        self._own_replayed = False
        self._worker: threading.Thread | None = None
        self._views: threading.Thread | None = None
        self._append_lock = threading.Lock()  # journal order == queue order, whoever calls submit
        self._stopping = threading.Event()
        self._opened = threading.Event()  # the store's layout exists: views can be created
        self.ready = threading.Event()  # set once start-up replay is done (tests, /readyz)
        if self.store is not None:
            self.store.on_commit = self._on_commit

    # --- counters for the metrics sink -------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def spooled_records(self) -> int:
        return self._queue.qsize() + self._skipped + (self.store.pending_records if self.store else 0)

    @property
    def errors(self) -> dict[str, int]:
        out = dict(self.store.errors) if self.store else {}
        if self.journal_errors:
            out["journal"] = self.journal_errors
        return out

    @property
    def flush_observers(self) -> list[Callable[[float], None]]:
        return self.store.on_flush if self.store else []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Claim a writer slot and open its journal (local file ops), then start the threads."""
        if self.store is not None:
            try:
                self.store_dir.mkdir(parents=True, exist_ok=True)
                self.slot = journal.claim_slot(self.store_dir)
                self.journal = JournalWriter(self.slot.journal_dir, segment_bytes=self.segment_bytes, fsync=self.fsync)
            except Exception as exc:  # serve anyway; records are kept in memory until the store works
                self.journal_errors += 1
                log.error("store %s: cannot open the journal (%s); recording in memory only", self.store_dir, exc)
            if self.slot is not None:
                self._count_lost(self.slot.name, self.slot.journal_dir)
                try:
                    self.ledger = journal.Unjournaled(self.slot.journal_dir)
                except OSError as exc:
                    log.error("journal %s: cannot keep the count of unjournaled exchanges (%s); a crash while "
                              "the disk is full would lose them without a trace", self.slot.name, exc)
            if self.journal is not None and self.journal_reserve is None:
                try:
                    volume = journal.volume_bytes(self.slot.journal_dir)
                except OSError:
                    volume = 256 * MiB
                self.journal_reserve = max(MiB, min(64 * MiB, volume // 4))
        self._worker = threading.Thread(target=self._run, name="audit-recorder", daemon=True)
        self._worker.start()
        if self.store is not None:
            self._views = threading.Thread(target=self._maintain_views, name="audit-views", daemon=True)
            self._views.start()

    def submit(self, exchange: Exchange) -> None:
        """Journal, then enqueue. Called on the event loop; must stay tiny and never raise."""
        writer = self.journal
        if writer is not None and self._journal_has_room():
            try:
                parts = journal.encode_exchange(exchange)
                with self._append_lock:  # uncontended on one event loop; keeps journal order == queue order
                    position = writer.append(parts)
                    # past the high-water mark only the position is queued: memory stays bounded
                    # and the worker reads the record back from the journal (page cache)
                    held = exchange if self._queue.qsize() < self.queue_high_water else None
                    self._queue.put((held, position))
            except Exception as exc:
                self.journal_errors += 1
                if not self._journal_failing:
                    self._journal_failing = True
                    log.error("journal: append failed (%s); keeping records in memory until stored", exc)
            else:
                if self._journal_failing:
                    self._journal_failing = False
                    log.warning("journal: writable again")
                return
        elif writer is not None:
            self.journal_errors += 1  # under the reserve: not journaled either
        self._hold_unjournaled(exchange)

    def _journal_has_room(self) -> bool:
        """False while the journal's volume has less than the reserve free (checked every 0.1 s):
        a journal that filled the disk would leave the store no room to write its backlog, and
        the backlog would never leave the journal."""
        now = self.clock()
        if now - self._room_checked < 0.1:
            return self._room
        self._room_checked = now
        assert self.slot is not None and self.journal_reserve is not None
        try:
            room = journal.free_bytes(self.slot.journal_dir) >= self.journal_reserve
        except OSError:
            room = True  # let the append find out
        if room != self._room:
            self._room = room
            if room:
                log.warning("journal: free space is back above the reserve; journaling again")
            else:
                log.error("journal: under %d bytes free in %s; keeping new exchanges in memory (up to %d) so the "
                          "store has room to catch up", self.journal_reserve, self.slot.journal_dir,
                          self.max_unjournaled)
        return room

    def _hold_unjournaled(self, exchange: Exchange) -> None:
        """Keep an exchange the journal did not take in memory (bounded), and count it on disk."""
        held = self._unjournaled_in - self._unjournaled_out + (self.store.unjournaled_pending if self.store else 0)
        if self.store is not None and held >= self.max_unjournaled:
            self.lost_records += 1
            if not self._dropping:
                self._dropping = True
                log.error("store: %d exchanges held in memory, neither journal nor store can take more; "
                          "dropping exchanges (counted in assistants_audit_store_lost_records_total)", held)
            return
        if self._dropping:
            self._dropping = False
            log.warning("store: %d exchanges were dropped in all; recording again", self.lost_records)
        self._unjournaled_in += 1
        self._queue.put((exchange, None))
        self._write_ledger()

    def _write_ledger(self) -> None:
        """The count of answered exchanges that exist only in memory, where the next process finds it."""
        if self.ledger is None:
            return
        with self._ledger_lock:
            held = self._unjournaled_in - self._unjournaled_out + (self.store.unjournaled_pending if self.store else 0)
            try:
                self.ledger.set(held)
            except OSError:
                pass  # allocated up front; only a broken disk gets here

    def _count_lost(self, name: str, directory: Path) -> None:
        """What a dead process of slot `name` answered but neither journaled nor stored."""
        try:
            lost = journal.Unjournaled.take_lost(directory)
        except OSError as exc:
            log.error("journal %s: cannot read the count of unjournaled exchanges: %s", name, exc)
            return
        if lost:
            self.lost_records += lost
            log.error("journal %s: %d answered exchanges were lost: the process that served them died while the "
                      "disk was full, before they were journaled or stored (assistants_audit_store_lost_records_total)",
                      name, lost)

    def close(self) -> None:
        """Drain the queue into the sinks, flush, release the slot. Unflushed journaled records
        stay in the journal and are replayed by the next process on this store."""
        if self._worker is None:
            return
        self._stopping.set()
        self._queue.put(_STOP)
        self._worker.join(self.close_timeout + 15)
        if self._worker.is_alive():
            log.error("recorder did not stop within %.0f s; the journal keeps what was not stored", self.close_timeout)
        if self._views is not None:
            self._views.join(5)
        if self.journal is not None:
            self.journal.close()
        if self.ledger is not None:
            self.ledger.close()
        if self.slot is not None:
            self.slot.close()
        self._worker = None

    # --- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._startup()
        except Exception:
            log.exception("recorder start-up failed; recording live traffic only")
        self.ready.set()
        next_flush = self.clock() + self.flush_interval
        next_scan = self.clock() + self.orphan_scan_interval
        while True:
            timeout = max(0.0, next_flush - self.clock())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            # Drain what is queued in one go: a GIL hand-off per exchange (sleep(0) after each)
            # cost the event loop more than the work itself at a few thousand requests/s.
            batch = 0
            while item is not None and item is not _STOP:
                try:
                    self._dispatch_live(*item)
                except Exception:  # a bug must not stop recording for the rest of the process
                    self.lost_records += 1
                    log.exception("recorder: exchange dropped by an unexpected error")
                batch += 1
                if batch >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if item is _STOP:
                break
            now = self.clock()
            try:
                if now >= next_flush:
                    next_flush = now + self.flush_interval
                    self._live.flush()
                    self._bound_store_backlog()
                    self._rotate_journal()
                    self._write_ledger()
                if now >= next_scan and not self.behind:
                    next_scan = now + self.orphan_scan_interval
                    self._scan_orphans()
            except Exception:  # the journal keeps what was not stored; the next tick retries
                log.exception("recorder: periodic work failed; continuing")
        self._shutdown()

    def _startup(self) -> None:
        store = self.store
        if store is None:
            return
        if not self._retry(store.open, "open the store"):
            return
        self._opened.set()
        if self.slot is not None and self.journal is not None:
            # what a dead predecessor in this slot journaled but never stored
            if not self._replay_slot(self.slot.name, self.slot.journal_dir, below_seq=self.journal.first_seq):
                return
        self._own_replayed = True
        self._scan_orphans()

    def _retry(self, fn: Callable[[], Any], what: str) -> bool:
        """Call fn until it succeeds (backoff up to 10 s) or the recorder is stopping."""
        delay = 0.25
        while True:
            try:
                fn()
                return True
            except Exception as exc:
                kind = error_kind(exc)
                if self.store is not None:
                    self.store.errors[kind] = self.store.errors.get(kind, 0) + 1
                log.error("store: cannot %s (%s: %s); retrying in %.1f s", what, kind, exc, delay)
            if self._stopping.wait(delay):
                return False
            delay = min(10.0, delay * 2)

    def _flush_until_done(self) -> bool:
        store = self.store
        assert store is not None
        delay = 0.25
        while not store.flush():
            if self._stopping.wait(delay):
                return store.flush()
            delay = min(10.0, delay * 2)
        return True

    def _facts(self, exchange: Exchange) -> list[Fact]:
        try:
            return list(self.parse(exchange, capture_content=self.capture_content))
        except Exception as exc:  # the parser must not lose an exchange
            log.exception("parse failed for exchange %s", exchange.exchange_id)
            return basic_facts(exchange, parse_error=f"{type(exc).__name__}: {exc}"[:500])

    def _dispatch_live(self, exchange: Exchange | None, position: Position | None) -> None:
        if position is None:
            self._unjournaled_out += 1  # now in the store's buffer (unjournaled_pending) or lost
        if exchange is None:
            assert self.slot is not None and position is not None
            try:
                exchange = journal.decode_exchange(journal.read_record(self.slot.journal_dir, position))
            except Exception as exc:  # only a damaged disk gets here
                self.lost_records += 1
                log.error("journal: cannot read back record %s: %s", position, exc)
                return
        facts = self._facts(exchange)
        store = self.store
        if store is not None:
            if self.behind or (self._store_skip_upto is not None and position is not None
                               and position <= self._store_skip_upto):
                # the store catches up on these from the journal
                if self.behind:
                    self._skipped += 1
                self._others.on_exchange(exchange, facts)
                return
            store.journal_position(self.slot.name if self.slot else None, position)
        self._live.on_exchange(exchange, facts)

    def _bound_store_backlog(self) -> None:
        """While the store is unwritable, rows pile up in memory. Past `max_pending` (and when all
        of them are in the journal) drop them and catch up from the journal once it works again."""
        store = self.store
        if store is None or self.slot is None:
            return
        if not self.behind:
            if store.healthy or store.pending_records <= self.max_pending or store.unjournaled_pending:
                return
            log.error("store: unwritable for a while; %d pending exchanges stay in the journal only, "
                      "catching up from it when the store works again", store.pending_records)
            self._skipped = store.pending_records
            store.discard()
            self.behind = True
            return
        if self.clock() < store.retry_at:
            return
        if self._catch_up():
            self.behind = False
            log.warning("store: caught up from the journal")
        else:
            store.discard()

    def _catch_up(self) -> bool:
        """Store every record of our own journal after the checkpoint, in batches."""
        store = self.store
        assert store is not None and self.slot is not None
        store.begin_slot(self.slot.name)
        last = None
        for position, payload in journal.read_after(self.slot.journal_dir, journal.read_checkpoint(self.slot.journal_dir)):
            exchange = journal.decode_exchange(payload)
            store.journal_position(self.slot.name, position)
            self._replay.on_exchange(exchange, self._facts(exchange))
            last = position
            if store.pending_records >= _REPLAY_BATCH and not store.flush():
                return False
        if not store.flush():
            return False
        self._store_skip_upto = last  # queued items up to here are already stored
        self._skipped = 0
        return True

    def _replay_slot(self, name: str, directory: Path, below_seq: int | None = None) -> bool:
        """Store every record of slot `name` past its checkpoint. The caller holds the slot lock."""
        store = self.store
        assert store is not None
        if not self._retry(lambda: store.begin_slot(name), f"prepare slot {name}"):
            return False
        checkpoint = journal.read_checkpoint(directory)
        count = 0
        for position, payload in journal.read_after(directory, checkpoint, below_seq=below_seq):
            try:
                exchange = journal.decode_exchange(payload)
            except Exception as exc:
                log.error("journal %s: undecodable record at %s: %s", name, position, exc)
                continue
            store.journal_position(name, position)
            self._replay.on_exchange(exchange, self._facts(exchange))
            count += 1
            if store.pending_records >= _REPLAY_BATCH:
                if not self._flush_until_done():
                    return False
                # segments wholly stored go now: on a small disk their room is what the next batch needs
                committed = journal.read_checkpoint(directory)
                if committed is not None:
                    journal.prune(directory, below_seq=min(committed.seq, below_seq if below_seq is not None else committed.seq))
        if not self._flush_until_done():
            return False
        if count:
            log.warning("journal %s: replayed %d exchanges into the store", name, count)
            self.replayed += count
        # everything below below_seq (or, for an orphan, everything) is now in the store
        journal.prune(directory, below_seq=below_seq)
        return True

    def _scan_orphans(self) -> None:
        """Replay the journal of every slot whose lock is free (its process died)."""
        store = self.store
        if store is None or not store.flush():
            return  # the store is failing; orphans wait
        switched = False
        for name in journal.slot_names(self.store_dir):
            if self.slot is not None and name == self.slot.name:
                continue
            directory = self.store_dir / "journal" / name
            segments = journal.list_segments(directory)
            if not segments and not (directory / journal.UNJOURNALED_FILE).exists():
                continue
            try:
                orphan = journal.try_lock(self.store_dir, name)
            except OSError:
                continue
            if orphan is None:
                continue  # a live process owns it
            try:
                self._count_lost(name, directory)
                if segments:
                    switched = True
                    self._replay_slot(name, directory)
            finally:
                orphan.close()
        if switched:
            store.begin_slot(self.slot.name if self.slot else None)

    def _on_commit(self, slot: str, position: Position) -> None:
        if self._own_replayed and self.slot is not None and slot == self.slot.name and self.journal is not None:
            # segments whose every record is stored, never the one being written
            self._committed = position
            journal.prune(self.slot.journal_dir, below_seq=self.journal.stored_below(position))

    def _rotate_journal(self) -> None:
        """Raw bodies (message text among them, captured or not) stay on disk only until stored:
        the segment being written is closed every `journal_rotate_seconds`, and a closed segment
        is deleted once all its records are in the store."""
        writer = self.journal
        if writer is None:
            return
        with self._append_lock:
            try:
                rotated = writer.rotate_if_older(self.journal_rotate_seconds)
            except OSError as exc:  # e.g. the directory turned read-only: keep the current one
                log.warning("journal rotation failed, continuing in segment %d: %s", writer.seq, exc)
                return
        if rotated and self._committed is not None and self.slot is not None and self._own_replayed:
            # everything in the closed segment may already be stored: no later commit would say so
            journal.prune(self.slot.journal_dir, below_seq=writer.stored_below(self._committed))

    def _prune_stored_journal(self) -> None:
        """At a clean stop: if every record is stored, the journal keeps nothing (checkpoint only)."""
        writer, slot = self.journal, self.slot
        if writer is None or slot is None or not self._own_replayed or self.behind:
            return
        if writer.last is None or (self._committed is not None and self._committed >= writer.last):
            journal.prune(slot.journal_dir)

    def _shutdown(self) -> None:
        if not self._own_replayed and self.slot is not None:
            # start-up replay never finished: leave everything to the journal (the next process
            # replays it in order) rather than checkpoint past records not yet stored
            self.behind = True
        deadline = self.clock() + self.close_timeout
        left = dropped = 0
        while True:  # what was submitted before close(), as far as time allows
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                continue
            if self.clock() < deadline:
                self._dispatch_live(*item)
                if self.store is not None and self.store.pending_records >= _REPLAY_BATCH:
                    self._live.flush()
                continue
            if item[1] is None:
                self.lost_records += 1  # neither journaled nor stored
                dropped += 1
            else:
                left += 1
        if left:
            log.warning("recorder: %d exchanges left in the journal at shutdown; the next start stores them", left)
        if dropped:
            log.error("recorder: %d exchanges neither journaled nor stored at shutdown: lost", dropped)
        store = self.store if self._own_replayed else None
        flush_deadline = self.clock() + 5.0
        while store is not None and not store.flush() and self.clock() < flush_deadline:
            time.sleep(0.2)
        if self.store is not None and not self.store.pending_records and not left:
            self._prune_stored_journal()
        if self.store is not None and self.store.pending_records:
            store = self.store
            unjournaled = store.unjournaled_pending
            self.lost_records += unjournaled
            log.error("store: %d exchanges not stored at shutdown (%d will be replayed from the journal, %d lost)",
                      store.pending_records, store.pending_records - unjournaled, unjournaled)
        if self.ledger is not None:
            with self._ledger_lock:  # every unjournaled exchange is stored or was counted lost above
                with contextlib.suppress(OSError):
                    self.ledger.set(0)
        self._live.close()

    # --- views ---------------------------------------------------------------------------------

    def _maintain_views(self) -> None:
        from analytics import store as layout

        while not self._opened.wait(0.1):
            if self._stopping.is_set():
                return
        retry = 0.1
        built = False
        while not self._stopping.is_set():
            # checked for as long as the proxy runs: a deleted or truncated audit.duckdb (a full
            # disk, an operator) comes back while serving, not only at the next start
            try:
                if not layout.views_db_current(self.store_dir):
                    if built:
                        log.warning("store: %s/audit.duckdb is missing or damaged; rebuilding it", self.store_dir)
                    layout.write_views_db(self.store_dir)
                built, retry, delay = True, 0.1, self.views_check_interval
            except Exception as exc:  # a reader holding audit.duckdb, or a read-only store
                delay, retry = retry, min(10.0, retry * 2)
                log.log(logging.WARNING if delay >= 2 else logging.DEBUG,
                        "store: cannot update audit.duckdb yet (%s); retrying", str(exc).splitlines()[0])
            self._stopping.wait(delay)


def build_recorder(
    settings: Any,
    *,
    registry: Any = None,
    tracer_provider: Any = None,
    extra_sinks: Iterable[Sink] = (),
    parse: Parse | None = None,
) -> AuditRecorder:
    """The standard recorder: the store always; metrics and spans when their sinks are installed."""
    sinks: list[Sink] = [StoreSink(settings.store)]
    price_sink = _optional("analytics.prices", "PriceSink")  # keeps the store's price table current
    if price_sink is not None:
        sinks.append(price_sink(settings))
    metrics = None
    if registry is not None:
        cls = _optional("proxy.sinks.metrics", "MetricsSink")
        if cls is not None:
            metrics = cls(registry, settings)
            sinks.append(metrics)
    if tracer_provider is not None:
        cls = _optional("proxy.sinks.otel", "OtelSink")
        if cls is not None:
            sinks.append(cls(tracer_provider, settings))
    sinks.extend(extra_sinks)
    recorder = AuditRecorder(settings, sinks, parse=parse)
    bind = getattr(metrics, "bind_recorder", None)
    if callable(bind):
        bind(recorder)
    return recorder


def _optional(module: str, attr: str) -> Any:
    import importlib

    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


