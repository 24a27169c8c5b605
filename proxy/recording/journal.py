"""The write-ahead journal: every answered Exchange is on disk before its response completes.

Layout, per writer slot (one slot per live process, see `claim_slot`)::

    STORE/writers/<slot>.lock            flock'ed by the process that owns the slot
    STORE/journal/<slot>/<seq>.jnl       append-only segments, rotated by size
    STORE/journal/<slot>/checkpoint.json last journal position whose rows are in the store

A record is framed ``magic | payload length | crc32(payload) | payload`` so a torn tail (the
process was killed mid-write, or the disk filled) is detected and skipped by the reader. The
payload is an Exchange: its metadata as orjson, then the two raw bodies (no base64).

Why no fsync per record: `append` runs on the event loop, so it is one `os.writev` into the
page cache. That survives `kill -9` of the process (the kernel owns the bytes); only a power
loss or kernel crash can drop the last moments unless `fsync=True` (`--journal-fsync`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from proxy.serving.exchange import Exchange

log = logging.getLogger("assistants_audit.journal")

MAGIC = b"AAJ1"
_FRAME = struct.Struct("<4sII")  # magic, payload length, crc32
_U32 = struct.Struct("<I")
_SEGMENT_RE = re.compile(r"^(\d{8})\.jnl$")
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
_BODY_FIELDS = ("request_body", "response_body")
_META_FIELDS = tuple(f.name for f in fields(Exchange) if f.name not in _BODY_FIELDS)
_ALL_FIELDS = frozenset(f.name for f in fields(Exchange))


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a record starts: segment number, byte offset. Totally ordered within one slot."""

    seq: int
    offset: int

    def to_json(self) -> dict[str, int]:
        return {"seq": self.seq, "offset": self.offset}


# --- payload ---------------------------------------------------------------------------------


def encode_exchange(exchange: Exchange) -> list[bytes]:
    """The payload as parts (joined by the writer's single writev): meta, then raw bodies."""
    fields_ = {name: getattr(exchange, name) for name in _META_FIELDS}
    try:
        meta = orjson.dumps(fields_)
    except orjson.JSONEncodeError:  # e.g. a path decoded with surrogateescape from invalid UTF-8
        meta = orjson.dumps(text_safe(fields_))
    req = exchange.request_body
    return [_U32.pack(len(meta)), meta, _U32.pack(len(req)), req, exchange.response_body]


