"""How far the recorder may fall behind, and what happens at the bound.

The recorder process runs at a lower priority and may be starved, stopped or restarting; the
workers never wait for it. What it has not stored is journal on disk (`recorder_lag_bytes`),
and past `--max-recorder-lag` a worker journals exchanges without their bodies: the row is kept,
says `bodies_dropped:recorder_lag`, and is counted in `assistants_audit_bodies_dropped_total`.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request

from prometheus_client import CollectorRegistry

from proxy.config import Settings
from proxy.recording.local import build_recorder
from proxy.recording.recorder import prepare_store
from tests.exchanges import exchange
from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import rows, wait_for
from tests.recording.test_store_e2e import Client


def test_lag_is_the_journal_not_yet_stored_and_drains_to_zero(tmp_path):
    registry = CollectorRegistry()
    recorder = build_recorder(Settings(store=str(tmp_path / "store")), registry=registry)
    prepare_store(tmp_path / "store")
    recorder.appender.open()  # the worker half only: the recorder is not following yet
    for i in range(50):
        recorder.appender.submit(exchange(i, body=b'{"object":"thread","pad":"' + b"x" * 1000 + b'"}'))
    journaled = sum(p.stat().st_size for p in (tmp_path / "store" / "journal").rglob("*.jnl"))
    assert journaled > 50_000
    recorder.recorder.start()
    assert wait_for(lambda: rows(tmp_path / "store", "SELECT count(*) FROM exchanges") == [(50,)], timeout=60)
    assert wait_for(lambda: recorder.recorder.lag_bytes == 0, timeout=60)
    assert wait_for(lambda: registry.get_sample_value("assistants_audit_recorder_lag_bytes") == 0, timeout=60)
    recorder.close()


def _metric(admin_port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def test_past_the_lag_bound_exchanges_are_journaled_without_bodies_and_counted(emulator, tmp_path):
    store = tmp_path / "store"
    proxy = ServeProcess(emulator.url, store, "--no-enrich", "--max-recorder-lag", "64KiB")
    try:
        client = Client(proxy.url + "/v1")
        client.workload()
        assert wait_for(lambda: set(client.request_ids) <= {r[0] for r in rows(
            store, "SELECT upstream_request_id FROM exchanges")}, timeout=60)
        recorder = proxy.recorder_pid()
        os.kill(recorder, signal.SIGSTOP)  # a recorder starved of CPU, as far as the workers can tell
        try:
            before = len(client.request_ids)
            deadline = time.monotonic() + 120
            # the worker looks at its journal once a second: traffic until it has passed the bound
            while "recording exchanges without their bodies" not in proxy.output():
                assert time.monotonic() < deadline, proxy.output()
                client.workload()
            client.workload()  # these go to the journal without bodies
            answered_while_stopped = client.request_ids[before:]
        finally:
            os.kill(recorder, signal.SIGCONT)
        assert wait_for(lambda: set(client.request_ids) <= {r[0] for r in rows(
            store, "SELECT upstream_request_id FROM exchanges")}, timeout=120)
        dropped = rows(store, "SELECT count(*) FROM exchanges WHERE parse_error = 'bodies_dropped:recorder_lag'")
        assert 0 < dropped[0][0] < len(answered_while_stopped)  # the first ones, under the bound, kept theirs
        # every exchange is a row, with its status and key fingerprint, bodies or not
        assert rows(store, "SELECT count(*) FROM exchanges WHERE status_code IS NULL OR key_fingerprint IS NULL") == [(0,)]
        assert wait_for(lambda: (_metric(proxy.admin_port, "assistants_audit_bodies_dropped_total") or 0) == dropped[0][0],
                        timeout=60)
        assert "the recorder caught up" in proxy.output() or wait_for(
            lambda: "the recorder caught up" in proxy.output(), timeout=60)
    finally:
        assert proxy.stop() == 0, proxy.output()
