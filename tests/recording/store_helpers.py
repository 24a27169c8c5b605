"""Helpers shared by the store and recorder tests: in-process recorders, store queries, and a real
child process that records and can be killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from proxy.config import Settings
from proxy.recording.local import LocalRecorder
from proxy.recording.recorder import Parse, basic_facts
from proxy.sinks.store import StoreSink

ROOT = Path(__file__).resolve().parents[2]


def recorder(store: Path, *, parse: Parse = basic_facts, store_options: dict[str, Any] | None = None,
             journal_options: dict[str, Any] | None = None, tick_interval: float = 0.1,
             **recorder_options: Any) -> LocalRecorder:
    """A started in-process recorder (journal appender + JournalRecorder) on `store`, storing
    `basic_facts` only. `journal_options` are JournalAppender settings (segment_bytes,
    rotate_seconds, max_held, ...). Every StoreSink it makes is kept in its `stores`."""
    stores: list[StoreSink] = []

    def make_store(directory: Path) -> StoreSink:
        stores.append(StoreSink(directory, **(store_options or {})))
        return stores[-1]

    r = LocalRecorder(Settings(store=str(store)), parse=parse, tick_interval=tick_interval, make_store=make_store,
                      **recorder_options)
    r.stores = stores  # type: ignore[attr-defined]
    for name, value in (journal_options or {}).items():
        assert hasattr(r.appender, name), name
        setattr(r.appender, name, value)
    r.start()
    assert r.ready.wait(30)
    return r


def rows(store: Path, sql: str) -> list[tuple]:
    from analytics.store import open_store

    st = open_store(store)
    try:
        return st.query(sql)[1]
    finally:
        st.close()


def wait_for(predicate, timeout: float = 90.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# A process recording as `serve` does, both halves in one process (LocalRecorder): its worker
# half journals each exchange, its recorder half stores them. kill -9 can catch either mid-write.
CHILD = r"""
import sys, time
sys.path.insert(0, {root!r})
from tests.exchanges import exchange
from tests.recording.store_helpers import recorder
r = recorder({store!r}, tick_interval=1.0, journal_options=dict(segment_bytes={segment_bytes}))
print("slot", r.appender.name, flush=True)
i = 0
while True:
    ex = exchange(i)
    r.submit(ex)
    print(ex.exchange_id, flush=True)  # "answered": the journal append returned
    i += 1
    time.sleep({pause})
"""


def spawn_writer(store: Path, *, pause: float = 0.001, segment_bytes: int = 64 * 1024) -> subprocess.Popen:
    code = CHILD.format(root=str(ROOT), store=str(store), pause=pause, segment_bytes=segment_bytes)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = proc.stdout.readline().split()
    assert first and first[0] == "slot", first
    proc.slot = first[1]  # type: ignore[attr-defined]
    return proc


def kill_and_collect(proc: subprocess.Popen, after: float) -> list[str]:
    """Let the child record for `after` seconds, SIGKILL it, return the ids it acknowledged."""
    time.sleep(after)
    proc.kill()
    out = proc.stdout.read()  # not communicate(): it would skip what readline() already buffered
    proc.wait(30)
    # the last line may be cut mid-write by the kill: only whole ids count as answered
    return [line for line in out.splitlines() if len(line) == 32]
