"""Store faults a real `assistants-audit serve` process must ride out with real SDK traffic:
the wall clock jumping back and forward under libfaketime, and SIGTERM with streams in flight
followed by a restart on the same store. (Read-only directory, disk full, kill -9 under load,
a reader holding audit.duckdb and journal replay are in tests/recording.)"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import openai
import pytest

from tests.faults.audit_serve import exchange_log, serving  # noqa: F401 (fixture)
from tests.sinks.serving import scrape
from tests.recording.test_store_faults import fill, tiny_fs  # noqa: F401 (fixture)
from tests.recording.store_helpers import rows, wait_for
from tests.recording.test_store_e2e import KEY, Client, stored_request_ids


def stored_all(store: Path, answered: list[str]) -> bool:
    return set(answered) <= set(stored_request_ids(store))


def assert_each_answered_exchange_once(store: Path, answered: list[str]) -> list[tuple]:
    logged = exchange_log(store)
    ids = [r[0] for r in logged]
    assert len(ids) == len(set(ids)), "an exchange id recorded twice"
    assert all(len(i) == 32 for i in ids)
    stored, expected = Counter(r[1] for r in logged), Counter(answered)
    odd = ", ".join(f"'{i}'" for i in stored - expected) or "NULL"
    extra = rows(store, "SELECT upstream_request_id, method, path, status_code, error_type, stream, started_at "
                        f"FROM exchange_log WHERE upstream_request_id IN ({odd})")
    assert stored == expected, f"stored but not answered: {extra}; answered but not stored: {expected - stored}"
    return logged


# --- the wall clock jumps --------------------------------------------------------------------


FAKETIME_LIBRARIES = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                      "/usr/local/lib/faketime/libfaketime.so.1")

# libfaketime 0.9.10 (Debian 12) breaks clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) when the
# monotonic clock is not faked: it returns EINVAL, and Python >= 3.11 sleeps with exactly that
# call, so every time.sleep() raises (wolfcw/libfaketime#426, fixed after 0.9.10). This shim,
# preloaded before libfaketime, hands monotonic sleeps straight to the kernel and everything else
# to libfaketime.
MONOTONIC_SLEEP_SHIM = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem) {
    if (clock_id == CLOCK_MONOTONIC)
        return syscall(SYS_clock_nanosleep, clock_id, flags, req, rem) == 0 ? 0 : errno;
    int (*next)(clockid_t, int, const struct timespec *, struct timespec *) = dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock_id, flags, req, rem);
}
"""

# run under libfaketime with the offset file at -1h: sleeps, moves the offset to +1d, reports
PROBE = """
import pathlib, sys, time
w, m = time.time(), time.monotonic()
time.sleep(0.01)
pathlib.Path(sys.argv[1]).write_text("+1d")
print(w, time.time(), m, time.monotonic())
"""


def _probe(env: dict[str, str], clock: Path) -> subprocess.CompletedProcess:
    clock.write_text("-1h\n")
    return subprocess.run([sys.executable, "-c", PROBE, str(clock)], capture_output=True, text=True, timeout=60,
                          env={**env, "FAKETIME_TIMESTAMP_FILE": str(clock)})


@pytest.fixture(scope="module")
def faketime_env(tmp_path_factory) -> dict[str, str]:
    """libfaketime's variables for a Python process whose wall clock follows the file named by
    FAKETIME_TIMESTAMP_FILE (re-read at every call) while CLOCK_MONOTONIC stays real, as on a
    machine whose clock is stepped (NTP, an operator): durations must come from the monotonic
    clock, never from the wall clock."""
    found = [path for pattern in FAKETIME_LIBRARIES for path in sorted(glob.glob(pattern))]
    if not found:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime)")
    work = tmp_path_factory.mktemp("faketime")
    env = {"LD_PRELOAD": found[0], "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    probe = _probe({**os.environ, **env}, work / "offset")
    if probe.returncode != 0 and "Invalid argument" in probe.stderr:  # libfaketime#426
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            pytest.skip("this libfaketime breaks time.sleep() unless the monotonic clock is faked too "
                        "(wolfcw/libfaketime#426), and there is no C compiler to build the shim")
        (work / "shim.c").write_text(MONOTONIC_SLEEP_SHIM)
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(work / "shim.so"), str(work / "shim.c"),
                        "-ldl"], check=True, capture_output=True, timeout=120)
        env["LD_PRELOAD"] = f"{work / 'shim.so'} {found[0]}"
        probe = _probe({**os.environ, **env}, work / "offset")
    assert probe.returncode == 0, probe.stderr
    before, after, mono_before, mono_after = map(float, probe.stdout.split())
    assert abs(before - (time.time() - 3600)) < 120, "libfaketime does not move Python's time.time()"
    assert after - before > 86400 + 3000  # a new offset applies at the next call
    assert 0 <= mono_after - mono_before < 10  # the monotonic clock is left alone
    return env


