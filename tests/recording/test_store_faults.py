"""The store cannot be written (read-only directory, disk full): the proxy keeps journaling (or,
when the journal itself cannot be written, holds records in memory, bounded and counted), the
recorder reports the failure, stops reading while it lasts, and catches up from the journal when
the store is writable again, losing nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.recording.local import LocalRecorder
from tests.exchanges import exchange
from tests.recording import store_helpers
from tests.recording.store_helpers import rows, wait_for


def recorder(store: Path, **options) -> LocalRecorder:
    return store_helpers.recorder(store, store_options=dict(max_backoff=0.5), **options)


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


def test_read_only_store_keeps_journaling_and_catches_up(tmp_path):
    store = tmp_path / "store"
    r = recorder(store)
    try:
        before = [exchange(i) for i in range(5)]
        for ex in before:
            r.submit(ex)
        assert wait_for(lambda: len(stored_ids(store)) == 5)
        dirs = [store, store / "tables", *sorted((store / "tables").iterdir()), store / "journal",
                store / "journal" / r.appender.name]
        during = [exchange(100 + i) for i in range(20)]
        with read_only(dirs):
            for ex in during:
                r.submit(ex)  # never raises, never blocks
            assert wait_for(lambda: r.errors.get("read_only", 0) >= 2)
            # read from the journal, waiting to be written
            assert wait_for(lambda: r.spooled_records == 20)
            assert len(stored_ids(store)) == 5
        # writable again: the pending rows land without a restart
        assert wait_for(lambda: len(stored_ids(store)) == 25, timeout=90)
        assert r.spooled_records == 0
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in before + during}
    assert r.lost_records == 0 and r.appender.held == 0
    # and nothing is stored twice by the next process
    r2 = recorder(store)
    r2.close()
    assert r2.records == 0 and len(rows(store, "SELECT exchange_id FROM exchange_log")) == 25


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


def test_disk_full_holds_records_in_memory_and_catches_up(tiny_fs):
    store = tiny_fs / "store"
    r = recorder(store)
    try:
        filler = fill(tiny_fs / "filler")
        exs = [exchange(i, body=b"x" * 8192) for i in range(30)]
        for ex in exs:
            r.submit(ex)  # the journal's volume is full: the record is kept in memory
        assert r.appender.held == 30 and r.appender.journal_errors >= 1
        filler.unlink()
        assert wait_for(lambda: len(stored_ids(store)) == 30, timeout=90)
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in exs}
    assert r.lost_records == 0 and r.appender.held == 0


def test_records_held_in_memory_are_bounded_and_past_the_bound_counted(tiny_fs):
    store = tiny_fs / "store"
    r = recorder(store, journal_options=dict(max_held=10))
    try:
        filler = fill(tiny_fs / "filler")
        exs = [exchange(i) for i in range(30)]
        for ex in exs:
            r.submit(ex)
        # the oldest are dropped, and counted where the metrics read them
        assert r.appender.held == 10 and r.appender.lost_records == 20
        filler.unlink()
        assert wait_for(lambda: len(stored_ids(store)) == 10, timeout=90)
        assert wait_for(lambda: r.lost_records == 20)
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in exs[20:]}  # the newest ten


def test_a_long_outage_stays_in_the_journal_and_is_stored_from_it(tmp_path):
    """While the store fails the recorder stops reading: at most one flush's worth of records is
    in its memory, the rest waits in the journal and is read when the store works again."""
    store = tmp_path / "store"
    r = recorder(store, flush_records=10, batch_records=10)
    try:
        dirs = [store, store / "tables", *sorted((store / "tables").iterdir())]
        first = [exchange(i) for i in range(30)]
        with read_only(dirs):
            for ex in first:
                r.submit(ex)
            assert wait_for(lambda: r.errors.get("read_only", 0) >= 1 and r.spooled_records >= 10)
            later = [exchange(100 + i) for i in range(10)]
            for ex in later:
                r.submit(ex)
            # the tick measures the journal once a second: the lag is the journal not read
            assert wait_for(lambda: r.lag_bytes > 0 and r.appender.journal_bytes > 0)
            assert r.spooled_records < 20  # held in memory: what was read before the first failure, at most
            assert len(stored_ids(store)) == 0
        assert wait_for(lambda: len(stored_ids(store)) == 40, timeout=90)
        assert wait_for(lambda: r.lag_bytes == 0 and r.spooled_records == 0)
        last = [exchange(200 + i) for i in range(5)]
        for ex in last:
            r.submit(ex)
        assert wait_for(lambda: len(stored_ids(store)) == 45)
    finally:
        r.close()
    assert stored_ids(store) == {e.exchange_id for e in first + later + last}
    assert len(rows(store, "SELECT exchange_id FROM exchange_log")) == 45  # none twice
