"""`assistants-audit serve` as a real subprocess: large uploads in bounded memory, SIGTERM drain,
several workers, the admin listener."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.clierrors import assert_one_line_error, run_cli
from tests.serving.upstreams import Upstream
from tests.servers import free_port, serve

KEY = "sk-serve-test-key-0123456789"


class ServeProcess:
    """`assistants-audit serve` as a subprocess on ports of its own.

    Other tests (and other developers' runs) share this machine: a port `free_port()` found free
    may be taken before the proxy binds it. The proxy then exits with "address already in use"
    while the other server answers on the port, so start-up waits until this process (or one of
    its workers) holds the listening sockets, and starts again on new ports when it lost one."""

    ATTEMPTS = 5

    def __init__(self, upstream_url: str, store: Path, *args: str) -> None:
        env = dict(os.environ, ASSISTANTS_AUDIT_UPSTREAM=upstream_url, ASSISTANTS_AUDIT_STORE=str(store))
        for _ in range(self.ATTEMPTS):
            self.port, self.admin_port = free_port(), free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log = open(store.parent / f"serve-{self.port}.log", "wb")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy.cli", "serve", "--listen", f"127.0.0.1:{self.port}",
                 "--admin-listen", f"127.0.0.1:{self.admin_port}", *args],
                env=env, stdout=self.log, stderr=subprocess.STDOUT,
            )
            if self._listening(admin="--admin-listen" not in args):
                return
            self.proc.kill()  # lost a port to another process: try new ones
            self.proc.wait()
            self.log.close()
        raise AssertionError(f"no free ports for the proxy in {self.ATTEMPTS} attempts:\n{self.output()}")

    def _listening(self, admin: bool) -> bool:
        """True once this process tree listens on its port (and admin port); False when it lost
        one of them to another process; fails the test on any other start-up failure."""
        from tests.faults.test_upstream_faults import listens  # that module imports this one

        ports = [self.port, self.admin_port] if admin else [self.port]
        deadline = time.monotonic() + 30
        while True:
            tree = [self.proc.pid, *_children(self.proc.pid)] if self.proc.poll() is None else []
            if tree and all(any(listens(pid, port) for pid in tree) for port in ports):
                return True
            if "address already in use" in self.output().lower():  # a worker may log it and live on
                return False
            assert self.proc.poll() is None, self.output()
            assert time.monotonic() < deadline, "proxy did not start\n" + self.output()
            time.sleep(0.05)

    def accepts(self, port: int | None = None) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port or self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def recorder_pid(self) -> int | None:
        return next((pid for pid in _children(self.proc.pid) if is_recorder(pid)), None)

    def worker_pids(self) -> list[int]:
        return [pid for pid in _children(self.proc.pid) if not is_recorder(pid)]

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of any process of the proxy (supervisor, workers, recorder)."""
        peaks = []
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        assert peaks, "no VmHWM"
        return max(peaks)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)  # workers drain, then the recorder stores the rest
        finally:
            self.log.close()


@pytest.fixture
def start_serve(tmp_path):
    started: list[ServeProcess] = []

    def start(upstream_url: str, *args: str) -> ServeProcess:
        started.append(ServeProcess(upstream_url, tmp_path / "store", *args))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("taken", ["port", "admin_port"])
def test_start_up_moves_on_when_another_server_takes_its_port(upstream, start_serve, monkeypatch, workers, taken):
    from tests.faults.test_upstream_faults import listens

    other = socket.socket()  # another test's server, on the port the helper is about to pick
    other.bind(("127.0.0.1", 0))
    other.listen()
    stolen = other.getsockname()[1]
    picks = iter([stolen] if taken == "port" else [free_port(), stolen])
    with monkeypatch.context() as m:  # only while the helper picks its ports
        m.setattr(sys.modules[__name__], "free_port", lambda real=free_port: next(picks, None) or real())
        proxy = start_serve(upstream.url, "--workers", workers)
    try:
        assert stolen not in (proxy.port, proxy.admin_port)
        tree = [proxy.proc.pid, *_children(proxy.proc.pid)]
        assert any(listens(pid, proxy.port) for pid in tree) and any(listens(pid, proxy.admin_port) for pid in tree)
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", "/v1/assistants")
        assert conn.getresponse().status == 200 and upstream.seen[-1][1] == "/v1/assistants"
        with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/healthz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        other.close()
    assert proxy.stop() == 0, proxy.output()


def test_100mb_upload_streams_through_in_bounded_memory(upstream, start_serve, tmp_path):
    proxy = start_serve(upstream.url)
    size = 100 * 1024 * 1024
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(100):
            f.write(block)
    client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=120)
    with open(big, "rb") as f:
        uploaded = client.files.create(file=f, purpose="assistants")
    big.unlink()
    method, path, headers, received = upstream.seen[-1]
    assert (method, path) == ("POST", "/v1/files")
    assert received > size  # the whole multipart body reached the upstream
    assert uploaded.bytes == received
    peak = proxy.peak_rss_mb()
    assert peak < 150, f"proxy peak RSS {peak:.0f} MB"
    print(f"proxy peak RSS {peak:.0f} MB")
    assert proxy.stop() == 0, proxy.output()
    assert KEY not in proxy.output()


