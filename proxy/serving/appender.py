"""What recording costs a serving process: one journal append per exchange, nothing else.

`JournalAppender.submit` runs on the event loop: it encodes the exchange (orjson metadata + raw
bodies) and makes one `writev` to the worker's own journal slot. Parsing, the store, metrics and
spans happen in the recorder process, which follows the journal (`proxy.recording`).

Two things can stop an append, and each is a counted decision, never a silent drop:

- **The journal cannot be written** (disk full, read-only), or its volume has less free space
  than the reserve it leaves the store (a quarter of the volume, 1 to 64 MiB: a journal that
  filled the disk would leave the store no room to write the backlog, and the backlog would
  never leave the journal): the record waits in memory (at most `max_held` records /
  `max_held_bytes`) and is appended on a later tick; past the bound the oldest is dropped and
  counted in `lost_records`, with one log line per episode. How many answered exchanges exist
  only in memory is kept in `journal/<slot>/unjournaled` (allocated up front, so updating it
  needs no space): if the worker dies before they are journaled, whoever takes the slot next
  reports them lost.
- **The recorder is too far behind** (this slot's journal holds more than `max_lag_bytes` not
  yet stored, e.g. the recorder is down, or starved of CPU for long): the exchange is still
  journaled, but without its bodies (`bodies_dropped`): its row exists with its status, timing,
  sizes and key fingerprint, and `parse_error = 'bodies_dropped:recorder_lag'`; counted in
  `bodies_dropped`. The bound keeps the journal from filling the disk the store needs.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from proxy.recording import journal
from proxy.serving.exchange import Exchange
from proxy.recording.journal import JournalWriter, Slot

log = logging.getLogger("assistants_audit.journal")

BODIES_DROPPED = "bodies_dropped"  # Exchange.extra key: why the journaled record has no bodies


class JournalAppender:
    """Implements proxy.serving.exchange.Recorder for a serving process."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        fsync: bool = False,
        segment_bytes: int = journal.DEFAULT_SEGMENT_BYTES,
        rotate_seconds: float = 10.0,
        max_lag_bytes: int = 1 << 30,
        max_held: int = 20_000,
        reserve_bytes: int | None = None,
        max_held_bytes: int = 64 << 20,
        slot_prefix: str = "w",
    ) -> None:
        self.slot_prefix = slot_prefix
        self.reserve_bytes = reserve_bytes
        self._room = True
        self._room_checked = float("-inf")
        self._since_check = 0
        self.ledger: journal.Unjournaled | None = None
        self.store_dir = Path(store_dir).absolute()
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.rotate_seconds = rotate_seconds
        self.max_lag_bytes = max_lag_bytes
        self.max_held = max_held
        self.max_held_bytes = max_held_bytes
        self.slot: Slot | None = None
        self.writer: JournalWriter | None = None
        self._held: deque[Exchange] = deque()
        self._held_bytes = 0
        self._failing = False
        self._lagging = False
        self.journal_bytes = 0  # this slot's journal on disk at the last tick (not yet stored)
        self.appended = 0
        self.lost_records = 0
        self.bodies_dropped = 0
        self.journal_errors = 0

    @property
    def name(self) -> str | None:
        return self.slot.name if self.slot else None

    def open(self) -> None:
        """Claim a free slot and start a fresh segment in it (raises OSError if the store is unusable)."""
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.slot = journal.claim_slot(self.store_dir, prefix=self.slot_prefix)
        try:
            self.writer = JournalWriter(self.slot.journal_dir, segment_bytes=self.segment_bytes, fsync=self.fsync)
        except Exception:
            self.slot.close()
            self.slot = None
            raise
        self.lost_records += journal.take_lost(self.slot.name, self.slot.journal_dir)
        try:
            self.ledger = journal.Unjournaled(self.slot.journal_dir)
        except OSError as exc:
            log.error("journal %s: cannot keep the count of unjournaled exchanges (%s); a crash while "
                      "the disk is full would lose them without a trace", self.slot.name, exc)
        if self.reserve_bytes is None:
            try:
                volume = journal.volume_bytes(self.slot.journal_dir)
            except OSError:
                volume = 256 << 20
            self.reserve_bytes = max(1 << 20, min(64 << 20, volume // 4))

    # --- the hot path ----------------------------------------------------------------------------

    def submit(self, exchange: Exchange) -> None:
        """Journal the exchange. Called on the event loop; never blocks on more than one write, never raises."""
        if self._lagging and (exchange.request_body or exchange.response_body):
            exchange = replace(exchange, request_body=b"", response_body=b"",
                               extra={**exchange.extra, BODIES_DROPPED: "recorder_lag"})
            self.bodies_dropped += 1
        if self._held or not self._append(exchange):
            self._hold(exchange)

    def _append(self, exchange: Exchange) -> bool:
        writer = self.writer
        if writer is None or not self._has_room():
            return False
        try:
            parts = journal.encode_exchange(exchange)
            writer.append(parts)
            self._since_check += sum(len(p) for p in parts)
        except Exception as exc:
            self.journal_errors += 1
            if not self._failing:
                self._failing = True
                log.error("journal %s: append failed (%s); holding records in memory (up to %d) and retrying",
                          self.name, exc, self.max_held)
            return False
        self.appended += 1
        if self._failing:
            self._failing = False
            log.warning("journal %s: writable again", self.name)
        return True

    def _has_room(self) -> bool:
        """False while the journal's volume has less than the reserve free (looked at every 0.1 s,
        and after every 64 KiB appended: a tick appending what was held must not overshoot)."""
        now = time.monotonic()
        if now - self._room_checked < 0.1 and self._since_check < (64 << 10):
            return self._room
        self._room_checked = now
        self._since_check = 0
        try:
            room = journal.free_bytes(self.store_dir) >= (self.reserve_bytes or 0)
        except OSError:
            room = True  # let the append find out
        if room != self._room:
            self._room = room
            if room:
                log.warning("journal %s: free space is back above the reserve; journaling again", self.name)
            else:
                self.journal_errors += 1
                log.error("journal %s: under %d bytes free in %s; holding new exchanges in memory (up to %d) "
                          "so the store has room to catch up", self.name, self.reserve_bytes, self.store_dir,
                          self.max_held)
        return room

    def _write_ledger(self) -> None:
        if self.ledger is not None:
            try:
                self.ledger.set(len(self._held))
            except OSError:
                pass  # allocated up front; only a broken disk gets here

    def _hold(self, exchange: Exchange) -> None:
        self._held.append(exchange)
        self._held_bytes += len(exchange.request_body) + len(exchange.response_body)
        dropped = 0
        while len(self._held) > self.max_held or self._held_bytes > self.max_held_bytes:
            old = self._held.popleft()
            self._held_bytes -= len(old.request_body) + len(old.response_body)
            dropped += 1
        if dropped:
            if not self.lost_records:
                log.error("journal %s: cannot be written and %d records are held in memory: dropping the "
                          "oldest (counted in assistants_audit_store_lost_records_total)", self.name, self.max_held)
            self.lost_records += dropped
        self._write_ledger()

    # --- housekeeping, once a second on the event loop ------------------------------------------

    def tick(self) -> None:
        """Append held records, rotate the segment (raw bodies leave the disk soon after they are
        stored), and look at how far behind the recorder is."""
        if self._held:
            while self._held:
                if not self._append(self._held[0]):
                    break
                old = self._held.popleft()
                self._held_bytes -= len(old.request_body) + len(old.response_body)
            self._write_ledger()
        writer = self.writer
        if writer is None:
            return
        try:
            writer.rotate_if_older(self.rotate_seconds)
        except OSError as exc:
            log.warning("journal rotation failed, continuing in segment %d: %s", writer.seq, exc)
        self.journal_bytes = _dir_bytes(writer.slot_dir)
        lagging = self.journal_bytes > self.max_lag_bytes
        if lagging != self._lagging:
            self._lagging = lagging
            if lagging:
                log.error("journal %s: %d bytes not yet stored (over --max-recorder-lag); recording exchanges "
                          "without their bodies until the recorder catches up", self.name, self.journal_bytes)
            else:
                log.warning("journal %s: the recorder caught up; recording bodies again", self.name)

    @property
    def held(self) -> int:
        return len(self._held)

    def close(self) -> None:
        """Append what is held (if the journal works again), then release the slot. What still cannot
        be written is counted as lost."""
        self.tick()
        if self.ledger is not None:
            # what is still held is lost: the ledger keeps the number for the next start to report
            # (this process's counters go with it)
            self._write_ledger()
            self.ledger.close()
        if self._held:
            log.error("journal %s: %d answered exchanges could not be journaled before shutdown and are lost "
                      "(the next start reports them)", self.name, len(self._held))
            self._held.clear()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.slot is not None:
            self.slot.close()
            self.slot = None


def _dir_bytes(directory: Path) -> int:
    total = 0
    for _, path in journal.list_segments(directory):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            pass
    return total
