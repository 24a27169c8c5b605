"""The process boundary: workers only append to the journal, the recorder process stores it.

kill -9 of any process of `serve` under SDK load loses no answered exchange and stores none
twice: the recorder (restarted by the supervisor, it resumes after the checkpoint), a worker
(the proxy stops, the recorder stores the dead worker's journal), the supervisor (workers and
recorder drain on their own; a new `serve` on the store finds nothing missing). And what runs
in a worker: no parser, no DuckDB, no span or metric machinery is even loaded there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai

from tests.recording.store_helpers import rows, wait_for
from tests.recording.test_store_e2e import Client, all_answered_stored, serve, stored_request_ids  # noqa: F401 (fixture)


class Load:
    """SDK clients listing assistants in a loop until stopped (or their connection is cut)."""

    def __init__(self, client: Client, threads: int = 4) -> None:
        self.client = client
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, name=f"load-{i}") for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.sdk.beta.assistants.list(limit=5)
            except (openai.APIConnectionError, openai.APIStatusError):
                if self.stop.is_set():
                    return

    def wait_answered(self, n: int) -> None:
        assert wait_for(lambda: len(self.client.request_ids) >= n, timeout=120)

    def finish(self) -> list[str]:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return list(self.client.request_ids)


def assert_stored_once(store: Path, answered: list[str], in_flight: int) -> None:
    assert rows(store, "SELECT upstream_request_id, count(*) FROM exchange_log "
                       "GROUP BY 1 HAVING count(*) > 1") == []
    ids = stored_request_ids(store)
    assert set(answered) <= set(ids)
    # journaled-but-unanswered requests (in flight at the kill) may be stored: one per client thread at most
    assert len(answered) <= len(ids) <= len(answered) + in_flight


def test_kill_9_of_the_recorder_under_load_is_restarted_and_loses_nothing(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store)
    load = Load(Client(proxy.url + "/v1"))
    load.wait_answered(200)
    first = proxy.recorder_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # traffic goes on while there is no recorder; the supervisor starts a new one
    assert wait_for(lambda: proxy.recorder_pid() not in (None, first), timeout=60), proxy.output()
    load.wait_answered(len(load.client.request_ids) + 200)
    answered = load.finish()
    assert all_answered_stored(store, load.client, timeout=120), proxy.output()
    assert_stored_once(store, answered, in_flight=0)
    assert "restarting it" in proxy.output()
    assert proxy.stop() == 0, proxy.output()


def test_kill_9_of_a_worker_under_load_stops_the_proxy_and_loses_nothing(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store, "--workers", "2")
    load = Load(Client(proxy.url + "/v1"))
    load.wait_answered(200)
    victim = proxy.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    # a worker that dies stops the proxy (exit 1); the recorder stores the dead worker's journal too
    assert proxy.proc.wait(timeout=120) == 1
    answered = load.finish()
    assert_stored_once(store, answered, in_flight=len(load.threads))
    assert not any((store / "journal").glob("*/*.jnl")), "a clean recorder stop leaves no journal segment"


def test_kill_9_of_the_supervisor_under_load_then_restart_loses_nothing(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store)
    children = [*proxy.worker_pids(), proxy.recorder_pid()]
    load = Load(Client(proxy.url + "/v1"))
    load.wait_answered(200)
    proxy.proc.kill()
    proxy.proc.wait()
    # the workers (PR_SET_PDEATHSIG) and the recorder (its stdin closed) drain and exit by themselves
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() and "zombie" not in
                                    Path(f"/proc/{pid}/status").read_text() for pid in children), timeout=120)
    answered = load.finish()
    restarted = serve(emulator.url, store)
    assert all_answered_stored(store, load.client, timeout=120)
    assert_stored_once(store, answered, in_flight=len(load.threads))
    assert restarted.stop() == 0


HEAVY = ("duckdb", "opentelemetry", "prometheus_client", "analytics", "proxy.assistants.parse", "proxy.assistants.facts",
         "proxy.assistants.wire", "proxy.responses", "proxy.facts",
         "proxy.sinks", "proxy.sources.enrich", "proxy.recording.recorder", "proxy.recording.process")


def test_the_serving_process_imports_no_recording_machinery():
    """What a worker has loaded is what `proxy.serve` imports (workers are forked from it): no
    parser, no DuckDB, no OpenTelemetry, no Prometheus client."""
    code = ("import sys, proxy.serve\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    loaded = [m for m in out if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == [], loaded


def test_a_running_worker_maps_no_duckdb_but_the_recorder_does(emulator, serve, tmp_path):
    proxy = serve(emulator.url, tmp_path / "store")
    client = Client(proxy.url + "/v1")
    client.workload()
    worker, recorder = proxy.worker_pids()[0], proxy.recorder_pid()
    assert recorder is not None
    assert "duckdb" in Path(f"/proc/{recorder}/maps").read_text()
    assert "duckdb" not in Path(f"/proc/{worker}/maps").read_text()
    assert all_answered_stored(tmp_path / "store", client)
    assert proxy.stop() == 0


def _threads(pid: int) -> dict[int, tuple[int, int]]:
    """tid -> (scheduling policy, CPU ticks used) of every thread of a process."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = (os.sched_getscheduler(int(task.name)), int(fields[11]) + int(fields[12]))
    return out


def test_the_recorder_records_on_cpu_the_workers_leave_idle_its_event_loop_does_not_wait(emulator, serve, tmp_path):
    proxy = serve(emulator.url, tmp_path / "store")
    worker, recorder = proxy.worker_pids()[0], proxy.recorder_pid()
    assert recorder is not None
    before = _threads(recorder)
    client = Client(proxy.url + "/v1")
    client.workload()
    assert all_answered_stored(tmp_path / "store", client)
    threads = _threads(recorder)
    # the thread that did the recording work (most CPU during the workload) is SCHED_IDLE ...
    busiest = max(threads, key=lambda tid: threads[tid][1] - before.get(tid, (0, 0))[1])
    assert threads[busiest][0] == os.SCHED_IDLE, threads
    # ... its event loop (the main thread: /metrics, the credential channel) and the worker are not
    assert threads[recorder][0] == os.SCHED_OTHER, threads
    assert os.sched_getscheduler(worker) == os.SCHED_OTHER
    assert proxy.stop() == 0


def test_sigterm_under_load_drains_the_workers_then_the_recorder_stores_the_rest(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store, "--workers", "2")
    load = Load(Client(proxy.url + "/v1"))
    load.wait_answered(200)
    proxy.proc.send_signal(signal.SIGTERM)
    assert proxy.proc.wait(timeout=120) == 0, proxy.output()
    answered = load.finish()
    # stored before serve exited: no restart needed, nothing twice, and the journal is gone
    assert_stored_once(store, answered, in_flight=len(load.threads))
    assert not any((store / "journal").glob("*/*.jnl"))
    out = proxy.output()
    # the recorder stops last, after every worker has drained
    assert out.rindex("worker w0 stopped") < out.index("recorder storing what is left")
    assert out.rindex("worker w1 stopped") < out.index("recorder storing what is left")