def test_wall_clock_jumps_lose_nothing_and_durations_stay_non_negative(emulator, serving, faketime_env, tmp_path):
    clock = tmp_path / "offset"
    clock.write_text("+0\n")
    store = tmp_path / "store"
    proxy = serving(emulator.url, store, env={**faketime_env, "FAKETIME_TIMESTAMP_FILE": str(clock)})
    client = Client(proxy.url + "/v1")
    assistant = client.sdk.beta.assistants.create(model="gpt-4o", name="clock-jump", instructions="Be brief.")
    stop = threading.Event()
    paused = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        sdk = client.sdk.beta
        while not stop.is_set():
            if paused.is_set():
                stop.wait(0.05)
                continue
            try:
                thread = sdk.threads.create(messages=[{"role": "user", "content": "What time is it?"}])
                sdk.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=1)
                with sdk.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                    stream.until_done()
                sdk.assistants.list(limit=2)
                stop.wait(0.05)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    streamer = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=60)
    straddling: list[str] = []  # x-request-id of the streams in flight across a jump

    def jump_during_a_stream(offset: str) -> None:
        thread = client.sdk.beta.threads.create(messages=[{"role": "user", "content": "Stream across the jump"}])
        stream = streamer.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True,
                                                   extra_headers={"X-Emulator-Fault": "slow_body=100"})
        events = iter(stream)
        first = next(events).event  # the proxy is relaying this stream...
        clock.write_text(f"{offset}\n")  # ...when its wall clock jumps
        assert [first, *(e.event for e in events)][-1] == "thread.run.completed"
        straddling.append(stream.response.headers["x-request-id"])

    threads = [threading.Thread(target=load, name=f"load-{i}") for i in range(3)]
    real_start = time.time()
    for t in threads:
        t.start()
    try:
        # traffic flows through every jump; in each phase new exchanges land in the store
        for offset in ("+0", "-1h", "+1d", "-1h", "+0"):
            jump_during_a_stream(offset)
            target = len(client.request_ids) + 40
            assert wait_for(lambda: errors or len(client.request_ids) >= target, timeout=60), offset
            assert not errors, errors
            answered = client.request_ids + straddling
            # the recorder runs at a lower priority than the workers: it catches up when the load pauses
            paused.set()
            try:
                assert wait_for(lambda: stored_all(store, answered), timeout=120, interval=0.25), \
                    f"the store stopped flushing after the jump to {offset}:\n{proxy.output()[-3000:]}"
            finally:
                paused.clear()
        metrics = scrape(f"http://127.0.0.1:{proxy.admin_port}/metrics")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    real_end = time.time()
    assert not errors, errors
    assert proxy.stop() == 0, proxy.output()
    logged = assert_each_answered_exchange_once(store, client.request_ids + straddling)
    assert len(logged) >= 200
    # the proxy really lived through the jumps: its wall clock stamped rows an hour back and a day ahead
    started = [r[0] for r in rows(store, "SELECT epoch(started_at) FROM exchange_log WHERE origin = 'client'")]
    assert any(s < real_start - 1800 for s in started), "no exchange started an hour back"
    assert any(s > real_end + 43200 for s in started), "no exchange started a day ahead"
    # durations come from the monotonic clock: never negative, never an hour or a day long
    (low, high), = rows(store, "SELECT min(least(duration_ms, coalesce(ttfb_ms, 0), proxy_overhead_ms)), "
                               "max(greatest(duration_ms, coalesce(ttfb_ms, 0), proxy_overhead_ms)) FROM exchange_log")
    assert low >= 0 and high < 60_000, (low, high)
    ids = ", ".join(f"'{i}'" for i in straddling)
    across = rows(store, f"SELECT duration_ms FROM exchange_log WHERE upstream_request_id IN ({ids})")
    assert len(across) == 5 and all(1000 < d < 30_000 for (d,) in across), across  # ~17 events 100 ms apart
    sums = {k: v for k, v in metrics.items() if k[0].endswith("_seconds_sum")}
    assert sums and all(0 <= v < 3600 for v in sums.values()), sums
    assert "Traceback" not in proxy.output()


# --- SIGTERM with streams in flight, then a restart --------------------------------------------


