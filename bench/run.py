"""The side-by-side benchmark: direct, nginx, the bare forwarder, `assistants-audit serve`, and the
same with `--workers 2`, all against one fast upstream, measured in one run, for each API: the
Assistants paths (a retrieved run and its steps, a streamed run) and the Responses paths (a plain
`POST /v1/responses`, a long streamed response). Then the memory part pushes one 100,000-event
streamed response and one 50 MB response through the audit proxy and reads each process's peak RSS.

Every server runs as its own process on loopback; the load generators (`bench.loadgen`, `wrk`)
are separate processes too. On a 2-core machine everything shares the same two cores, so the
ratios between paths are what to read, not the absolute numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.loadgen import APIS
from proxy.config import Settings

PY = sys.executable


@dataclass(frozen=True)
class Mode:
    """How long and how hard: `smoke` keeps CI honest in about a minute, `full` is the real thing."""

    name: str
    rates: tuple[int, ...]
    open_seconds: float
    max_seconds: float
    streams: int
    soak_requests: int  # RSS is read after 10% and 100% of these
    report_runs: int
    response_streams: int  # long streamed responses per path (bench.upstream.RESPONSE_STREAM_EVENTS events each)
    memory_events: int = 100_000  # the memory part's streamed response
    memory_output_bytes: int = 50_000_000  # the memory part's plain response


SMOKE = Mode("smoke", rates=(200,), open_seconds=2, max_seconds=2, streams=10, soak_requests=5_000, report_runs=2_000,
             response_streams=3)
FULL = Mode("full", rates=(200, 1000), open_seconds=10, max_seconds=10, streams=50, soak_requests=1_000_000,
            report_runs=100_000, response_streams=20)

TARGETS = {
    "latency_ratio": 1.10,  # audit added p50 latency <= 1.10 x bare added latency (200 and 1,000 req/s)
    "p99_ratio": 2.0,  # audit added p99 at 1,000 req/s <= 2 x bare's
    "rows_after_load_s": 10.0,  # every answered exchange is a row within 10 s of the load stopping
    "throughput_ratio": 0.90,  # audit throughput >= 0.90 x bare
    "workers2_ratio": 1.70,  # workers=2 >= 1.7 x single bare forwarder
    "stream_first_event_added_ms": 1.0,
    "rss_growth": 0.10,
    # an outsized response grows no process by more than this many body caps (--body-cap): what is
    # kept of a body is capped, whatever its size
    "memory_body_caps": 4,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def process(args: list[str], log: Path, port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)
    try:
        wait_port(port)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def roles(pid: int) -> dict[str, list[int]]:
    """The processes of a server by role: `serve` has workers and a recorder under its supervisor;
    a single-process server (the bare forwarder) is its own worker."""
    kids = children(pid)
    if not kids:
        return {"workers": [pid], "recorder": []}
    recorder = [k for k in kids if b"proxy.recording" in _cmdline(k)]
    return {"workers": [k for k in kids if k not in recorder], "recorder": recorder}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def memory_kib(pids: list[int], field: str = "VmRSS") -> int:
    """A /proc/PID/status memory figure summed over processes, in KiB: VmRSS (resident now) or
    VmHWM (the peak resident since start, or since `reset_peak_rss`)."""
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def reset_peak_rss(pids: list[int]) -> None:
    """Start VmHWM over from the current RSS (Linux: writing 5 to clear_refs), so the peak of what
    comes next is read exactly instead of sampled."""
    for p in pids:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except FileNotFoundError:
            pass


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (workers), in KiB."""
    return memory_kib([pid, *children(pid)])


def loadgen(url: str, rate: float, seconds: float, api: str = "assistants") -> dict:
    return _loadgen([url, str(rate), str(seconds), "--api", api], timeout=seconds * 10 + 120)