def test_sigterm_drains_an_in_flight_stream(upstream, start_serve):
    proxy = start_serve(upstream.url, "--grace-period", "20")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    conn.request("POST", "/v1/threads/thread_1/runs", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    first = response.readline()
    assert first.startswith(b"event: thread.run.created")
    proxy.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while proxy.accepts():  # stops accepting new connections...
        assert time.monotonic() < deadline, "still accepting after SIGTERM"
        time.sleep(0.05)
    assert proxy.proc.poll() is None  # ...but is still serving the stream
    upstream.let_go()
    rest = response.read()
    assert b"event: thread.run.completed" in rest and rest.endswith(b"data: [DONE]\n\n")
    assert proxy.proc.wait(20) == 0, proxy.output()
    assert not upstream.stream_cancelled.is_set()


def is_recorder(pid: int) -> bool:
    try:
        return b"proxy.recording" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:  # the process is gone
        return []


def test_two_workers_serve_and_stop(upstream, start_serve, tmp_path):
    proxy = start_serve(upstream.url, "--workers", "2")
    children = _children(proxy.proc.pid)
    workers = [pid for pid in children if not is_recorder(pid)]
    recorders = [pid for pid in children if is_recorder(pid)]
    assert len(workers) == 2 and len(recorders) == 1, children
    deadline = time.monotonic() + 30
    while proxy.output().count(" forwarding http://") < 2:  # both workers listening
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.05)
    for _ in range(30):  # a new connection each time, so the kernel spreads them over the workers
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", "/v1/assistants", body=b'{"model": "gpt-4o"}',
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
    # the admin listener (in the supervisor) answers
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin_port}/readyz", timeout=5) as resp:
        assert resp.status == 200
    assert proxy.stop() == 0, proxy.output()
    assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
               for pid in children)
    from analytics.store import connect

    con = connect(tmp_path / "store")
    per_worker = dict(con.execute("select worker, count(*) from exchange_log group by worker").fetchall())
    con.close()
    assert set(per_worker) == {"w0", "w1"} and sum(per_worker.values()) == 30, per_worker


def test_bad_option_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "proxy.cli", "serve", "--upstream", "ftp://nowhere"],
                            capture_output=True, text=True, env=dict(os.environ, ASSISTANTS_AUDIT_STORE=str(tmp_path)))
    assert result.returncode == 2
    assert "Error: --upstream: not an http(s) URL" in result.stderr


def test_serve_records_to_the_store_enriches_and_never_writes_the_key(emulator, start_serve, tmp_path):
    from analytics.store import connect

    proxy = start_serve(emulator.url)
    client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=20)
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Compute a sum"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=1)
    assert run.status == "completed"
    deadline = time.monotonic() + 90  # the enricher waits ~2 s, then fetches the unseen steps
    while time.monotonic() < deadline and "enrichment" not in _origins(tmp_path / "store", connect):
        time.sleep(0.5)
    assert proxy.stop() == 0, proxy.output()
    origins = _origins(tmp_path / "store", connect)
    assert origins.get("client", 0) >= 4 and origins.get("enrichment", 0) >= 1, origins
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert KEY.encode() not in on_disk and KEY not in proxy.output()


def _origins(store: Path, connect) -> dict[str, int]:
    try:
        con = connect(store)
        try:
            return dict(con.execute("select origin, count(*) from exchange_log group by origin").fetchall())
        finally:
            con.close()
    except Exception:  # the store may not have its first segment yet
        return {}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stream_cut_by_the_grace_period_is_recorded_as_proxy_shutdown(emulator, start_serve, tmp_path, workers):
    from tests.recording.store_helpers import rows

    proxy = start_serve(emulator.url, "--grace-period", "1", "--workers", workers)
    client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=60)
    assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Take your time"}])
    stream = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, stream=True,
        extra_headers={"X-Emulator-Fault": "slow_body=3000"})  # minutes of events, far past the grace
    events = iter(stream)
    assert next(events).event == "thread.run.created"
    proxy.proc.send_signal(signal.SIGTERM)
    with pytest.raises((openai.APIError, http.client.HTTPException, OSError)):
        for _ in events:  # the proxy cuts the stream once the grace period is over
            pass
    assert proxy.proc.wait(30) == 0, proxy.output()
    cut = rows(tmp_path / "store", "SELECT status_code, error_type, stream FROM exchange_log "
                                   f"WHERE origin = 'client' AND path = '/v1/threads/{thread.id}/runs'")
    assert cut == [(200, "proxy_shutdown", True)]


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("option", ["--listen", "--admin-listen"])
def test_a_busy_port_is_one_line_naming_the_option(upstream, tmp_path, option, workers):
    other = socket.socket()  # someone else's server on the port asked for
    other.bind(("127.0.0.1", 0))
    other.listen()
    busy = f"127.0.0.1:{other.getsockname()[1]}"
    ports = {"--listen": f"127.0.0.1:{free_port()}", "--admin-listen": f"127.0.0.1:{free_port()}", option: busy}
    try:
        result = run_cli("serve", "--upstream", upstream.url, "--store", str(tmp_path / "audit"),
                         "--workers", workers, "--log-level", "error", *[a for kv in ports.items() for a in kv])
    finally:
        other.close()
    if workers == "1":
        assert_one_line_error(result, 2, option, busy, "Address already in use")
    else:  # the workers log; each names the option, and nothing is left running
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"{option} (" in result.stderr and "Address already in use" in result.stderr, result.stderr


def test_start_up_says_where_clients_go_where_the_store_is_and_that_the_upstream_is_down(start_serve, tmp_path):
    closed = free_port()  # nothing listens there
    proxy = start_serve(f"http://127.0.0.1:{closed}")
    deadline = time.monotonic() + 60
    while "accepts no TCP connection" not in proxy.output():
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.05)
    out = proxy.output()
    assert f"clients use base_url {proxy.url}/v1" in out
    assert f"store {(tmp_path / 'store').absolute()}" in out
    warning = next(line for line in out.splitlines() if "accepts no TCP connection" in line)
    assert " WARNING " in warning and f"http://127.0.0.1:{closed}" in warning
    assert proxy.accepts()  # and it serves anyway
    assert proxy.stop() == 0, proxy.output()
