"""The side-by-side benchmark: direct, nginx, the bare forwarder, `assistants-audit serve`, and the
same with `--workers 2`, all against one fast upstream, measured in one run.

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

PY = sys.executable
RUN_PATH = "/v1/threads/thread_x/runs/run_x"


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


SMOKE = Mode("smoke", rates=(200,), open_seconds=2, max_seconds=2, streams=10, soak_requests=5_000, report_runs=2_000)
FULL = Mode("full", rates=(200, 1000), open_seconds=10, max_seconds=10, streams=50, soak_requests=1_000_000,
            report_runs=100_000)

TARGETS = {
    "latency_ratio": 1.10,  # audit added p50 latency <= 1.10 x bare added latency (200 and 1,000 req/s)
    "p99_ratio": 2.0,  # audit added p99 at 1,000 req/s <= 2 x bare's
    "rows_after_load_s": 10.0,  # every answered exchange is a row within 10 s of the load stopping
    "throughput_ratio": 0.90,  # audit throughput >= 0.90 x bare
    "workers2_ratio": 1.70,  # workers=2 >= 1.7 x single bare forwarder
    "stream_first_event_added_ms": 1.0,
    "rss_growth": 0.10,
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


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (workers), in KiB."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def loadgen(url: str, rate: float, seconds: float) -> dict:
    out = subprocess.run([PY, "-m", "bench.loadgen", url, str(rate), str(seconds)], capture_output=True, text=True,
                         timeout=seconds * 10 + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wrk(url: str, seconds: float, connections: int = 64) -> dict:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency",
                          "-H", "Authorization: Bearer sk-bench-not-a-real-key", "-H", "OpenAI-Beta: assistants=v2",
                          url + RUN_PATH], capture_output=True, text=True, timeout=seconds + 60)
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


def store_rows(store: Path) -> int:
    import duckdb

    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    try:
        return int(con.execute("select count(*) from exchanges").fetchone()[0])
    finally:
        con.close()


@dataclass
class PathResult:
    name: str
    open_loop: dict[int, dict] = field(default_factory=dict)
    max_rps: float = 0.0
    stream: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def measure(name: str, url: str, mode: Mode, progress: Callable[[str], None], pid: int | None = None) -> PathResult:
    result = PathResult(name)
    loadgen(url, 100, 0.5)  # warm-up: connections, caches
    for rate in mode.rates:
        progress(f"{name}: open loop at {rate} req/s")
        result.open_loop[rate] = loadgen(url, rate, mode.open_seconds)
    progress(f"{name}: closed loop, max throughput")
    procs = roles(pid) if pid is not None else {"workers": [], "recorder": []}
    before = cpu_seconds(procs["workers"])
    closed = wrk(url, mode.max_seconds)
    result.max_rps = closed["rps"]
    if procs["workers"] and closed["requests"]:
        # the serving processes' CPU per request, measured while they were saturated
        result.extra["serving_cpu_us_per_request"] = (cpu_seconds(procs["workers"]) - before) / closed["requests"] * 1e6
    progress(f"{name}: streamed runs")
    result.stream = loadgen(url, 0, mode.streams)
    return result


def run(mode: Mode, out_file: Path, console: Console) -> bool:
    work = Path(tempfile.mkdtemp(prefix="aa-bench-"))
    logs = work / "logs"
    logs.mkdir()
    up_port = free_port()
    results: dict[str, PathResult] = {}
    audit: dict[str, dict] = {}

    def progress(text: str) -> None:
        console.log(text)

    with process([PY, "-m", "bench.upstream", str(up_port)], logs / "upstream.log", up_port):
        upstream = f"http://127.0.0.1:{up_port}"
        results["direct"] = measure("direct", upstream, mode, progress)

        if shutil.which("nginx"):
            port = free_port()
            prefix = work / "nginx"
            prefix.mkdir()
            conf = nginx_conf(prefix, port, up_port)
            with process(["nginx", "-p", str(prefix), "-c", str(conf)], logs / "nginx.log", port):
                results["nginx"] = measure("nginx", f"http://127.0.0.1:{port}", mode, progress)
        else:
            progress("nginx not installed: skipping that path (apt-get install nginx-light)")

        port = free_port()
        with process([PY, "-m", "bench.forwarder", str(port), upstream], logs / "bare.log", port) as bare:
            results["bare"] = measure("bare", f"http://127.0.0.1:{port}", mode, progress, bare.pid)

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
                results[label] = measure(label, f"http://127.0.0.1:{port}", mode, progress, proc.pid)
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
                    recorder_cpu_us_per_exchange=recorder_cpu / rows * 1e6 if rows else 0.0)
                if workers == 1:
                    facts.update(soak(proc, f"http://127.0.0.1:{port}", mode, progress))
                    # minutes of saturation leave a backlog of minutes: nothing may be lost, and
                    # how long the catching up took is reported, not held to the 10 s target
                    soak_stopped = time.time()
                    answered, rows = settle(admin, store, timeout=1800.0)
                    facts.update(answered=int(answered), rows=rows, lost=max(0, int(answered) - rows),
                                 rows_after_soak_s=time.time() - soak_stopped,
                                 bodies_dropped=int(metric_sum(admin, "assistants_audit_bodies_dropped_total")))

    report_seconds = report_time(mode, work, progress)
    costs = breakdown(mode, progress)
    ok = write_results(mode, results, audit, report_seconds, out_file, console, costs)
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


def _added(results: dict[str, PathResult], name: str, rate: int, key: str) -> float:
    return results[name].open_loop[rate][key] - results["direct"].open_loop[rate][key]


def write_results(mode: Mode, results: dict[str, PathResult], audit: dict[str, dict], report_seconds: float | None,
                  out_file: Path, console: Console, costs: dict[str, float] | None = None) -> bool:
    lines = [f"# Benchmark results ({mode.name} mode)", "",
             f"Machine: {os.cpu_count()} cores; every process (upstream, proxies, load generators) shares them.",
             f"Generated by `python -m bench{' --smoke' if mode.name == 'smoke' else ''}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    table = Table(title=f"assistants-audit benchmark ({mode.name})")
    columns = ["path"] + [f"+p50 @{r}/s (ms)" for r in mode.rates] + [f"+p99 @{r}/s (ms)" for r in mode.rates] + [
        "max req/s", "x bare", "+first event (ms)", "+last event (ms)"]
    for column in columns:
        table.add_column(column, justify="right")
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    bare_rps = results["bare"].max_rps if "bare" in results else 0.0
    for name, r in results.items():
        row = [name]
        row += [f"{_added(results, name, rate, 'p50_ms'):.2f}" for rate in mode.rates]
        row += [f"{_added(results, name, rate, 'p99_ms'):.2f}" for rate in mode.rates]
        row.append(f"{r.max_rps:,.0f}")
        row.append(f"{r.max_rps / bare_rps:.2f}" if bare_rps else "-")
        row.append(f"{r.stream['first_event_p50_ms'] - results['direct'].stream['first_event_p50_ms']:.2f}")
        row.append(f"{r.stream['last_event_p50_ms'] - results['direct'].stream['last_event_p50_ms']:.2f}")
        table.add_row(*row)
        lines.append("| " + " | ".join(row) + " |")
    console.print(table)

    checks: list[tuple[str, bool, str]] = []
    if "bare" in results and "audit" in results:
        for rate in mode.rates:
            bare_added = max(_added(results, "bare", rate, "p50_ms"), 0.01)
            audit_added = _added(results, "audit", rate, "p50_ms")
            checks.append((f"added latency p50 @{rate}/s <= {TARGETS['latency_ratio']} x bare",
                           audit_added <= TARGETS["latency_ratio"] * bare_added,
                           f"{audit_added:.2f} ms vs {bare_added:.2f} ms"))
        top = max(mode.rates)
        bare_added = max(_added(results, "bare", top, "p99_ms"), 0.01)
        audit_added = _added(results, "audit", top, "p99_ms")
        checks.append((f"added latency p99 @{top}/s <= {TARGETS['p99_ratio']} x bare",
                       audit_added <= TARGETS["p99_ratio"] * bare_added, f"{audit_added:.2f} ms vs {bare_added:.2f} ms"))
        checks.append((f"throughput >= {TARGETS['throughput_ratio']} x bare",
                       results["audit"].max_rps >= TARGETS["throughput_ratio"] * bare_rps,
                       f"{results['audit'].max_rps:,.0f} vs {bare_rps:,.0f} req/s"))
        first_added = results["audit"].stream["first_event_p50_ms"] - results["direct"].stream["first_event_p50_ms"]
        checks.append((f"streamed first event added <= {TARGETS['stream_first_event_added_ms']} ms",
                       first_added <= TARGETS["stream_first_event_added_ms"], f"{first_added:.2f} ms"))
    if "audit-w2" in results and bare_rps:
        checks.append((f"--workers 2 >= {TARGETS['workers2_ratio']} x bare throughput",
                       results["audit-w2"].max_rps >= TARGETS["workers2_ratio"] * bare_rps,
                       f"{results['audit-w2'].max_rps / bare_rps:.2f} x"))
    for label, facts in audit.items():
        checks.append((f"{label}: zero records lost", facts.get("lost", 1) == 0,
                       f"{facts.get('answered')} answered, {facts.get('rows')} rows"))
        checks.append((f"{label}: every answered exchange a row within {TARGETS['rows_after_load_s']:.0f} s of the "
                       "load stopping", facts.get("lost", 1) == 0 and facts.get("rows_after_load_s", 1e9)
                       <= TARGETS["rows_after_load_s"], f"{facts.get('rows_after_load_s', 0):.1f} s"))
        if "rss_growth" in facts:
            checks.append((f"{label}: RSS growth < {TARGETS['rss_growth']:.0%} between 10% and 100% of "
                           f"{facts['soak_requests']:,} requests", facts["rss_growth"] < TARGETS["rss_growth"],
                           f"{facts['rss_tenth_mib']:.1f} -> {facts['rss_end_mib']:.1f} MiB"))
    if report_seconds is not None:
        checks.append((f"report on {mode.report_runs:,} runs < 5 s", report_seconds < 5, f"{report_seconds:.2f} s"))

    lines += ["", "Added latency is the path's percentile minus the direct path's at the same open-loop rate.", "",
              "## Recording", "",
              "| proxy | answered | rows | lost | rows/s | all rows after the load (s) | recorder CPU µs / exchange |",
              "|---|---|---|---|---|---|---|"]
    for label, facts in audit.items():
        lines.append(f"| {label} | {facts.get('answered')} | {facts.get('rows')} | {facts.get('lost')} | "
                     f"{facts.get('rows_per_second', 0):,.0f} | {facts.get('rows_after_load_s', 0):.1f} | "
                     f"{facts.get('recorder_cpu_us_per_exchange', 0):.0f} |")
    for label, facts in audit.items():
        if "rows_after_soak_s" in facts:
            lines += ["", f"After the soak ({facts['soak_requests']:,} requests at saturation) the recorder caught "
                      f"up in {facts['rows_after_soak_s']:.1f} s; bodies dropped at the lag bound: "
                      f"{facts['bodies_dropped']:,} (their exchanges are rows all the same)."]
    serving = {name: r.extra["serving_cpu_us_per_request"] for name, r in results.items()
               if "serving_cpu_us_per_request" in r.extra}
    if serving:
        lines += ["", "## CPU per request of the serving process (closed loop, saturated)", "",
                  "| path | CPU µs / request |", "|---|---|"]
        lines += [f"| {name} | {us:.0f} |" for name, us in serving.items()]
        if "bare" in serving and "audit" in serving:
            lines.append(f"| audit - bare (what recording and the proxy's checks still cost the hot path) | "
                         f"{serving['audit'] - serving['bare']:.0f} |")
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
