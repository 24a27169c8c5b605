"""The audit store end to end: `assistants-audit serve` as a real process in front of the
emulator, the real openai SDK as the client, and the store read the way users read it."""

from __future__ import annotations

import http.client
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from analytics.store import open_store
from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import rows, wait_for

KEY = "sk-store-e2e-SECRET-4f1d9c0b7a2e55aa"


class Client:
    """The SDK through the proxy, counting every response the client received (answered)."""

    def __init__(self, base_url: str) -> None:
        self.request_ids: list[str] = []
        self._lock = threading.Lock()
        self.sdk = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=20,
                                 http_client=httpx.Client(event_hooks={"response": [self._answered]}))

    def _answered(self, response: httpx.Response) -> None:
        response.read()  # answered = the whole body arrived
        with self._lock:
            self.request_ids.append(response.headers["x-request-id"])

    def workload(self) -> str:
        assistant = self.sdk.beta.assistants.create(model="gpt-4o", instructions="Be brief.", name="store-e2e")
        thread = self.sdk.beta.threads.create(messages=[{"role": "user", "content": "Hello store"}])
        run = self.sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                         poll_interval_ms=1)
        self.sdk.beta.threads.messages.list(thread_id=thread.id)
        return run.id


def stored_request_ids(store: Path) -> list[str]:
    return [r[0] for r in rows(store, "SELECT upstream_request_id FROM exchanges WHERE origin = 'client'")]


def all_answered_stored(store: Path, client: Client, timeout: float = 60.0) -> bool:
    return bool(wait_for(lambda: set(client.request_ids) <= set(stored_request_ids(store)), timeout=timeout))