def test_sigterm_with_streams_in_flight_then_restart_stores_each_exchange_once(emulator, serving, tmp_path):
    store = tmp_path / "store"
    proxy = serving(emulator.url, store, "--grace-period", "30")
    client = Client(proxy.url + "/v1")  # counts what it was answered
    assistant = client.sdk.beta.assistants.create(model="gpt-4o", name="drain", instructions="Be brief.")
    thread_ids = [client.sdk.beta.threads.create(messages=[{"role": "user", "content": f"Stream {i}"}]).id
                  for i in range(4)]
    # the streams use their own SDK client: the counting one reads whole bodies in its response hook
    streamer = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=60)
    first_event = threading.Barrier(len(thread_ids) + 1, timeout=30)
    results: dict[str, tuple[str, list[str]]] = {}  # x-request-id -> (final run status, event names)
    errors: list[BaseException] = []

    def stream_run(thread_id: str) -> None:
        try:
            stream = streamer.beta.threads.runs.create(
                thread_id=thread_id, assistant_id=assistant.id, stream=True,
                extra_headers={"X-Emulator-Fault": "slow_body=250"})  # each event 250 ms after the last
            events, status = [], ""
            for event in stream:
                events.append(event.event)
                if len(events) == 1:
                    first_event.wait()
                if event.event.startswith("thread.run.") and hasattr(event.data, "status"):
                    status = event.data.status
            results[stream.response.headers["x-request-id"]] = (status, events)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
            first_event.abort()

    threads = [threading.Thread(target=stream_run, args=(t,), name=f"stream-{t}") for t in thread_ids]
    for t in threads:
        t.start()
    first_event.wait()  # every stream is under way...
    proxy.proc.send_signal(signal.SIGTERM)  # ...when the proxy is told to stop
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert proxy.proc.wait(60) == 0, proxy.output()
    # every stream completed for its client, cut nowhere
    assert len(results) == len(thread_ids)
    for status, events in results.values():
        assert status == "completed" and events[0] == "thread.run.created", events
        assert events[-1] == "thread.run.completed" and len(events) >= 8, events
    answered = client.request_ids + list(results)
    logged = assert_each_answered_exchange_once(store, answered)
    streamed = [r for r in logged if r[1] in results]
    assert [(r[2], r[3], r[4]) for r in streamed] == [(200, None, True)] * len(results)  # recorded whole
    assert rows(store, "SELECT count(*) FROM runs WHERE streamed AND status = 'completed'") == [(len(results),)]
    # a restart on the same store: it finds nothing left to replay, and its own traffic adds to the store
    restarted = serving(emulator.url, store)
    again = Client(restarted.url + "/v1")
    again.sdk.beta.assistants.list(limit=1)
    assert wait_for(lambda: set(again.request_ids) <= set(stored_request_ids(store)))
    assert restarted.stop() == 0, restarted.output()
    assert "replayed" not in restarted.output()
    after = assert_each_answered_exchange_once(store, answered + again.request_ids)
    assert {r[0] for r in logged} <= {r[0] for r in after}  # the same stable ids


# --- who may read the store ------------------------------------------------------------------


def open_to_others(store: Path) -> list[str]:
    """Every path under the store (itself included) that its group or other users may use."""
    return [f"{p} {oct(p.stat().st_mode & 0o777)}" for p in [store, *sorted(store.rglob("*"))]
            if p.exists() and p.stat().st_mode & 0o077]


def test_store_files_are_private_to_the_proxy_user(emulator, serving, tmp_path):
    store = tmp_path / "store"
    old = os.umask(0o022)  # the usual umask, whatever the test run has
    try:
        proxy = serving(emulator.url, store, "--capture-content")
    finally:
        os.umask(old)
    # the proxy's views are in place (price tables included) before this test reads the store:
    # a reader that finds no price tables writes them itself, with its own umask
    assert wait_for(lambda: (store / ".views.sha256").exists())
    client = Client(proxy.url + "/v1")
    client.workload()
    assert wait_for(lambda: stored_all(store, client.request_ids))
    assert open_to_others(store) == []  # captured content, journal, segments, views: 0600 / 0700
    assert proxy.stop() == 0, proxy.output()
    assert open_to_others(store) == []


# --- audit.duckdb damaged while the proxy serves -----------------------------------------------


def views_answer(db: Path) -> int | None:
    """The client row count through audit.duckdb opened the way readers open it, or None."""
    import duckdb

    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute("SELECT count(*) FROM exchanges WHERE origin = 'client'").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()


