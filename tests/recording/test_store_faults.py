"""The store cannot be written (read-only directory, disk full): the recorder keeps accepting,
reports it, and catches up when the store is writable again, losing nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.pipeline import AuditRecorder, basic_facts
from proxy.sinks.store import StoreSink
from tests.recording.store_helpers import make_exchange, rows, settings, wait_for


def recorder(store: Path) -> AuditRecorder:
    s = settings(store)
    r = AuditRecorder(s, [StoreSink(s.store, max_backoff=0.5)], parse=basic_facts)
    r.start()
    assert r.ready.wait(30)
    return r


def stored_ids(store: Path) -> set[str]:
    return {r[0] for r in rows(store, "SELECT exchange_id FROM exchanges")}


@contextlib.contextmanager
def read_only(dirs: list[Path]) -> Iterator[None]:
    """Directories nobody can create or delete files in. root ignores permission bits, so as root
    the directories are made immutable (chattr +i), which binds root too."""
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            pytest.skip("running as root without chattr: cannot make a directory read-only")
        done = []
        try:
            for d in dirs:
                if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
                    pytest.skip("this filesystem does not support chattr +i")
                done.append(d)
            yield
        finally:
            for d in done:
                subprocess.run(["chattr", "-i", str(d)], check=True)
    else:
        modes = {d: d.stat().st_mode for d in dirs}
        try:
            for d in dirs:
                d.chmod(0o555)
            yield
        finally:
            for d, mode in modes.items():
                d.chmod(mode)


def test_read_only_store_keeps_accepting_and_catches_up(tmp_path):
    store = tmp_path / "store"
    r = recorder(store)
    try:
        before = [make_exchange(i) for i in range(5)]
        for ex in before:
            r.submit(ex)
        assert wait_for(lambda: len(stored_ids(store)) == 5)
        dirs = [store, store / "tables", *sorted((store / "tables").iterdir()), store / "journal",
                store / "journal" / r.slot.name]
        during = [make_exchange(100 + i) for i in range(20)]
        with read_only(dirs):
            for ex in during:
                r.submit(ex)  # never raises, never blocks
            assert wait_for(lambda: r.errors.get("read_only", 0) >= 2)
            assert r.spooled_records == 20
            assert len(stored_ids(store)) == 5
        # writable again: the pending rows land without a restart
        assert wait_for(lambda: len(stored_ids(store)) == 25, timeout=20)
        assert r.spooled_records == 0
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in before + during}
    assert r.lost_records == 0
    # and nothing is replayed twice by the next process
    r2 = recorder(store)
    r2.close()
    assert r2.replayed == 0 and len(rows(store, "SELECT exchange_id FROM exchange_log")) == 25


@pytest.fixture
def tiny_fs(tmp_path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(filler: Path) -> Path:
    """Take every free block of the filesystem holding `filler` (delete the file to free them)."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_keeps_accepting_and_catches_up(tiny_fs):
    store = tiny_fs / "store"
    r = recorder(store)
    try:
        filler = fill(tiny_fs / "filler")
        exs = [make_exchange(i, body=b"x" * 8192) for i in range(30)]
        for ex in exs:
            r.submit(ex)  # the journal append fails (ENOSPC): the record is kept in memory
        assert wait_for(lambda: r.errors.get("journal", 0) >= 1 and r.errors.get("disk_full", 0) >= 1)
        assert r.spooled_records == 30
        filler.unlink()
        assert wait_for(lambda: len(stored_ids(store)) == 30, timeout=20)
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in exs}
    assert r.lost_records == 0


def test_a_long_outage_drops_the_backlog_from_memory_and_catches_up_from_the_journal(tmp_path):
    store = tmp_path / "store"
    s = settings(store)
    r = AuditRecorder(s, [StoreSink(s.store, max_backoff=0.5)], parse=basic_facts, max_pending=10)
    r.start()
    assert r.ready.wait(30)
    try:
        dirs = [store, store / "tables", *sorted((store / "tables").iterdir())]
        first = [make_exchange(i) for i in range(30)]
        with read_only(dirs):
            for ex in first:
                r.submit(ex)
            assert wait_for(lambda: r.behind)
            assert r.store.pending_records == 0  # memory released, the journal holds them
            later = [make_exchange(100 + i) for i in range(10)]
            for ex in later:
                r.submit(ex)
            assert wait_for(lambda: r.spooled_records == 40)
        assert wait_for(lambda: not r.behind and len(stored_ids(store)) == 40, timeout=20)
        last = [make_exchange(200 + i) for i in range(5)]
        for ex in last:
            r.submit(ex)
        assert wait_for(lambda: len(stored_ids(store)) == 45)
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in first + later + last}
    assert len(rows(store, "SELECT exchange_id FROM exchange_log")) == 45  # none twice