def _loadgen(args: list[str], timeout: float) -> dict:
    out = subprocess.run([PY, "-m", "bench.loadgen", *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wrk_script(api: str) -> str:
    """A wrk script sending the API's first open-loop request (static, so wrk builds it once)."""
    method, _, body, headers = APIS[api].requests[0]
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = [==[{body.decode()}]==]")
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def wrk(url: str, seconds: float, connections: int = 64, api: str = "assistants") -> dict:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="aa-bench-wrk-") as script:
        script.write(_wrk_script(api))
        script.flush()
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency",
                              "-s", script.name, url + APIS[api].requests[0][1]], capture_output=True, text=True,
                             timeout=seconds + 60)
    rps = requests = errors = 0.0
    for line in out.stdout.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(parts[1])
        elif "requests in" in line:
            requests = float(parts[0])
        elif line.strip().startswith("Non-2xx") or line.strip().startswith("Socket errors"):
            errors += sum(float(p.rstrip(",")) for p in parts if p.rstrip(",").isdigit())
    return {"rps": rps, "requests": int(requests), "errors": int(errors)}


def nginx_conf(prefix: Path, port: int, upstream_port: int) -> Path:
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  upstream api {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 512m;
    location / {{
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
""")
    return conf


def metric_sum(admin_port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def store_query(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def store_rows(store: Path) -> int:
    return int(store_query(store, "select count(*) from exchanges")[0][0])


# Until the recorder has a `responses` view, a Responses exchange is a row of `exchanges` by its path.
RESPONSES_ROWS = "select count(*) from exchanges where path = '/v1/responses'"


@dataclass
class PathResult:
    name: str
    api: str = "assistants"
    open_loop: dict[int, dict] = field(default_factory=dict)
    max_rps: float = 0.0
    stream: dict = field(default_factory=dict)
    answered: int = 0  # exchanges the clients saw answered (load generators and wrk)
    extra: dict = field(default_factory=dict)


def measure(name: str, url: str, mode: Mode, progress: Callable[[str], None], pid: int | None = None,
            api: str = "assistants") -> PathResult:
    result = PathResult(name, api)
    label = name if api == "assistants" else f"{name} ({api})"
    result.answered += loadgen(url, 100, 0.5, api)["ok"]  # warm-up: connections, caches
    for rate in mode.rates:
        progress(f"{label}: open loop at {rate} req/s")
        result.open_loop[rate] = loadgen(url, rate, mode.open_seconds, api)
        result.answered += result.open_loop[rate]["ok"]
    progress(f"{label}: closed loop, max throughput")
    procs = roles(pid) if pid is not None else {"workers": [], "recorder": []}
    before = cpu_seconds(procs["workers"])
    closed = wrk(url, mode.max_seconds, api=api)
    result.max_rps = closed["rps"]
    result.answered += closed["requests"]
    if procs["workers"] and closed["requests"]:
        # the serving processes' CPU per request, measured while they were saturated
        result.extra["serving_cpu_us_per_request"] = (cpu_seconds(procs["workers"]) - before) / closed["requests"] * 1e6
    if api == "assistants":
        progress(f"{label}: streamed runs")
        result.stream = loadgen(url, 0, mode.streams, api)
    else:
        progress(f"{label}: long streamed responses")
        result.stream = loadgen(url, 0, mode.response_streams, api)
    result.answered += result.stream["count"]
    return result


def run(mode: Mode, out_file: Path, console: Console) -> bool:
    work = Path(tempfile.mkdtemp(prefix="aa-bench-"))
    logs = work / "logs"
    logs.mkdir()
    up_port = free_port()
    results: dict[str, dict[str, PathResult]] = {api: {} for api in APIS}  # api -> path -> result
    audit: dict[str, dict] = {}
    memory_results: list[dict] = []

    def progress(text: str) -> None:
        console.log(text)

    def measure_path(name: str, url: str, pid: int | None = None) -> None:
        for api in APIS:
            results[api][name] = measure(name, url, mode, progress, pid, api)

    with process([PY, "-m", "bench.upstream", str(up_port)], logs / "upstream.log", up_port):
        upstream = f"http://127.0.0.1:{up_port}"
        measure_path("direct", upstream)

        if shutil.which("nginx"):
            port = free_port()
            prefix = work / "nginx"
            prefix.mkdir()
            conf = nginx_conf(prefix, port, up_port)
            with process(["nginx", "-p", str(prefix), "-c", str(conf)], logs / "nginx.log", port):
                measure_path("nginx", f"http://127.0.0.1:{port}")
        else:
            progress("nginx not installed: skipping that path (apt-get install nginx-light)")

        port = free_port()
        with process([PY, "-m", "bench.forwarder", str(port), upstream], logs / "bare.log", port) as bare:
            measure_path("bare", f"http://127.0.0.1:{port}", bare.pid)

        for label, workers in (("audit", 1), ("audit-w2", 2)):
            port, admin = free_port(), free_port()
            store = work / f"store-{label}"
            args = [PY, "-m", "proxy.cli", "serve", "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
                    "--admin-listen", f"127.0.0.1:{admin}", "--store", str(store), "--workers", str(workers),
                    "--no-enrich"]
            with process(args, logs / f"{label}.log", port) as proc:
                wait_port(admin)
                started = time.time()
                recorder_before = cpu_seconds(roles(proc.pid)["recorder"])
                measure_path(label, f"http://127.0.0.1:{port}", proc.pid)
                elapsed = time.time() - started
                # The recorder only gets CPU the workers leave idle (SCHED_IDLE): under the
                # saturated closed loop it falls behind, and the target is how soon it has
                # caught up once that load stops.
                load_stopped = time.time()
                answered, rows = settle(admin, store, timeout=60.0)
                caught_up = time.time() - load_stopped
                recorder_cpu = cpu_seconds(roles(proc.pid)["recorder"]) - recorder_before
                facts = audit.setdefault(label, {})
                facts.update(
                    answered=int(answered), rows=rows, lost=max(0, int(answered) - rows),
                    rows_per_second=rows / elapsed if elapsed else 0.0, rows_after_load_s=caught_up,
                    recorder_cpu_us_per_exchange=recorder_cpu / rows * 1e6 if rows else 0.0,
                    responses_answered=results["responses"][label].answered,
                    responses_rows=int(store_query(store, RESPONSES_ROWS)[0][0]))
                if workers == 1:
                    facts.update(soak(proc, f"http://127.0.0.1:{port}", mode, progress))
                    # minutes of saturation leave a backlog of minutes: nothing may be lost, and
                    # how long the catching up took is reported, not held to the 10 s target
                    soak_stopped = time.time()
                    answered, rows = settle(admin, store, timeout=1800.0)
                    facts.update(answered=int(answered), rows=rows, lost=max(0, int(answered) - rows),
                                 rows_after_soak_s=time.time() - soak_stopped,
                                 bodies_dropped=int(metric_sum(admin, "assistants_audit_bodies_dropped_total")))
                    memory_results = memory(proc, f"http://127.0.0.1:{port}", store, mode, progress)

    report_seconds = report_time(mode, work, progress)
    costs = breakdown(mode, progress)
    ok = write_results(mode, results, audit, report_seconds, out_file, console, costs, memory_results)
    shutil.rmtree(work, ignore_errors=True)
    return ok


def settle(admin_port: int, store: Path, timeout: float = 60.0) -> tuple[float, int]:
    """Once the load stops, wait until the recorder has counted everything it answered (the count
    stops moving) and the rows have landed, or the time is up; return (answered, rows)."""
    deadline = time.time() + timeout
    answered, rows = -1.0, 0
    while time.time() < deadline:
        previous = answered
        answered = metric_sum(admin_port, "assistants_audit_exchanges_total")
        try:
            rows = store_rows(store)
        except Exception:  # the views may not exist for the first instant
            rows = 0
        # caught up: nothing journaled is left to read, and the store has what was counted
        lag = metric_sum(admin_port, "assistants_audit_recorder_lag_bytes")
        if answered == previous and rows >= answered and lag == 0:
            break
        time.sleep(0.5)
    return answered, rows


def soak(proc: subprocess.Popen, url: str, mode: Mode, progress: Callable[[str], None]) -> dict:
    """RSS after 10% and after 100% of `soak_requests` requests, at max throughput."""
    done = 0
    rss_at_tenth = None
    target = mode.soak_requests
    while done < target:
        chunk = wrk(url, 5 if mode.name == "full" else 1)
        done += max(chunk["requests"], 1)
        if rss_at_tenth is None and done >= target / 10:
            rss_at_tenth = rss_kib(proc.pid)
        progress(f"soak: {done:,}/{target:,} requests, RSS {rss_kib(proc.pid) / 1024:.1f} MiB (all processes)")
    rss_end = rss_kib(proc.pid)
    rss_at_tenth = rss_at_tenth or rss_end
    return {"soak_requests": done, "rss_tenth_mib": rss_at_tenth / 1024, "rss_end_mib": rss_end / 1024,
            "rss_growth": (rss_end - rss_at_tenth) / rss_at_tenth if rss_at_tenth else 0.0}


def memory(proc: subprocess.Popen, url: str, store: Path, mode: Mode, progress: Callable[[str], None]) -> list[dict]:
    """Push one outsized streamed response and one outsized plain response through the proxy, each
    on its own after the load, and read every process's peak RSS (VmHWM, restarted before each)
    until the exchange is a row: the serving worker relays the body keeping `--body-cap` bytes of
    it, the recorder parses what was kept. The row says what was cut (bytes_out, body_truncated)."""
    pids = roles(proc.pid)
    everyone = [p for role in pids.values() for p in role]
    out = []
    for kind, flag, size, asked in (
            ("streamed response", "--push-events", mode.memory_events, f"{mode.memory_events:,} events"),
            ("plain response", "--push-output-bytes", mode.memory_output_bytes, f"{mode.memory_output_bytes / 1e6:,.0f} MB")):
        progress(f"memory: a {kind} of {asked} through the audit proxy")
        before = {role: memory_kib(ps) for role, ps in pids.items()}
        reset_peak_rss(everyone)
        pushed = _loadgen([url, flag, str(size)], timeout=900)
        row = _pushed_row(store, pushed["user_agent"], timeout=120.0)
        peak = {role: memory_kib(ps, "VmHWM") for role, ps in pids.items()}
        after = {role: memory_kib(ps) for role, ps in pids.items()}
        out.append({"kind": kind, "asked": asked, "events": size if flag == "--push-events" else None,
                    "pushed": pushed, "row": row, "before_kib": before, "peak_kib": peak, "after_kib": after})
    return out


def _pushed_row(store: Path, user_agent: str, timeout: float) -> dict | None:
    """The exchange row of a pushed response, once the recorder has stored it (None if it never does)."""
    columns = ("status_code", "stream", "bytes_out", "body_truncated", "parse_error", "error_type")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            rows = store_query(store, f"select {', '.join(columns)} from exchanges where user_agent = ?", [user_agent])
        except Exception:  # the store is between two flushes' files for an instant
            rows = []
        if rows:
            return dict(zip(columns, rows[0]))
        time.sleep(0.5)
    return None


def report_time(mode: Mode, work: Path, progress: Callable[[str], None]) -> float | None:
    script = Path(__file__).with_name("report_100k.py")
    if not script.exists():
        progress("bench/report_100k.py not present: skipping the report timing")
        return None
    progress(f"report on a {mode.report_runs:,}-run store")
    out = subprocess.run([PY, str(script), "--runs", str(mode.report_runs), "--store", str(work / "report-store"),
                          "--json"], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        progress(f"report timing failed: {out.stderr.strip()[-300:]}")
        return None
    try:
        return float(json.loads(out.stdout.strip().splitlines()[-1])["report_seconds"])
    except (ValueError, KeyError, IndexError):
        return None


def breakdown(mode: Mode, progress: Callable[[str], None]) -> dict[str, float]:
    """Recording's CPU per exchange, stage by stage (bench.breakdown), for the report."""
    n = 20_000 if mode.name == "full" else 1_000
    progress(f"recording cost breakdown over {n:,} exchanges")
    out = subprocess.run([PY, "-m", "bench.breakdown", "--json", "-n", str(n)], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        progress(f"breakdown failed: {out.stderr.strip()[-300:]}")
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _added(paths: dict[str, PathResult], name: str, rate: int, key: str) -> float:
    return paths[name].open_loop[rate][key] - paths["direct"].open_loop[rate][key]


def _stream_added(paths: dict[str, PathResult], name: str, key: str) -> float:
    return paths[name].stream[key] - paths["direct"].stream[key]


def _path_checks(mode: Mode, api: str, paths: dict[str, PathResult]) -> list[tuple[str, bool, str]]:
    """The targets against the bare forwarder, for one API's paths."""
    prefix = "" if api == "assistants" else f"{api}: "
    stream = "streamed" if api == "assistants" else "long stream"
    checks: list[tuple[str, bool, str]] = []
    bare_rps = paths["bare"].max_rps if "bare" in paths else 0.0
    if "bare" in paths and "audit" in paths:
        for rate in mode.rates:
            bare_added = max(_added(paths, "bare", rate, "p50_ms"), 0.01)
            audit_added = _added(paths, "audit", rate, "p50_ms")
            checks.append((f"{prefix}added latency p50 @{rate}/s <= {TARGETS['latency_ratio']} x bare",
                           audit_added <= TARGETS["latency_ratio"] * bare_added,
                           f"{audit_added:.2f} ms vs {bare_added:.2f} ms"))
        top = max(mode.rates)
        bare_added = max(_added(paths, "bare", top, "p99_ms"), 0.01)
        audit_added = _added(paths, "audit", top, "p99_ms")
        checks.append((f"{prefix}added latency p99 @{top}/s <= {TARGETS['p99_ratio']} x bare",
                       audit_added <= TARGETS["p99_ratio"] * bare_added, f"{audit_added:.2f} ms vs {bare_added:.2f} ms"))
        checks.append((f"{prefix}throughput >= {TARGETS['throughput_ratio']} x bare",
                       paths["audit"].max_rps >= TARGETS["throughput_ratio"] * bare_rps,
                       f"{paths['audit'].max_rps:,.0f} vs {bare_rps:,.0f} req/s"))
        first_added = _stream_added(paths, "audit", "first_event_p50_ms")
        checks.append((f"{prefix}{stream} first event added <= {TARGETS['stream_first_event_added_ms']} ms",
                       first_added <= TARGETS["stream_first_event_added_ms"], f"{first_added:.2f} ms"))
        if api != "assistants":
            # a long stream's last event carries what every event of it cost on the way
            bare_added = max(_stream_added(paths, "bare", "last_event_p50_ms"), 0.01)
            audit_added = _stream_added(paths, "audit", "last_event_p50_ms")
            checks.append((f"{prefix}{stream} last event added <= {TARGETS['latency_ratio']} x bare",
                           audit_added <= TARGETS["latency_ratio"] * bare_added,
                           f"{audit_added:.2f} ms vs {bare_added:.2f} ms"))
    if "audit-w2" in paths and bare_rps:
        checks.append((f"{prefix}--workers 2 >= {TARGETS['workers2_ratio']} x bare throughput",
                       paths["audit-w2"].max_rps >= TARGETS["workers2_ratio"] * bare_rps,
                       f"{paths['audit-w2'].max_rps / bare_rps:.2f} x"))
    return checks


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _memory_lines(pushes: list[dict]) -> tuple[list[str], list[tuple[str, bool, str]]]:
    """The memory part's table and its targets: each process's peak RSS growth bounded by the
    body cap, and the row saying what was cut."""
    cap = Settings.body_cap
    bound_kib = TARGETS["memory_body_caps"] * cap // 1024
    lines = ["", "## Memory: outsized Responses bodies through the audit proxy", "",
             f"Each response pushed alone after the load; RSS in MiB before / peak (VmHWM) / after, until its "
             f"row was stored. Body cap {cap / 2**20:.0f} MiB (`--body-cap`).", "",
             "| response | events | bytes | worker RSS | recorder RSS | row: bytes_out | body_truncated | parse_error |",
             "|---|---|---|---|---|---|---|---|"]
    checks: list[tuple[str, bool, str]] = []
    for push in pushes:
        pushed, row = push["pushed"], push["row"] or {}
        before, peak, after = push["before_kib"], push["peak_kib"], push["after_kib"]
        rss = {role: f"{_mib(before[role])} / {_mib(peak[role])} / {_mib(after[role])}" for role in before}
        events = f"{pushed['events']:,}" if pushed["events"] is not None else "-"
        lines.append(f"| {push['kind']} | {events} | {pushed['bytes']:,} | {rss['workers']} | {rss['recorder']} | "
                     f"{row.get('bytes_out', 'no row')} | {row.get('body_truncated', '-')} | "
                     f"{row.get('parse_error') or '-'} |")
        growth = {role: peak[role] - before[role] for role in before}
        checks.append((f"audit: {push['kind']} of {push['asked']}: peak RSS growth of each process < "
                       f"{TARGETS['memory_body_caps']} x body cap", max(growth.values()) < bound_kib,
                       ", ".join(f"{role} +{_mib(kib)} MiB" for role, kib in growth.items())))
        # relayed whole to the client, and the row has the full size and says the body was cut
        cut = (pushed["status"] == 200 and pushed["events"] == push["events"] and row.get("body_truncated") is True
               and row.get("bytes_out") == pushed["bytes"] > cap)
        checks.append((f"audit: {push['kind']} of {push['asked']}: its row says what was cut", cut,
                       f"{pushed['bytes']:,} bytes relayed; row: bytes_out {row.get('bytes_out')}, "
                       f"body_truncated {row.get('body_truncated')}" if row else "no row"))
    return lines, checks


def write_results(mode: Mode, results: dict[str, dict[str, PathResult]], audit: dict[str, dict],
                  report_seconds: float | None, out_file: Path, console: Console, costs: dict[str, float] | None = None,
                  memory_pushes: list[dict] | None = None) -> bool:
    lines = [f"# Benchmark results ({mode.name} mode)", "",
             f"Machine: {os.cpu_count()} cores; every process (upstream, proxies, load generators) shares them.",
             f"Generated by `python -m bench{' --smoke' if mode.name == 'smoke' else ''}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    table = Table(title=f"assistants-audit benchmark ({mode.name})")
    columns = ["path", "api"] + [f"+p50 @{r}/s (ms)" for r in mode.rates] + [f"+p99 @{r}/s (ms)" for r in mode.rates] + [
        "max req/s", "x bare", "+first event (ms)", "+last event (ms)"]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=column in ("path", "api"))
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    checks: list[tuple[str, bool, str]] = []
    for api, paths in results.items():
        bare_rps = paths["bare"].max_rps if "bare" in paths else 0.0
        for name, r in paths.items():
            row = [name, api]
            row += [f"{_added(paths, name, rate, 'p50_ms'):.2f}" for rate in mode.rates]
            row += [f"{_added(paths, name, rate, 'p99_ms'):.2f}" for rate in mode.rates]
            row.append(f"{r.max_rps:,.0f}")
            row.append(f"{r.max_rps / bare_rps:.2f}" if bare_rps else "-")
            row.append(f"{_stream_added(paths, name, 'first_event_p50_ms'):.2f}")
            row.append(f"{_stream_added(paths, name, 'last_event_p50_ms'):.2f}")
            table.add_row(*row)
            lines.append("| " + " | ".join(row) + " |")
        checks += _path_checks(mode, api, paths)
    console.print(table)

    for label, facts in audit.items():
        checks.append((f"{label}: zero records lost", facts.get("lost", 1) == 0,
                       f"{facts.get('answered')} answered, {facts.get('rows')} rows"))
        checks.append((f"{label}: every Responses exchange a row",
                       facts.get("responses_rows", 0) >= facts.get("responses_answered", 0) > 0,
                       f"{facts.get('responses_answered')} answered, {facts.get('responses_rows')} rows"))
        checks.append((f"{label}: every answered exchange a row within {TARGETS['rows_after_load_s']:.0f} s of the "
                       "load stopping", facts.get("lost", 1) == 0 and facts.get("rows_after_load_s", 1e9)
                       <= TARGETS["rows_after_load_s"], f"{facts.get('rows_after_load_s', 0):.1f} s"))
        if "rss_growth" in facts:
            checks.append((f"{label}: RSS growth < {TARGETS['rss_growth']:.0%} between 10% and 100% of "
                           f"{facts['soak_requests']:,} requests", facts["rss_growth"] < TARGETS["rss_growth"],
                           f"{facts['rss_tenth_mib']:.1f} -> {facts['rss_end_mib']:.1f} MiB"))
    memory_lines, memory_checks = _memory_lines(memory_pushes or [])
    checks += memory_checks
    if report_seconds is not None:
        checks.append((f"report on {mode.report_runs:,} runs < 5 s", report_seconds < 5, f"{report_seconds:.2f} s"))

    lines += ["", "Added latency is the path's percentile minus the direct path's at the same open-loop rate "
              "(and API). Streams: Assistants, a streamed run (16 events); Responses, a long streamed response "
              "(one `response.output_text.delta` per token).", "",
              "## Recording", "",
              "| proxy | answered | rows | lost | Responses answered | Responses rows | rows/s | "
              "all rows after the load (s) | recorder CPU µs / exchange |",
              "|---|---|---|---|---|---|---|---|---|"]
    for label, facts in audit.items():
        lines.append(f"| {label} | {facts.get('answered')} | {facts.get('rows')} | {facts.get('lost')} | "
                     f"{facts.get('responses_answered')} | {facts.get('responses_rows')} | "
                     f"{facts.get('rows_per_second', 0):,.0f} | {facts.get('rows_after_load_s', 0):.1f} | "
                     f"{facts.get('recorder_cpu_us_per_exchange', 0):.0f} |")
    for label, facts in audit.items():
        if "rows_after_soak_s" in facts:
            lines += ["", f"After the soak ({facts['soak_requests']:,} requests at saturation) the recorder caught "
                      f"up in {facts['rows_after_soak_s']:.1f} s; bodies dropped at the lag bound: "
                      f"{facts['bodies_dropped']:,} (their exchanges are rows all the same)."]
    lines += memory_lines
    serving = {(name, api): r.extra["serving_cpu_us_per_request"] for api, paths in results.items()
               for name, r in paths.items() if "serving_cpu_us_per_request" in r.extra}
    if serving:
        lines += ["", "## CPU per request of the serving process (closed loop, saturated)", "",
                  "| path | api | CPU µs / request |", "|---|---|---|"]
        lines += [f"| {name} | {api} | {us:.0f} |" for (name, api), us in serving.items()]
        for api in results:
            if ("bare", api) in serving and ("audit", api) in serving:
                lines.append(f"| audit - bare (what recording and the proxy's checks still cost the hot path) | "
                             f"{api} | {serving['audit', api] - serving['bare', api]:.0f} |")
    if costs:
        lines += ["", "## Where recording's CPU goes (per exchange, `python -m bench.breakdown`)", "",
                  "| stage | CPU µs |", "|---|---|"]
        lines += [f"| {name} | {us:.1f} |" for name, us in costs.items()]
        lines.append(f"| total | {sum(costs.values()):.1f} |")
    lines += ["", "## Targets", "", "| target | result | figure |", "|---|---|---|"]
    for text, passed, figure in checks:
        lines.append(f"| {text} | {'PASS' if passed else 'FAIL'} | {figure} |")
        console.print(f"[{'green' if passed else 'red'}]{'PASS' if passed else 'FAIL'}[/] {text}: {figure}")
    findings = Path(__file__).with_name("findings.md")
    if mode.name == "full" and findings.exists():  # what profiling found, kept beside the figures
        lines += ["", findings.read_text().rstrip()]
    out_file.write_text("\n".join(lines) + "\n")
    console.print(f"written to {out_file}")
    return all(passed for _, passed, _ in checks)
