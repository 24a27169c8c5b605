"""Helpers shared by the store and pipeline tests: exchanges, recorders, and a real child process
that records and can be killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from proxy.exchange import Exchange, new_exchange_id

ROOT = Path(__file__).resolve().parents[2]


def make_exchange(i: int = 0, *, body: bytes = b'{"object":"thread"}', path: str | None = None) -> Exchange:
    return Exchange(
        exchange_id=new_exchange_id(), worker="test", origin="client", started_at=time.time(), ttfb_s=0.004,
        duration_s=0.01, proxy_overhead_s=0.0005, method="POST", path=path or f"/v1/threads/thread_{i}/messages",
        query="", request_headers=(("user-agent", "pytest"), ("openai-beta", "assistants=v2")),
        key_fingerprint="fp-test", request_body=b'{"role":"user","content":"hi"}', request_body_size=31,
        status=200, response_headers=(("x-request-id", f"req_{i}"), ("content-type", "application/json")),
        response_body=body, response_body_size=len(body),
    )


def settings(store: Path, **extra: object) -> SimpleNamespace:
    return SimpleNamespace(store=str(store), capture_content=False, **extra)


def rows(store: Path, sql: str) -> list[tuple]:
    from analytics.store import open_store

    st = open_store(store)
    try:
        return st.query(sql)[1]
    finally:
        st.close()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


CHILD = r"""
import sys, time
sys.path.insert(0, {root!r})
from proxy.pipeline import AuditRecorder, basic_facts
from proxy.sinks.store import StoreSink
from tests.recording.store_helpers import make_exchange, settings
s = settings({store!r})
r = AuditRecorder(s, [StoreSink(s.store)], parse=basic_facts, segment_bytes={segment_bytes})
r.start()
print("slot", r.slot.name, flush=True)
i = 0
while True:
    ex = make_exchange(i)
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