def text_safe(value: Any) -> Any:
    """Strings made encodable: escaped bytes back to UTF-8 (invalid ones replaced), lone surrogates replaced."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: text_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [text_safe(v) for v in value]
    return value


def decode_exchange(payload: bytes | memoryview) -> Exchange:
    view = memoryview(payload)
    (meta_len,) = _U32.unpack_from(view, 0)
    meta = orjson.loads(view[4 : 4 + meta_len])
    pos = 4 + meta_len
    (req_len,) = _U32.unpack_from(view, pos)
    pos += 4
    meta["request_body"] = bytes(view[pos : pos + req_len])
    meta["response_body"] = bytes(view[pos + req_len :])
    meta["request_headers"] = tuple((k, v) for k, v in meta["request_headers"])
    meta["response_headers"] = tuple((k, v) for k, v in meta["response_headers"])
    meta["extra"] = dict(meta.get("extra") or {})
    # a journal written by another version: unknown fields are dropped, new ones take defaults
    return Exchange(**{k: v for k, v in meta.items() if k in _ALL_FIELDS})


# --- segments --------------------------------------------------------------------------------


def segment_name(seq: int) -> str:
    return f"{seq:08d}.jnl"


def list_segments(slot_dir: Path) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(slot_dir)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = _SEGMENT_RE.match(name)
        if m:
            found.append((int(m.group(1)), slot_dir / name))
    return sorted(found)


def read_segment(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, payload) of each intact record at or after `start`.

    A damaged frame (torn tail, bad crc) is skipped by scanning to the next magic, so one bad
    record never hides the good ones after it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    pos = start
    end = len(data)
    while pos + _FRAME.size <= end:
        magic, length, crc = _FRAME.unpack_from(data, pos)
        body_start = pos + _FRAME.size
        if magic == MAGIC and body_start + length <= end:
            payload = data[body_start : body_start + length]
            if zlib.crc32(payload) == crc:
                yield pos, payload
                pos = body_start + length
                continue
        nxt = data.find(MAGIC, pos + 1)
        if nxt < 0:
            return
        log.warning("journal %s: skipped %d damaged bytes at offset %d", path, nxt - pos, pos)
        pos = nxt


def read_record(slot_dir: Path, position: Position) -> bytes:
    """The payload of the record at `position` (the worker re-reads records it did not keep in memory)."""
    with open(slot_dir / segment_name(position.seq), "rb") as f:
        header = os.pread(f.fileno(), _FRAME.size, position.offset)
        magic, length, crc = _FRAME.unpack(header)
        payload = os.pread(f.fileno(), length, position.offset + _FRAME.size)
    if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        raise ValueError(f"damaged journal record at {position}")
    return payload


def read_after(slot_dir: Path, after: Position | None, *, below_seq: int | None = None) -> Iterator[tuple[Position, bytes]]:
    """Records with a position greater than `after`, in order (optionally only segments < below_seq)."""
    for seq, path in list_segments(slot_dir):
        if below_seq is not None and seq >= below_seq:
            break
        if after is not None and seq < after.seq:
            continue
        skip_first = after is not None and seq == after.seq
        for offset, payload in read_segment(path, after.offset if skip_first else 0):
            if skip_first and offset <= after.offset:
                continue
            yield Position(seq, offset), payload


# --- checkpoint ------------------------------------------------------------------------------


def read_state(slot_dir: Path) -> dict[str, Any]:
    """The checkpoint file: {"seq", "offset"} plus what the store keeps with it (its manifest)."""
    try:
        return dict(orjson.loads((slot_dir / "checkpoint.json").read_bytes()))
    except FileNotFoundError:
        return {}
    except (orjson.JSONDecodeError, OSError, TypeError, ValueError):
        log.error("journal %s: unreadable checkpoint, replaying everything", slot_dir)
        return {}


def read_checkpoint(slot_dir: Path) -> Position | None:
    state = read_state(slot_dir)
    if state.get("seq") is None:
        return None
    return Position(int(state["seq"]), int(state["offset"]))


def write_checkpoint(slot_dir: Path, position: Position | None, **state: Any) -> None:
    """Atomic (write, rename): a reader sees the old or the new checkpoint, never half of one."""
    tmp = slot_dir / ".checkpoint.json.tmp"
    body = {"seq": None, "offset": None} if position is None else position.to_json()
    tmp.write_bytes(orjson.dumps({**body, **state}))
    os.replace(tmp, slot_dir / "checkpoint.json")


def prune(slot_dir: Path, below_seq: int | None = None) -> int:
    """Delete the segments numbered below `below_seq` (all when None): their records are stored."""
    removed = 0
    for seq, path in list_segments(slot_dir):
        if below_seq is not None and seq >= below_seq:
            break
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


# --- writer ----------------------------------------------------------------------------------


class JournalWriter:
    """Appends framed records to the segments of one slot. Only the slot owner writes here."""

    def __init__(self, slot_dir: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES, fsync: bool = False) -> None:
        self.slot_dir = slot_dir
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        slot_dir.mkdir(parents=True, exist_ok=True)
        existing = list_segments(slot_dir)
        checkpoint = read_checkpoint(slot_dir)
        last = max([s for s, _ in existing] + [checkpoint.seq if checkpoint else -1])
        # always start a fresh segment: the old ones belong to a previous owner and get replayed
        self.first_seq = last + 1
        self.seq = self.first_seq
        self._fd = -1
        self.offset = 0
        self.last: Position | None = None  # the last record appended (any segment)
        # closed segment -> its last record: once that is stored, the whole segment can go
        self.closed_last: dict[int, Position] = {}
        self.opened_at = time.monotonic()
        self._open(self.seq)

    def _open(self, seq: int) -> None:
        fd = os.open(self.slot_dir / segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        if self._fd >= 0:
            os.close(self._fd)
            if self.last is not None and self.last.seq == self.seq:
                self.closed_last[self.seq] = self.last
        self._fd, self.seq, self.offset = fd, seq, os.fstat(fd).st_size
        self.opened_at = time.monotonic()

    def rotate_if_older(self, seconds: float) -> bool:
        """Start a new segment if the current one holds records and was opened `seconds` ago, so
        that raw bodies leave the disk soon after they are stored (segments go whole)."""
        if self.offset == 0 or time.monotonic() - self.opened_at < seconds:
            return False
        self._open(self.seq + 1)
        return True

    def stored_below(self, committed: Position) -> int:
        """The first segment not wholly stored when everything up to `committed` is: segments
        below it may be deleted. Never the segment being written."""
        below = committed.seq
        last = self.closed_last.get(committed.seq)
        if last is not None and committed >= last:
            below += 1
        for seq in [s for s in self.closed_last if s < below]:
            del self.closed_last[seq]
        return min(below, self.seq)

    def append(self, parts: list[bytes]) -> Position:
        """One writev of one framed record. On a short write the tail is cut back and OSError raised."""
        length = sum(len(p) for p in parts)
        crc = 0
        for p in parts:
            crc = zlib.crc32(p, crc)
        buffers = [_FRAME.pack(MAGIC, length, crc), *parts]
        total = _FRAME.size + length
        position = Position(self.seq, self.offset)
        written = os.writev(self._fd, buffers)
        if written != total:
            # a torn record would be skipped by readers anyway; cut it so the next one is clean
            try:
                os.ftruncate(self._fd, self.offset)
            except OSError:
                pass
            raise OSError(errno.ENOSPC, f"short journal write ({written} of {total} bytes)")
        self.offset += total
        self.last = position
        if self.fsync:
            os.fsync(self._fd)
        if self.offset >= self.segment_bytes:
            try:
                self._open(self.seq + 1)
            except OSError as exc:  # keep appending to the current one (e.g. dir turned read-only)
                log.warning("journal rotation failed, continuing in segment %d: %s", self.seq, exc)
        return position

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- what the journal could not take ------------------------------------------------------------

UNJOURNALED_FILE = "unjournaled"
_COUNT = struct.Struct("<Q")


class Unjournaled:
    """STORE/journal/<slot>/unjournaled: how many answered exchanges live only in this process's
    memory right now (the journal could not take them: disk full, or the space reserve reached).

    The file is allocated when the slot is opened, so updating it later is an overwrite in place
    (one pwrite into the page cache) that needs no free space and survives `kill -9`. If the
    process dies before those exchanges are stored, the next owner of the slot reads the count:
    they are lost, and it says so (`take_lost`)."""

    def __init__(self, slot_dir: Path) -> None:
        path = slot_dir / UNJOURNALED_FILE
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(self._fd, 0, _COUNT.size)
        except OSError:
            os.close(self._fd)
            raise
        self.value = 0

    @staticmethod
    def take_lost(slot_dir: Path) -> int:
        """The count a dead owner of the slot left behind, reset to 0 (the caller reports it)."""
        try:
            fd = os.open(slot_dir / UNJOURNALED_FILE, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            data = os.pread(fd, _COUNT.size, 0)
            if len(data) < _COUNT.size:
                return 0
            (count,) = _COUNT.unpack(data)
            if count:
                os.pwrite(fd, _COUNT.pack(0), 0)
            return count
        finally:
            os.close(fd)

    def set(self, value: int) -> None:
        if value != self.value and self._fd >= 0:
            os.pwrite(self._fd, _COUNT.pack(max(0, value)), 0)
            self.value = value

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `directory`."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def volume_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_blocks * st.f_frsize


# --- writer slots ----------------------------------------------------------------------------


class Slot:
    """An flock'ed claim on STORE/writers/<name>.lock; released on close (or by the kernel on death)."""

    def __init__(self, store: Path, name: str, fd: int) -> None:
        self.store = store
        self.name = name
        self._fd = fd
        self.journal_dir = store / "journal" / name

    def close(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def try_lock(store: Path, name: str, directory: str = "writers") -> Slot | None:
    """flock STORE/<directory>/<name>.lock without waiting; None when another process holds it."""
    fd = os.open(store / directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return Slot(store, name, fd)


def slot_names(store: Path) -> list[str]:
    """Every slot that has ever existed (lock file or journal dir)."""
    names: set[str] = set()
    for sub, suffix in (("writers", ".lock"), ("journal", "")):
        try:
            for entry in os.listdir(store / sub):
                if entry.endswith(suffix) and not entry.startswith("."):
                    names.add(entry[: len(entry) - len(suffix)] if suffix else entry)
        except FileNotFoundError:
            pass
    return sorted(names)


def claim_slot(store: Path, max_slots: int = 1024, prefix: str = "w") -> Slot:
    """The first free slot w000, w001, ... (r000, ... for the recorder's own calls): several
    processes share one STORE without coordination."""
    (store / "writers").mkdir(parents=True, exist_ok=True)
    for i in range(max_slots):
        slot = try_lock(store, f"{prefix}{i:03d}")
        if slot is not None:
            return slot
    raise RuntimeError(f"no free writer slot in {store}/writers (all {max_slots} locked)")


def take_lost(name: str, directory: Path) -> int:
    """What a dead owner of slot `name` answered but never journaled (its ledger), logged; reset."""
    try:
        lost = Unjournaled.take_lost(directory)
    except OSError as exc:
        log.error("journal %s: cannot read the count of unjournaled exchanges: %s", name, exc)
        return 0
    if lost:
        log.error("journal %s: %d answered exchanges were lost: the process that served them died while the "
                  "disk was full, before they were journaled (assistants_audit_store_lost_records_total)",
                  name, lost)
    return lost