DAMAGE = {
    "truncated": lambda db: db.write_bytes(b""),
    "deleted": lambda db: db.unlink(),
    "overwritten": lambda db: db.write_bytes(b"not a database\n" * 100),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_audit_duckdb_is_rebuilt_while_serving(emulator, serving, tmp_path, damage):
    store = tmp_path / "store"
    proxy = serving(emulator.url, store)
    client = Client(proxy.url + "/v1")
    client.workload()
    db = store / "audit.duckdb"
    assert wait_for(lambda: views_answer(db) == len(client.request_ids))
    DAMAGE[damage](db)
    assert views_answer(db) is None
    client.sdk.beta.assistants.list(limit=1)  # still serving and recording
    assert wait_for(lambda: views_answer(db) == len(client.request_ids), timeout=60), proxy.output()[-3000:]
    assert proxy.stop() == 0, proxy.output()
    assert "rebuilding it" in proxy.output()


# --- a small volume fills up while the proxy serves -----------------------------------------------


class Load:
    """SDK clients creating threads with 8 KB messages through the proxy until stopped: enough
    journal per second to fill a 4 MiB volume within the store's retry backoff."""

    def __init__(self, client: Client, clients: int) -> None:
        self.client, self.errors = client, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"load-{i}") for i in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        text = "disk " * 1600
        while not self._stop.is_set():
            try:
                self.client.sdk.beta.threads.create(messages=[{"role": "user", "content": text}])
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return

    def more(self, n: int, timeout: float = 120) -> None:
        """Wait until n more exchanges were answered."""
        target = len(self.client.request_ids) + n
        assert wait_for(lambda: self.errors or len(self.client.request_ids) >= target, timeout=timeout)
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        assert not self.errors, self.errors


def store_errors(proxy, kind: str) -> float:
    return scrape(f"http://127.0.0.1:{proxy.admin_port}/metrics").get(
        ("assistants_audit_store_errors_total", (("kind", kind),)), 0.0)


def loaded_proxy(emulator, serving, volume: Path, clients: int):
    """A proxy with its store on `volume` (no enrichment: only client exchanges), under load."""
    store = volume / "store"
    proxy = serving(emulator.url, store, "--no-enrich")
    client = Client(proxy.url + "/v1")
    return store, proxy, client, Load(client, clients)


def test_a_full_volume_then_freed_stores_every_answered_exchange_once(emulator, serving, tiny_fs):
    store, proxy, client, load = loaded_proxy(emulator, serving, tiny_fs, clients=2)
    try:
        load.more(50)
        filler = fill(tiny_fs / "filler")
        load.more(300)  # answered while nothing can be written
        assert wait_for(lambda: store_errors(proxy, "disk_full") >= 1)
        filler.unlink()
        load.more(600)  # traffic goes on after the space is freed: the journal must not take it all again
    finally:
        load.stop()
    answered = client.request_ids
    assert wait_for(lambda: stored_all(store, answered), timeout=120), proxy.output()[-3000:]
    assert proxy.stop() == 0, proxy.output()
    assert_each_answered_exchange_once(store, answered)
    assert " lost" not in proxy.output(), proxy.output()[-3000:]


def test_kill_9_while_the_volume_is_full_reports_the_lost_exchanges_at_restart(emulator, serving, tiny_fs):
    store, proxy, client, load = loaded_proxy(emulator, serving, tiny_fs, clients=1)
    try:
        load.more(20)
        # the first ones (a fixed list: the load goes on, and the recorder may run behind it)
        first = list(client.request_ids)
        assert wait_for(lambda: stored_all(store, first), timeout=120)
        filler = fill(tiny_fs / "filler")
        load.more(150)  # answered, held in memory: neither the journal nor the store can take them
    finally:
        load.stop()
    # every process of the proxy at once (the OOM killer, kill -9 of its process group): the
    # worker holding the unjournaled exchanges gets no chance to drain
    for pid in [*proxy.worker_pids(), proxy.recorder_pid(), proxy.proc.pid]:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    proxy.proc.wait(30)
    answered = set(client.request_ids)
    filler.unlink()
    restarted = serving(emulator.url, store, "--no-enrich")
    lost_metric = ("assistants_audit_store_lost_records_total", ())
    metrics = f"http://127.0.0.1:{restarted.admin_port}/metrics"
    assert wait_for(lambda: scrape(metrics).get(lost_metric, 0) > 0, timeout=60), restarted.output()
    reported = scrape(metrics)[lost_metric]
    assert restarted.stop() == 0, restarted.output()
    missing = answered - set(stored_request_ids(store))
    assert len(missing) >= 100  # the kill really lost answered exchanges, and the restart says how many
    assert reported == len(missing)
    assert f"{int(reported)} answered exchanges were lost" in restarted.output()
