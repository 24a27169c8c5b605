"""The recorder: follows every writer slot's journal and turns each record into facts and rows.

    serving processes            append one framed record per exchange to STORE/journal/<slot>/
    JournalRecorder (this)       for every slot: JournalTail -> parse -> Dispatcher(store of that
                                 slot + shared sinks: prices, metrics, spans, enrichment)

It runs in the recorder process (`proxy.recording.process`), on one thread, at a lower CPU
priority than the workers: under saturation it falls behind *in the journal* (on disk) and
catches up when load drops; the serving processes never wait for it.

Exactly once: each slot has its own `StoreSink`, whose segments are named for the slot and whose
manifest and checkpoint (the last journal record in the store) live in the slot's
`checkpoint.json`. The recorder holds `STORE/recorders/<slot>.lock` for each slot it follows,
so one store directory may be served by several proxies: each slot is followed by exactly one
recorder. On taking a slot, `begin_slot` turns any segment written after the checkpoint (a
recorder killed between writing and checkpointing) into a placeholder, then the tail resumes
after the checkpoint: nothing twice, nothing skipped.

A journal segment is deleted once all its records are stored and its writer has moved on (never
the segment being written), and at a clean stop everything stored leaves the disk.

While the store cannot be written, a slot's tail simply stops reading (its rows stay buffered
up to one batch, retried with backoff); the journal holds the rest. Nothing is dropped here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from analytics import store as layout
from proxy.recording import journal
from proxy.serving.exchange import Exchange
from proxy.assistants.facts import ExchangeFact
from proxy.assistants.routes import classify
from proxy.facts import Fact
from proxy.recording.journal import Position, Slot
from proxy.recording.dispatch import Dispatcher, Sink
from proxy.recording.tail import JournalTail
from proxy.sinks.store import StoreSink, error_kind

log = logging.getLogger("assistants_audit.recorder")

Parse = Callable[..., list[Fact]]
FOLLOW_LOCKS = "recorders"  # STORE/recorders/<slot>.lock: which recorder follows that slot's journal


@dataclass
class _Follower:
    """One slot being followed: its lock, its tail, its store writer."""

    name: str
    lock: Slot
    tail: JournalTail
    store: StoreSink
    dispatch: Dispatcher
    writer_alive: bool = True
    committed: Position | None = None

    @property
    def directory(self) -> Path:
        return self.tail.slot_dir


class JournalRecorder:
    """Follows the journals of STORE. `start()` runs it on a thread; `close()` drains and stops."""

    def __init__(
        self,
        store_dir: str | Path,
        shared_sinks: Sequence[Sink],
        parse: Parse,
        *,
        capture_content: bool = False,
        make_store: Callable[[Path], StoreSink] = StoreSink,
        flush_interval: float = 0.5,
        scan_interval: float = 1.0,
        batch_records: int = 512,
        flush_records: int = 500,  # a backlog is stored in pieces: on a small disk each must fit
        idle_wait: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        thread_setup: Callable[[], object] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir).absolute()
        # run first on each thread of the recorder's own (the recorder process lowers their CPU
        # priority there, and only there: its event loop serves /metrics at normal priority)
        self.thread_setup = thread_setup
        self.shared = list(shared_sinks)
        self.parse = parse
        self.capture_content = capture_content
        self.make_store = make_store
        self.flush_interval = flush_interval
        self.scan_interval = scan_interval
        self.batch_records = batch_records
        self.flush_records = flush_records
        self.idle_wait = idle_wait
        self.clock = clock
        self._shared = Dispatcher(self.shared)
        self._followers: dict[str, _Follower] = {}
        self._stopping = threading.Event()
        self._drain_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._views: threading.Thread | None = None
        self.ready = threading.Event()  # set after the first scan (every existing slot taken)
        self.idle = threading.Event()  # set whenever a pass found nothing to read
        self.flush_observers: list[Callable[[float], None]] = []
        self.undecodable = 0  # records the recorder could not turn into rows (damaged)
        self.ledger_lost = 0  # answered by a worker that died holding them in memory (disk full)
        # per worker slot, cumulative, as the workers report them (proxy.serving.relay)
        self.reported_lost: dict[str, int] = {}
        self.reported_bodies_dropped: dict[str, int] = {}
        self.records = 0
        self._errors: dict[str, int] = {}
        self.views_ok = threading.Event()

    # --- counters (read by the metrics sink on each flush) -------------------------------------

    @property
    def queue_depth(self) -> int:
        return 0

    @property
    def spooled_records(self) -> int:
        return sum(f.store.pending_records for f in self._followers.values())

    @property
    def lag_bytes(self) -> int:
        return sum(f.tail.lag_bytes() for f in list(self._followers.values()))

    @property
    def errors(self) -> dict[str, int]:
        out = dict(self._errors)
        for f in list(self._followers.values()):
            for kind, n in f.store.errors.items():
                out[kind] = out.get(kind, 0) + n
        return out

    @property
    def lost_records(self) -> int:
        """Exchanges that will never be rows: not journaled by a worker, or undecodable here."""
        return self.undecodable + self.ledger_lost + sum(self.reported_lost.values())

    @property
    def bodies_dropped(self) -> int:
        return sum(self.reported_bodies_dropped.values())

    def slots(self) -> list[str]:
        return sorted(self._followers)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            for sub in ("writers", FOLLOW_LOCKS):
                (self.store_dir / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("store %s: %s; the recorder retries", self.store_dir, exc)
        self._thread = threading.Thread(target=self._run, name="audit-recorder", daemon=True)
        self._thread.start()
        self._views = threading.Thread(target=self._keep_views, name="audit-views", daemon=True)
        self._views.start()

    def _keep_views(self) -> None:
        """(Re)create STORE/audit.duckdb when its views changed or the file was damaged or removed."""
        if self.thread_setup is not None:
            self.thread_setup()
        self.ready.wait()  # the slots' stores are open: the tables' layout exists
        failures = 0
        built = False
        while not self._stopping.is_set():
            try:
                if not layout.views_db_current(self.store_dir):
                    if built:  # checked for as long as the proxy runs: an operator, a full disk
                        log.warning("store: %s/audit.duckdb is missing or damaged; rebuilding it", self.store_dir)
                    layout.write_views_db(self.store_dir)
                built = True
                failures = 0
            except Exception as exc:  # a reader holding audit.duckdb, or a read-only store
                failures += 1
                log.log(logging.WARNING if failures % 10 == 5 else logging.DEBUG,
                        "store: cannot update audit.duckdb yet (%s); retrying", str(exc).splitlines()[0])
            self._stopping.wait(5.0 if failures == 0 else min(2.0, 0.1 * 2 ** failures))

    def close(self, timeout: float = 60.0) -> None:
        """Read every journal to its end, store it, stop. Writers still appending (a worker that
        is draining) are waited for up to `timeout`; what they append later stays in the journal
        for the next recorder."""
        if self._thread is None:
            return
        self._drain_deadline = self.clock() + max(0.0, timeout - 10.0)
        self._stopping.set()
        self._thread.join(timeout)
        if self._views is not None:
            self._views.join(5)
        if self._thread.is_alive():
            log.error("recorder did not finish within %.0f s; the journal keeps what was not stored", timeout)
        self._thread = None

    # --- the loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        if self.thread_setup is not None:
            self.thread_setup()
        next_scan = 0.0
        next_flush = self.clock() + self.flush_interval
        while True:
            stopping = self._stopping.is_set()
            now = self.clock()
            if now >= next_scan or stopping:
                next_scan = now + self.scan_interval
                try:
                    self._scan()
                except Exception:
                    log.exception("recorder: scanning the journal slots failed; retrying")
                if self._followers:
                    self.ready.set()
            read = 0
            for follower in list(self._followers.values()):
                try:
                    read += self._pump(follower)
                except Exception:
                    log.exception("recorder: slot %s failed this round; retrying", follower.name)
            now = self.clock()
            if now >= next_flush or stopping or any(f.store.pending_records >= self.flush_records
                                                      for f in self._followers.values()):
                next_flush = now + self.flush_interval
                self._flush()
            if stopping and read == 0 and (self.clock() >= self._drain_deadline or not any(
                    f.writer_alive for f in self._followers.values())):
                self._finish()
                return
            if read == 0:
                self.idle.set()
                self._stopping.wait(self.idle_wait)
            else:
                self.idle.clear()

    def _scan(self) -> None:
        """Take every slot no other recorder follows; notice writers that went away."""
        for name in journal.slot_names(self.store_dir):
            if name in self._followers:
                continue
            directory = self.store_dir / "journal" / name
            lock = journal.try_lock(self.store_dir, name, FOLLOW_LOCKS)
            if lock is None:
                continue  # another recorder follows it
            try:
                follower = self._follow(name, directory, lock)
            except Exception as exc:
                lock.close()
                kind = error_kind(exc)
                self._errors[kind] = self._errors.get(kind, 0) + 1
                log.error("store: cannot take journal slot %s (%s: %s); retrying", name, kind, exc)
                continue
            self._followers[name] = follower
        for follower in self._followers.values():
            follower.writer_alive = _writer_alive(self.store_dir, follower.name, self._take_lost)

    def _take_lost(self, name: str, directory: Path) -> None:
        self.ledger_lost += journal.take_lost(name, directory)

    def _follow(self, name: str, directory: Path, lock: Slot) -> _Follower:
        store = self.make_store(self.store_dir)
        store.open()
        checkpoint = store.begin_slot(name)
        follower = _Follower(name=name, lock=lock, tail=JournalTail(directory, after=checkpoint), store=store,
                             dispatch=Dispatcher([store, *self.shared]), committed=checkpoint)
        store.on_flush.extend(self.flush_observers)
        store.on_commit = lambda slot, position, f=follower: self._committed(f, position)
        backlog = follower.tail.lag_bytes()
        if backlog:
            log.info("journal %s: following from %s (%d bytes to store)", name,
                     "the start" if checkpoint is None else f"{checkpoint.seq}:{checkpoint.offset}", backlog)
        return follower

    def _pump(self, follower: _Follower) -> int:
        store = follower.store
        if store.pending_records >= self.flush_records:
            return 0  # the store is behind (or failing): leave the rest in the journal
        if not store.healthy and self.clock() < store.retry_at:
            return 0
        records = follower.tail.read(self.batch_records, writer_alive=follower.writer_alive)
        for position, payload in records:
            try:
                exchange = journal.decode_exchange(payload)
            except Exception as exc:
                self.undecodable += 1
                log.error("journal %s: undecodable record at %s:%s: %s", follower.name, position.seq,
                          position.offset, exc)
                continue
            store.journal_position(follower.name, position)
            follower.dispatch.on_exchange(exchange, self._facts(exchange))
        self.records += len(records)
        if follower.tail.finished:
            self._prune(follower)
        return len(records)

    def _facts(self, exchange: Exchange) -> list[Fact]:
        try:
            return list(self.parse(exchange, capture_content=self.capture_content))
        except Exception as exc:  # the parser must not lose an exchange
            log.exception("parse failed for exchange %s", exchange.exchange_id)
            return basic_facts(exchange, parse_error=f"{type(exc).__name__}: {exc}"[:500])

    def _flush(self) -> None:
        for follower in list(self._followers.values()):
            follower.store.flush()
        self._shared.flush()

    def _committed(self, follower: _Follower, position: Position) -> None:
        """The store has every record of `follower` up to `position`: delete the segments that
        hold nothing else and that no writer appends to any more."""
        follower.committed = position
        self._prune(follower)

    def _prune(self, follower: _Follower) -> None:
        tail = follower.tail
        for seq in sorted(tail.finished):
            last = tail.last_in.get(seq)
            if last is not None and (follower.committed is None or last > follower.committed):
                continue  # some of its records are not stored yet
            try:
                (follower.directory / journal.segment_name(seq)).unlink()
            except FileNotFoundError:
                pass
            tail.finished.discard(seq)
            tail.last_in.pop(seq, None)

    def _finish(self) -> None:
        """Everything readable is read: flush, delete what is stored, release the slots."""
        deadline = self.clock() + 5.0
        while True:
            pending = [f for f in self._followers.values() if not f.store.flush()]
            if not pending or self.clock() >= deadline:
                break
            time.sleep(0.2)
        for follower in self._followers.values():
            store = follower.store
            if not store.pending_records and follower.tail.lag_bytes() == 0 and not _writer_alive(
                    self.store_dir, follower.name):
                current = follower.tail._seq  # noqa: SLF001 - the last segment the tail read
                if current is not None:
                    journal.prune(follower.directory, below_seq=current + 1)
            elif store.pending_records:
                log.error("store: %d exchanges of slot %s not stored at shutdown; the next start stores "
                          "them from the journal", store.pending_records, follower.name)
            follower.tail.close()
            store.close()
            follower.lock.close()
        self._shared.close()
        self._followers.clear()


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
        assistant_id=None, vector_store_id=None, model=None, api=classify(exchange.method, exchange.path).api,
    )]


def prepare_store(store_dir: Path) -> None:
    """The store's layout and views, before anything is served: a store is queryable as soon as
    the proxy is. A store that cannot be written yet is retried later (and logged)."""
    try:
        store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        con = duckdb.connect(":memory:", config={"threads": 1})
        try:
            layout.ensure_schema_segments(store_dir, con)
        finally:
            con.close()
        if not layout.views_db_current(store_dir):
            layout.write_views_db(store_dir)
    except Exception as exc:
        log.error("store %s: cannot prepare it yet (%s); serving anyway, the recorder retries",
                  store_dir, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _writer_alive(store_dir: Path, name: str,
                  while_held: Callable[[str, Path], None] | None = None) -> bool:
    """Whether a serving process holds the slot (its journal may still grow). When none does,
    `while_held` runs holding the slot's lock (no new owner can start meanwhile)."""
    try:
        lock = journal.try_lock(store_dir, name)
    except OSError:
        return True
    if lock is None:
        return True
    try:
        if while_held is not None:
            while_held(name, lock.journal_dir)
    finally:
        lock.close()
    return False
