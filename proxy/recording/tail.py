"""Reading a journal slot while its worker is still appending to it.

The serving processes only append framed records (`proxy.recording.journal`); the recorder process follows
each slot from its checkpoint with a `JournalTail`. Unlike `journal.read_segment` (for a slot
whose writer is gone), a tail must tell *not yet written* from *damaged*:

- an incomplete frame at the end of the newest segment is a record still being written (or,
  once the writer is gone, a torn tail): the tail stops there and tries again later;
- a frame that fails its crc in an older segment, or in the newest one after its writer is
  gone, is damage: the tail skips to the next magic and says so in the log.

Reads are incremental (`pread` from the last offset into a bounded buffer), so following a
64 MiB segment costs what was appended since the last look, not the segment's size.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from proxy.recording import journal
from proxy.recording.journal import MAGIC, Position

log = logging.getLogger("assistants_audit.recorder")

_FRAME = journal._FRAME  # noqa: SLF001 - one frame format, defined beside the writer
_READ_CHUNK = 1 << 20


@dataclass
class JournalTail:
    """Follows one slot's segments in order, from just after `after`."""

    slot_dir: Path
    after: Position | None = None
    _seq: int | None = field(default=None, init=False)
    _fd: int = field(default=-1, init=False)
    _offset: int = field(default=0, init=False)  # file offset of _buf[0]
    _buf: bytearray = field(default_factory=bytearray, init=False)
    finished: set[int] = field(default_factory=set, init=False)  # segments read to their end, a later one exists
    last_in: dict[int, Position] = field(default_factory=dict, init=False)  # segment -> its last record read

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._buf.clear()

    # -- positioning ----------------------------------------------------------------------------

    def _open_next(self) -> bool:
        """Open the first segment at or after where the tail stands. False when there is none."""
        after = self.after
        for seq, path in journal.list_segments(self.slot_dir):
            if self._seq is not None and seq <= self._seq:
                continue
            if after is not None and seq < after.seq:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            self.close()
            self._fd, self._seq = fd, seq
            self._offset = 0
            if after is not None and seq == after.seq:
                # resume after the last stored record: read its frame length to skip it
                header = os.pread(fd, _FRAME.size, after.offset)
                if len(header) == _FRAME.size and header[:4] == MAGIC:
                    self._offset = after.offset + _FRAME.size + _FRAME.unpack(header)[1]
                else:
                    self._offset = after.offset  # damaged under us: rescan from there
            return True
        return False

    def _newer_segment_exists(self) -> bool:
        segments = journal.list_segments(self.slot_dir)
        return bool(segments) and self._seq is not None and segments[-1][0] > self._seq

    # -- reading --------------------------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int = 64 << 20, *, writer_alive: bool = True
             ) -> list[tuple[Position, bytes]]:
        """Up to `max_records` complete records after the last one returned (in order)."""
        out: list[tuple[Position, bytes]] = []
        size = 0
        while len(out) < max_records and size < max_bytes:
            if self._fd < 0 and not self._open_next():
                break
            record = self._next_record(writer_alive)
            if record is not None:
                out.append(record)
                size += len(record[1])
                continue
            # nothing complete here: move on only if a newer segment exists (this one is closed)
            if not self._newer_segment_exists():
                break
            # re-check: the writer may have appended its last record, then rotated
            record = self._next_record(writer_alive=False)
            if record is not None:
                out.append(record)
                size += len(record[1])
                continue
            assert self._seq is not None
            self.finished.add(self._seq)
            if not self._open_next():
                break
        return out

    def _fill(self, need: int) -> bool:
        """Make `_buf` hold at least `need` bytes (False if the file has fewer for now)."""
        while len(self._buf) < need:
            chunk = os.pread(self._fd, max(_READ_CHUNK, need - len(self._buf)), self._offset + len(self._buf))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def _next_record(self, writer_alive: bool) -> tuple[Position, bytes] | None:
        while True:
            if not self._fill(_FRAME.size):
                return None
            magic, length, crc = _FRAME.unpack_from(self._buf, 0)
            if magic == MAGIC:
                if not self._fill(_FRAME.size + length):
                    if writer_alive:
                        return None  # still being written
                    self._skip("torn record")
                    continue
                payload = bytes(self._buf[_FRAME.size:_FRAME.size + length])
                if zlib.crc32(payload) == crc:
                    assert self._seq is not None
                    position = Position(self._seq, self._offset)
                    self._consume(_FRAME.size + length)
                    self.after = position
                    self.last_in[self._seq] = position
                    return position, payload
            elif writer_alive and not any(self._buf[: _FRAME.size]):
                return None  # zeros: the file grew but the bytes are not there yet
            self._skip("damaged record")

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._offset += n

    def _skip(self, why: str) -> None:
        nxt = self._buf.find(MAGIC, 1)
        while nxt < 0:
            before = len(self._buf)
            if not self._fill(before + _READ_CHUNK):
                nxt = len(self._buf)  # nothing further: drop what we have
                break
            nxt = self._buf.find(MAGIC, max(1, before - 3))
        log.warning("journal %s: skipped %d bytes (%s) at %s:%d", self.slot_dir.name, nxt, why, self._seq, self._offset)
        self._consume(nxt)

    # -- lag --------------------------------------------------------------------------------------

    def lag_bytes(self) -> int:
        """Journal bytes of this slot not yet read (what the recorder is behind by)."""
        total = 0
        for seq, path in journal.list_segments(self.slot_dir):
            if self._seq is not None and seq < self._seq:
                continue
            try:
                st = path.stat().st_size
            except FileNotFoundError:
                continue
            total += st - self._offset if seq == self._seq else st
        return max(0, total)