class ReadOnlyReader:
    """Another process holding audit.duckdb open read-only: the real `duckdb -readonly` CLI when
    installed (the test extra has duckdb-cli), else Python's duckdb.connect(read_only=True).
    The test asks it a query when it wants one and waits for the answer.

    `rerun_allowed`: past the compaction bound (a reader held for more than about a minute), a
    query running at the moment compaction replaces a file may fail; the README tells readers to
    rerun it. Then a failed query is rerun (each failure kept in `failures`)."""

    PY = ("import sys, duckdb\n"
          "con = duckdb.connect(sys.argv[1], read_only=True)\n"
          "for line in sys.stdin:\n"
          "    try:\n"
          "        print(con.execute(line).fetchone()[0], flush=True)\n"
          "    except duckdb.Error as exc:\n"
          "        print('Error:', exc, file=sys.stderr, flush=True)\n")

    def __init__(self, db: Path, *, rerun_allowed: bool = False) -> None:
        cli = shutil.which("duckdb")
        argv = [cli, "-readonly", "-csv", "-noheader", str(db)] if cli else [sys.executable, "-c", self.PY, str(db)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.rerun_allowed = rerun_allowed
        self.failures: list[str] = []

    def count(self, timeout: float = 60) -> int:
        """`SELECT count(*) FROM exchanges` through the held connection; it must answer."""
        for attempt in range(10):
            if attempt:
                time.sleep(0.5)  # let the compaction that failed the last one finish (not a proof of anything)
            self.proc.stdin.write("SELECT count(*) FROM exchanges;\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], timeout)
            if self.proc.stdout in ready:
                line = self.proc.stdout.readline()
                assert line.strip().isdigit(), (line, self.proc.poll())
                return int(line)
            assert ready, f"no answer within {timeout} s"
            self.failures.append(self.proc.stderr.readline())
            assert self.rerun_allowed, self.failures
        raise AssertionError(f"the query failed ten times in a row: {self.failures}")

    def finish(self) -> None:
        """Let go of the file; no query may have failed (but those rerun, where allowed)."""
        _, err = self.proc.communicate(timeout=60)
        # the duckdb CLI exits 1 at the end when any query failed, even one that was rerun
        assert self.proc.returncode == 0 or (self.rerun_allowed and self.failures), err
        assert self.rerun_allowed or not err.strip(), err


@pytest.fixture
def serve(tmp_path):
    started: list[ServeProcess] = []

    def start(upstream: str, store: Path, *args: str) -> ServeProcess:
        proc = ServeProcess(upstream, store, "--no-enrich", *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


def test_serve_records_sdk_traffic_and_never_keeps_the_key(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store)
    client = Client(proxy.url + "/v1")
    run_id = client.workload()
    # rows are visible while the proxy serves (the recorder flushes every 0.5 s; load may delay it)
    assert all_answered_stored(store, client)
    ids = stored_request_ids(store)
    assert sorted(ids) == sorted(client.request_ids)  # every exchange once
    assert rows(store, f"SELECT status FROM runs WHERE run_id = '{run_id}'") == [("completed",)]
    # audit.duckdb is views only and plain `duckdb -readonly` reads it while the proxy serves
    cli = shutil.which("duckdb")
    if cli:
        out = subprocess.run([cli, "-readonly", "-csv", "-noheader", str(store / "audit.duckdb"), "-c",
                              "SELECT count(*) FROM exchanges"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert int(out.stdout.strip()) == len(ids)
    assert proxy.stop() == 0
    # the key appears nowhere: not in any file of the store (journal included), not in the logs,
    # not in any column of any table (Parquet is compressed, so ask the database too)
    needle = KEY.encode()
    for path in store.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), path
    assert KEY not in proxy.output()
    db = open_store(store)
    for (table,) in db.query("SELECT view_name FROM duckdb_views() WHERE NOT internal")[1]:
        hits = db.query(f"SELECT count(*) FROM {table} t WHERE to_json(t)::VARCHAR LIKE '%{KEY[8:]}%'")[1]
        assert hits == [(0,)], table
    db.close()
    assert {r[0] for r in rows(store, "SELECT DISTINCT key_fingerprint FROM exchanges")} != {None}


def test_kill_9_under_load_then_restart_stores_every_answered_exchange_once(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store)
    client = Client(proxy.url + "/v1")
    stop = threading.Event()
    failures: list[BaseException] = []

    def load() -> None:
        while not stop.is_set():
            try:
                client.sdk.beta.assistants.list(limit=5)
            except openai.APIConnectionError as exc:  # the kill
                failures.append(exc)
                return

    threads = [threading.Thread(target=load, name=f"load-{i}") for i in range(4)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(client.request_ids) >= 300, timeout=60)
    proxy.proc.kill()  # SIGKILL, mid-load
    proxy.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    answered = list(client.request_ids)
    restarted = serve(emulator.url, store)
    assert all_answered_stored(store, client)
    stored = rows(store, "SELECT upstream_request_id, count(*) FROM exchange_log GROUP BY 1 HAVING count(*) > 1")
    assert stored == []  # no duplicates after replay
    ids = stored_request_ids(store)
    assert set(answered) <= set(ids)
    # journaled-but-unanswered requests (in flight at the kill) may be stored: at most one per client thread
    assert len(answered) <= len(ids) <= len(answered) + len(threads)
    restarted.stop()


# DuckDB reads every segment's footer when it plans a query and reopens the file to scan it, so
# a writer replacing a planned file (compaction's placeholders, a placeholder reused for new
# rows) would fail the reader's query. Writers see the reader's lock and only add new files.
@pytest.mark.parametrize("hold", [30, pytest.param(60, marks=pytest.mark.slow)])
def test_a_reader_holding_the_database_in_another_process_blocks_nothing(emulator, serve, tmp_path, hold):
    store = tmp_path / "store"
    first = serve(emulator.url, store)
    client = Client(first.url + "/v1")
    client.workload()
    assert all_answered_stored(store, client)
    assert wait_for(lambda: (store / ".views.sha256").exists())
    # another process opens audit.duckdb read-only and keeps it open for at least `hold` seconds
    reader = ReadOnlyReader(store / "audit.duckdb", rerun_allowed=hold > 50)
    first_count = reader.count()
    # a second proxy starts on the same store and must rewrite the views while the reader holds them
    (store / ".views.sha256").unlink()
    second = serve(emulator.url, store)
    other = Client(second.url + "/v1")
    started = time.monotonic()
    while time.monotonic() - started < hold:  # writers flush and compact meanwhile
        client.workload()
        other.workload()
        reader.count()  # each query through the held connection answers
    every = client.request_ids + other.request_ids
    assert wait_for(lambda: sorted(stored_request_ids(store)) == sorted(every))
    # the reader, still holding the file, sees the rows that landed meanwhile
    assert reader.count() > first_count
    reader.finish()
    # after the reader left, the second writer got to refresh audit.duckdb
    assert wait_for(lambda: (store / ".views.sha256").exists(), timeout=60)
    # two writers, two slots, both landed
    assert len(list((store / "writers").glob("*.lock"))) == 2
    assert first.stop() == 0 and second.stop() == 0


def test_workers_2_each_land_their_rows_in_one_store(emulator, serve, tmp_path):
    store = tmp_path / "store"
    proxy = serve(emulator.url, store, "--workers", "2")
    answered = []

    def send(n: int) -> None:
        for _ in range(n):  # a fresh connection each time, so SO_REUSEPORT spreads them over the workers
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
            conn.request("GET", "/v1/assistants?limit=1", headers={
                "Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2", "Connection": "close"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            answered.append(response.getheader("x-request-id"))
            conn.close()

    def both_workers_recorded() -> bool:
        send(20)  # the second worker may start listening a moment after the first
        return rows(store, "SELECT count(DISTINCT worker) FROM exchanges") == [(2,)]

    assert wait_for(both_workers_recorded, timeout=30, interval=0.2)
    assert wait_for(lambda: sorted(stored_request_ids(store)) == sorted(answered), timeout=90)
    assert proxy.stop() == 0
    assert sorted(p.name for p in (store / "writers").glob("*.lock")) == ["w000.lock", "w001.lock"]


def test_a_read_only_store_dir_keeps_the_proxy_serving_and_catches_up(emulator, serve, tmp_path):
    from tests.recording.test_store_faults import read_only

    store = tmp_path / "store"
    proxy = serve(emulator.url, store)
    client = Client(proxy.url + "/v1")
    client.workload()
    assert all_answered_stored(store, client)
    before = len(client.request_ids)
    dirs = [store, store / "tables", *sorted((store / "tables").iterdir())]
    with read_only(dirs):
        client.workload()  # every call answered while nothing can be written to the store
        assert len(client.request_ids) > before
        # a flush of the new rows was tried and failed (the log says so), and nothing landed
        assert wait_for(lambda: "store: flush of" in proxy.output(), timeout=60), proxy.output()
        assert len(stored_request_ids(store)) == before
    assert all_answered_stored(store, client)  # writable again: caught up, no restart
    assert sorted(stored_request_ids(store)) == sorted(client.request_ids)
    assert proxy.stop() == 0
    assert "store: flush of" in proxy.output()  # and it was reported
