"""The soak test: `python -m bench.soak --minutes 10`.

On loopback it starts the emulator and a real `assistants-audit serve` (one worker, a fresh
store) as subprocesses, then for N minutes drives a mixed load through the proxy:

- several SDK workers, each looping over `proxy.demo.workload.Workload` with the official `openai`
  SDK (v1 and v2 calls, polled and streamed runs, function tool calls, file uploads, vector
  stores, failing/incomplete/cancelled runs, a 404);
- one fault injector that, every `--fault-interval` seconds, does the next of: a client that
  disconnects mid-stream, a client that disconnects mid-upload, upstream errors injected with
  the emulator's `X-Emulator-Fault` header (500, 503, 429, a stream reset mid-way, a truncated
  body), an oversize upload (413), oversize headers (431), and malformed requests (bad JSON, an
  unknown parameter, an absolute-form target, conflicting Content-Length/Transfer-Encoding).

Every request carries a unique tag in its User-Agent (`... soak/<tag>`), which the proxy records
in `exchanges.user_agent`; the clients keep a ledger of what each tag got (an answer, a
deliberate abort, a refusal by the HTTP parser that is not an exchange). Every `--sample-interval`
seconds the proxy process's RSS (/proc/PID/status) and open fds (/proc/PID/fd) are sampled, and
its recorder backlog from /metrics (`assistants_audit_store_queue_depth`,
`assistants_audit_store_spooled_records`). At the end the store must catch up and every answered
request must be in `exchanges` exactly once; the figures and a verdict go to a rich table and to
`bench/soak-results.md`. Exit code 1 when the verdict fails.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bench.run import children as _children, free_port, metric_sum, process, rss_kib, wait_port

PY = sys.executable
API_KEY = "sk-soak-not-a-real-key"
MAX_BODY = 2 * 1024 * 1024  # the proxy's --max-body-size for the soak: uploads above it get 413
TAG = re.compile(r"soak/([A-Za-z0-9_-]+)")

# The verdict's criteria.
RSS_GROWTH = 0.10  # median RSS of the load's last quarter vs of its second quarter
SPIKE = 1.25  # a sample above this x the load's median RSS is counted as a spike (reported, not judged)
FD_SLACK = 5  # open fds after the load (clients gone, idle connections closed) vs before it


class _Deadline(Exception):
    """Raised from the workload's progress callback once the load's time is up."""


# --- what the clients know -----------------------------------------------------------------


@dataclass
class Ledger:
    """Every tagged request and what its client got. Thread-safe."""

    outcomes: dict[str, str] = field(default_factory=dict)  # tag -> sent|answered|aborted|unrecordable
    faults: Counter = field(default_factory=Counter)  # fault kind -> times injected
    faults_as_expected: Counter = field(default_factory=Counter)  # ... where the client saw what it should
    client_errors: Counter = field(default_factory=Counter)  # unexpected exceptions in the SDK workers
    iterations: int = 0  # complete Workload.run()s
    fault_of: dict[str, str] = field(default_factory=dict)  # tag -> the fault it was part of
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=itertools.count)
    _local: threading.local = field(default_factory=threading.local)  # .fault: what this thread injects now

    def new(self, worker: str) -> str:
        tag = f"{worker}-{next(self._ids)}"
        fault = getattr(self._local, "fault", None)
        with self._lock:
            self.outcomes[tag] = "sent"
            if fault is not None:
                self.fault_of[tag] = fault
        return tag

    def mark(self, tag: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[tag] = outcome

    def counts(self) -> Counter:
        with self._lock:
            return Counter(self.outcomes.values())

    def tags(self, *outcomes: str) -> set[str]:
        with self._lock:
            return {tag for tag, outcome in self.outcomes.items() if outcome in outcomes}

    def client(self, base_url: str, worker: str) -> Any:
        """An `openai.OpenAI` whose every request is tagged and whose every response is noted."""
        import openai

        def on_request(request: Any) -> None:
            tag = self.new(worker)
            request.extensions["soak_tag"] = tag
            request.headers["user-agent"] = f"{request.headers.get('user-agent', '')} soak/{tag}"

        def on_response(response: Any) -> None:
            tag = response.request.extensions.get("soak_tag")
            if tag is not None:
                self.mark(tag, "answered")

        http = openai.DefaultHttpx2Client(event_hooks={"request": [on_request], "response": [on_response]})
        return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=60, http_client=http)


# --- load ------------------------------------------------------------------------------------


def sdk_worker(name: str, base_url: str, ledger: Ledger, until: float) -> None:
    """Loop the scripted workload until `until` (time.monotonic), aborting between steps."""
    from proxy.demo.workload import Workload

    def check(_: str) -> None:
        if time.monotonic() >= until:
            raise _Deadline

    client = ledger.client(base_url, name)
    try:
        while time.monotonic() < until:
            workload = Workload(base_url, API_KEY, rounds=2, progress=check)
            workload.client = client
            try:
                workload.run()
                with ledger._lock:
                    ledger.iterations += 1
            except _Deadline:
                break
            except Exception as exc:  # noted, and the worker goes on: a soak outlives a bad call
                with ledger._lock:
                    ledger.client_errors[type(exc).__name__] += 1
                time.sleep(0.5)
    finally:
        client.close()


def _raw(port: int, ledger: Ledger, head: str, body: bytes = b"", *, outcome: str = "answered",
         send_body: int | None = None) -> int | None:
    """One hand-made HTTP/1.1 request on its own connection; returns the status (None if none).
    With `send_body`, only that many body bytes are sent and the connection is dropped."""
    tag = ledger.new("raw")
    head = head.replace("{tag}", tag)
    request = (head.rstrip("\r\n") + "\r\n" + f"Authorization: Bearer {API_KEY}\r\n"
               f"User-Agent: soak-raw soak/{tag}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        if send_body is not None:
            sock.sendall(request[: len(request) - len(body) + send_body])
            time.sleep(0.2)  # the proxy is streaming the upload upstream by now; then hang up
            ledger.mark(tag, "aborted")
            return None
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    ledger.mark(tag, outcome)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


class FaultInjector:
    """One client that does one fault after another, round robin."""

    def __init__(self, base_url: str, port: int, ledger: Ledger) -> None:
        self.port = port
        self.ledger = ledger
        self.client = ledger.client(base_url, "faults")
        self.assistant_id = self.client.beta.assistants.create(name="soak faults", model="gpt-4o-mini").id
        self.kinds: list[tuple[str, Callable[[], bool]]] = [
            ("client disconnect mid-stream", self.stream_disconnect),
            ("upstream 500", lambda: self.upstream_status("status=500", 500)),
            ("client disconnect mid-upload", self.upload_disconnect),
            ("upstream 429", lambda: self.upstream_status("status=429,retry_after=1", 429)),
            ("oversize upload (413)", self.oversize_upload),
            ("upstream reset mid-stream", lambda: self.broken_stream("reset_mid_stream=3")),
            ("malformed JSON body", self.malformed_json),
            ("upstream 503", lambda: self.upstream_status("status=503", 503)),
            ("unknown parameter", self.unknown_parameter),
            ("upstream truncated body", self.truncated_body),
            ("absolute-form target", self.absolute_target),
            ("oversize headers (431)", self.oversize_headers),
            ("conflicting Content-Length/Transfer-Encoding", self.conflicting_length),
        ]

    def run(self, until: float, interval: float) -> None:
        try:
            for kind, fault in itertools.cycle(self.kinds):
                if time.monotonic() >= until:
                    return
                started = time.monotonic()
                self.ledger._local.fault = kind
                try:
                    ok = fault()
                except Exception:
                    ok = False
                finally:
                    self.ledger._local.fault = None
                with self.ledger._lock:
                    self.ledger.faults[kind] += 1
                    self.ledger.faults_as_expected[kind] += int(ok)
                time.sleep(max(0.0, min(interval - (time.monotonic() - started), until - time.monotonic())))
        finally:
            self.client.close()

    def _thread(self, text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text}]}

    def stream_disconnect(self) -> bool:
        events = 0
        with self.client.beta.threads.create_and_run(assistant_id=self.assistant_id, stream=True,
                                                     thread=self._thread("Take your time [slow]")) as stream:
            for _ in stream:
                events += 1
                if events == 2:
                    break  # leaving the `with` closes the connection mid-stream
        return events == 2

    def upload_disconnect(self) -> bool:
        boundary = "soakboundary"
        preamble = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
                    "Content-Type: text/plain\r\n\r\n").encode()
        body = preamble + b"x" * 1_000_000
        head = (f"POST /v1/files HTTP/1.1\r\nHost: soak\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}")
        _raw(self.port, self.ledger, head, body, send_body=200_000)
        return True

    def upstream_status(self, fault: str, status: int) -> bool:
        import openai

        try:
            self.client.beta.assistants.list(limit=5, extra_headers={"X-Emulator-Fault": fault})
        except openai.APIStatusError as exc:
            return exc.status_code == status
        return False

    def broken_stream(self, fault: str) -> bool:
        import openai

        try:
            with self.client.beta.threads.create_and_run(assistant_id=self.assistant_id, stream=True,
                                                         thread=self._thread("Hello"),
                                                         extra_headers={"X-Emulator-Fault": fault}) as stream:
                for _ in stream:
                    pass
        except openai.APIConnectionError:
            return True
        return False

    def truncated_body(self) -> bool:
        import openai

        try:
            self.client.beta.assistants.retrieve(self.assistant_id, extra_headers={"X-Emulator-Fault": "truncate"})
        except openai.APIConnectionError:
            return True
        return False

    def oversize_upload(self) -> bool:
        import openai

        try:
            self.client.files.create(file=("too-big.txt", io.BytesIO(b"x" * (MAX_BODY + 65536))), purpose="assistants")
        except openai.APIStatusError as exc:
            return exc.status_code == 413
        return False

    def unknown_parameter(self) -> bool:
        import openai

        try:
            self.client.beta.assistants.create(model="gpt-4o-mini", extra_body={"soak_bogus_field": 1})
        except openai.BadRequestError:
            return True
        return False

    def malformed_json(self) -> bool:
        body = b'{"messages": [{"role": "user", "content": '
        head = ("POST /v1/threads HTTP/1.1\r\nHost: soak\r\nOpenAI-Beta: assistants=v2\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}")
        return _raw(self.port, self.ledger, head, body) == 400

    def absolute_target(self) -> bool:
        # loopback port 1: if the proxy ever followed it, nothing would be there
        head = "GET http://127.0.0.1:1/v1/models HTTP/1.1\r\nHost: 127.0.0.1:1"
        return _raw(self.port, self.ledger, head) == 400

    def oversize_headers(self) -> bool:
        pads = "".join(f"X-Soak-Pad-{i}: {'p' * 30_000}\r\n" for i in range(3))  # 90 KB > the 64 KiB limit
        head = f"GET /v1/models HTTP/1.1\r\nHost: soak\r\n{pads}"
        return _raw(self.port, self.ledger, head) == 431

    def conflicting_length(self) -> bool:
        # refused by the HTTP parser before the proxy's handler: an answer, but not an exchange
        head = ("POST /v1/threads HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                "Content-Length: 5\r\nTransfer-Encoding: chunked")
        return _raw(self.port, self.ledger, head, b"0\r\n\r\n", outcome="unrecordable") == 400


# --- sampling --------------------------------------------------------------------------------


def open_fds(pid: int) -> int:
    """Open fds of the proxy: its supervisor, workers and recorder together."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            total += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            return -1
    return total


@dataclass
class Sampler:
    pid: int
    admin_port: int
    ledger: Ledger
    interval: float
    samples: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "idle"
    t0: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any]:
        metrics = {}
        for key, name in (("queue", "assistants_audit_store_queue_depth"),
                          ("backlog", "assistants_audit_store_spooled_records"),
                          ("lost_metric", "assistants_audit_store_lost_records_total")):
            try:
                metrics[key] = int(metric_sum(self.admin_port, name))
            except OSError:
                metrics[key] = None
        row = {"t": round(time.monotonic() - self.t0, 1), "at": round(time.time(), 1), "phase": self.phase,
               "rss_mib": round(rss_kib(self.pid) / 1024, 1), "fds": open_fds(self.pid), **metrics,
               "requests": sum(self.ledger.counts().values())}
        self.samples.append(row)
        return row

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="soak-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --- the store -------------------------------------------------------------------------------


def recorded(store: Path) -> tuple[dict[str, int], dict[str, str], int]:
    """Per tag: how many distinct exchanges the store has, and how one was recorded ("status
    error_type"); plus the number of client exchanges without a tag (should be 0)."""
    import duckdb

    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT regexp_extract(user_agent, 'soak/([A-Za-z0-9_-]+)', 1) AS tag, count(DISTINCT exchange_id), "
            "any_value(concat_ws(' ', coalesce(CAST(status_code AS VARCHAR), 'no-status'), error_type)) "
            "FROM exchanges WHERE origin = 'client' GROUP BY 1").fetchall()
    finally:
        con.close()
    counts = {tag: n for tag, n, _ in rows if tag}
    how = {tag: text for tag, _, text in rows if tag}
    untagged = sum(n for tag, n, _ in rows if not tag)
    return counts, how, untagged


def catch_up(store: Path, sampler: Sampler, expected: set[str], timeout: float,
             log: Callable[[str], None]) -> tuple[dict[str, int], dict[str, str], int, float]:
    """Wait until the recorder's backlog is 0 and every expected tag is in the store (or the
    count stops moving for a while, or time is up). Returns what the store holds and the wait."""
    started = time.monotonic()
    deadline = started + timeout
    counts: dict[str, int] = {}
    how: dict[str, str] = {}
    untagged = 0
    last_seen, stable_since = -1, time.monotonic()
    while True:
        row = sampler.sample()
        try:
            counts, how, untagged = recorded(store)
        except Exception as exc:  # audit.duckdb being rewritten this instant
            log(f"store not readable yet: {str(exc).splitlines()[0]}")
        present = sum(1 for tag in expected if tag in counts)
        if present != last_seen:
            last_seen, stable_since = present, time.monotonic()
        drained = row["backlog"] == 0 and row["queue"] == 0
        if drained and present == len(expected):
            break
        if time.monotonic() >= deadline or (drained and time.monotonic() - stable_since > 15):
            break
        time.sleep(1.0)
    return counts, how, untagged, time.monotonic() - started


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Options:
    seconds: float
    workers: int
    fault_interval: float
    sample_interval: float
    time_scale: float
    keep: bool


def soak(opts: Options, console: Console) -> dict[str, Any]:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK flags every Assistants call
    work = Path(tempfile.mkdtemp(prefix="aa-soak-"))
    store = work / "store"
    emu_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    ledger = Ledger()
    log = console.log
    emulator_args = [PY, "-m", "proxy.cli", "emulator", "--listen", f"127.0.0.1:{emu_port}", "--seed", "0",
                     "--time-scale", str(opts.time_scale), "--poll-after-ms", "50"]
    proxy_args = [PY, "-m", "proxy.cli", "serve", "--listen", f"127.0.0.1:{proxy_port}",
                  "--upstream", f"http://127.0.0.1:{emu_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
                  "--store", str(store), "--max-body-size", f"{MAX_BODY // (1024 * 1024)}MiB",
                  "--grace-period", "15", "--log-level", "warning"]
    with process(emulator_args, work / "emulator.log", emu_port):
        with process(proxy_args, work / "proxy.log", proxy_port) as proxy:
            wait_port(admin_port)
            base_url = f"http://127.0.0.1:{proxy_port}/v1"
            sampler = Sampler(proxy.pid, admin_port, ledger, opts.sample_interval)
            time.sleep(1.0)  # the recorder's start-up (store, views) is done
            sampler.phase = "load"
            sampler.start()
            baseline = sampler.samples[0]
            log(f"proxy pid {proxy.pid}: RSS {baseline['rss_mib']} MiB, {baseline['fds']} fds; "
                f"load for {opts.seconds:.0f} s with {opts.workers} SDK workers + 1 fault injector")
            load_started = time.monotonic()
            until = load_started + opts.seconds
            threads = [threading.Thread(target=sdk_worker, args=(f"w{i}", base_url, ledger, until), name=f"sdk-w{i}")
                       for i in range(opts.workers)]
            injector = FaultInjector(base_url, proxy_port, ledger)
            threads.append(threading.Thread(target=injector.run, args=(until, opts.fault_interval), name="faults"))
            for thread in threads:
                thread.start()
            next_report = load_started + 60
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(1.0)
                if time.monotonic() >= next_report and sampler.samples:
                    s = sampler.samples[-1]
                    log(f"t={s['t']:.0f}s: {s['requests']:,} requests, RSS {s['rss_mib']} MiB, {s['fds']} fds, "
                        f"backlog {s['backlog']}")
                    next_report += 60
            load_seconds = time.monotonic() - load_started
            load_samples = [s for s in sampler.samples if s["phase"] == "load"]
            sampler.phase = "drain"
            log(f"load done after {load_seconds:.0f} s; waiting for the store to catch up")
            answered = ledger.tags("answered")
            aborted = ledger.tags("aborted")
            counts, how, untagged, catch_up_s = catch_up(store, sampler, answered | aborted, 120, log)
            # idle upstream connections close after aiohttp's keep-alive (15 s, checked as often): wait
            # for the fds to reach the baseline, or 40 s, and judge what is left
            fd_deadline = time.monotonic() + 40
            while open_fds(proxy.pid) > baseline["fds"] and time.monotonic() < fd_deadline:
                time.sleep(1.0)
            sampler.stop()
            sampler.phase = "after"
            final = sampler.sample()
            os.killpg(proxy.pid, signal.SIGTERM)
            try:
                proxy_exit = proxy.wait(60)
            except Exception:
                proxy_exit = None
    ledger_counts = ledger.counts()
    figures = {
        "seconds": round(load_seconds, 1), "workers": opts.workers, "time_scale": opts.time_scale,
        "samples": sampler.samples, "baseline": baseline, "final": final,
        "requests": sum(ledger_counts.values()), "answered": len(answered), "aborted": len(aborted),
        "unrecordable": ledger_counts.get("unrecordable", 0),
        "unanswered": ledger_counts.get("sent", 0),
        "lost": sorted(tag for tag in answered if tag not in counts),
        "duplicated": sorted(tag for tag, n in counts.items() if n > 1),
        "aborted_recorded": sum(1 for tag in aborted if tag in counts),
        "faults_recorded_as": _recorded_as(ledger.fault_of, how),
        "unrecordable_recorded": sum(1 for tag in ledger.tags("unrecordable") if tag in counts),
        "untagged_client_exchanges": untagged, "catch_up_seconds": round(catch_up_s, 1),
        "faults": dict(ledger.faults), "faults_as_expected": dict(ledger.faults_as_expected),
        "client_errors": dict(ledger.client_errors), "iterations": ledger.iterations,
        "proxy_exit_code": proxy_exit, "load_samples": len(load_samples),
    }
    figures.update(_series(load_samples, sampler.samples, baseline, final))
    if opts.keep:
        log(f"kept {work} (store, emulator.log, proxy.log)")
        figures["work_dir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def _recorded_as(fault_of: dict[str, str], how: dict[str, str]) -> dict[str, dict[str, int]]:
    """fault kind -> {"status error_type" as recorded: count} over the requests of that fault."""
    out: dict[str, Counter] = {}
    for tag, kind in fault_of.items():
        out.setdefault(kind, Counter())[how.get(tag, "not recorded")] += 1
    return {kind: dict(counter.most_common()) for kind, counter in out.items()}


def _series(load: list[dict[str, Any]], every: list[dict[str, Any]], baseline: dict[str, Any],
            final: dict[str, Any]) -> dict[str, Any]:
    """first/last/max of each sampled figure; for the RSS criterion the median of the load's second
    and fourth quarters (medians, so short spikes such as a store compaction do not decide it),
    and the spikes: load samples above SPIKE x the load's median."""
    out: dict[str, Any] = {}
    for key in ("rss_mib", "fds", "backlog", "queue"):
        values = [s[key] for s in every if s.get(key) is not None]
        out[key] = {"first": baseline.get(key), "last": final.get(key), "max": max(values) if values else None}
    if load:
        start, span = load[0]["t"], max(load[-1]["t"] - load[0]["t"], 1e-9)

        def quarter(q: int) -> list[float]:
            return [s["rss_mib"] for s in load if (q - 1) / 4 <= (s["t"] - start) / span <= q / 4]

        median = statistics.median(s["rss_mib"] for s in load)
        out["rss_mib"].update(mid_load=statistics.median(quarter(2) or quarter(1) or [median]),
                              end_load=statistics.median(quarter(4) or [load[-1]["rss_mib"]]),
                              load_median=median, spikes=sum(1 for s in load if s["rss_mib"] > SPIKE * median))
        out["fds"].update(max_load=max(s["fds"] for s in load))
    return out


def verdict(f: dict[str, Any]) -> list[tuple[str, bool, str]]:
    rss, fds, backlog = f["rss_mib"], f["fds"], f["backlog"]
    checks: list[tuple[str, bool, str]] = []
    mid, end = rss.get("mid_load"), rss.get("end_load")
    growth = (end - mid) / mid if mid and end is not None else None
    checks.append((f"memory flat: RSS growth over the second half of the load < {RSS_GROWTH:.0%} "
                   "(median of its last quarter vs of its second quarter)",
                   growth is not None and growth < RSS_GROWTH,
                   f"{mid} -> {end} MiB ({growth:+.1%})" if growth is not None else "no samples"))
    median = rss.get("load_median")
    checks.append((f"memory returns: after the load, RSS within {RSS_GROWTH:.0%} of the load's median",
                   median is not None and rss["last"] is not None and rss["last"] <= median * (1 + RSS_GROWTH),
                   f"median {median} MiB, after {rss['last']} MiB"))
    checks.append((f"fds flat: after the load, open fds <= baseline + {FD_SLACK}",
                   fds["last"] is not None and 0 <= fds["last"] <= fds["first"] + FD_SLACK,
                   f"baseline {fds['first']}, after {fds['last']}, max {fds['max']}"))
    checks.append(("backlog drains: recorder queue and spooled records back to 0",
                   backlog["last"] == 0 and f["queue"]["last"] == 0,
                   f"max {backlog['max']}, last {backlog['last']}"))
    checks.append(("zero records lost: every answered request is in `exchanges`",
                   not f["lost"] and f["answered"] > 0, f"{len(f['lost'])} of {f['answered']:,} missing"))
    checks.append(("no duplicates: every request is in `exchanges` at most once",
                   not f["duplicated"], f"{len(f['duplicated'])} duplicated"))
    checks.append(("mid-upload disconnects (no answer) are recorded too",
                   f["aborted_recorded"] == f["aborted"], f"{f['aborted_recorded']} of {f['aborted']}"))
    checks.append(("the proxy's lost-records counter stays 0",
                   not f["final"].get("lost_metric"), f"{f['final'].get('lost_metric')}"))
    checks.append(("every fault was injected and behaved as expected",
                   bool(f["faults"]) and f["faults"] == f["faults_as_expected"],
                   f"{sum(f['faults_as_expected'].values())} of {sum(f['faults'].values())}"))
    checks.append(("the SDK workload completed at least one full iteration", f["iterations"] > 0,
                   f"{f['iterations']} iterations"))
    checks.append(("the proxy exits 0 on SIGTERM afterwards", f["proxy_exit_code"] == 0,
                   f"exit {f['proxy_exit_code']}"))
    return checks


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def write_report(f: dict[str, Any], checks: list[tuple[str, bool, str]], command: str, out: Path,
                 console: Console) -> None:
    rows = [("RSS (MiB)", f["rss_mib"]), ("open fds", f["fds"]), ("recorder backlog (spooled records)", f["backlog"]),
            ("recorder queue depth", f["queue"])]
    table = Table(title=f"soak: {f['seconds']:.0f} s, {f['requests']:,} requests")
    for column in ("figure", "first", "last", "max"):
        table.add_column(column, justify="right" if column != "figure" else "left")
    for name, series in rows:
        table.add_row(name, _fmt(series["first"]), _fmt(series["last"]), _fmt(series["max"]))
    requests = [("requests sent", f["requests"]), ("answered", f["answered"]),
                ("aborted by the client (on purpose)", f["aborted"]),
                ("refused by the HTTP parser (not an exchange)", f["unrecordable"]),
                ("faults injected", sum(f["faults"].values())), ("records lost", len(f["lost"])),
                ("records duplicated", len(f["duplicated"]))]
    for name, value in requests:
        table.add_row(name, "", _fmt(value), "")
    console.print(table)
    verdict_table = Table(title="verdict")
    for column in ("criterion", "result", "figure"):
        verdict_table.add_column(column)
    for text, passed, figure in checks:
        verdict_table.add_row(text, "[green]PASS[/]" if passed else "[red]FAIL[/]", figure)
    console.print(verdict_table)

    passed = all(ok for _, ok, _ in checks)
    lines = [
        "# Soak results", "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} cores shared by everything (emulator, proxy, clients and other work on the machine).", "",
        f"Setup: the emulator (`--time-scale {f['time_scale']:g}`) and `assistants-audit serve` (1 worker, a fresh "
        f"store, `--max-body-size 2MiB`) as subprocesses on loopback; {f['workers']} SDK workers looping "
        "`proxy.demo.workload.Workload` (Assistants v1 and v2 and the Responses API, polled and streamed, "
        "tool calls, uploads, vector stores) plus "
        "one fault injector; the proxy's RSS, open fds and recorder backlog sampled every few seconds.", "",
        f"**Verdict: {'PASS' if passed else 'FAIL'}**", "",
        "| figure | first | last | max |", "|---|---|---|---|",
    ]
    lines += [f"| {name} | {_fmt(s['first'])} | {_fmt(s['last'])} | {_fmt(s['max'])} |" for name, s in rows]
    lines += ["", "\"first\" is before the load, \"last\" after it (store caught up, clients gone, idle connections "
              f"closed). Median RSS over the load's second quarter {_fmt(f['rss_mib'].get('mid_load'))} MiB, over "
              f"its last quarter {_fmt(f['rss_mib'].get('end_load'))} MiB, over the whole load "
              f"{_fmt(f['rss_mib'].get('load_median'))} MiB; {_fmt(f['rss_mib'].get('spikes'))} samples above "
              f"{SPIKE} x that median (max {_fmt(f['rss_mib']['max'])} MiB). Open fds at most "
              f"{_fmt(f['fds'].get('max_load'))} during the load.", "", "| requests | count |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in requests]
    lines += [f"| client exchanges in the store without a tag | {_fmt(f['untagged_client_exchanges'])} |",
              f"| complete workload iterations | {_fmt(f['iterations'])} |",
              f"| store caught up in (s) | {f['catch_up_seconds']} |", ""]
    if f["client_errors"]:
        lines += ["Unexpected SDK errors in the workload (the worker went on): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(f["client_errors"].items())), ""]
    lines += ["## Faults injected", "", "| fault | injected | client saw the expected outcome | recorded as (status "
              "error_type: requests) |", "|---|---|---|---|"]
    for kind, n in f["faults"].items():
        seen = ", ".join(f"{k}: {v}" for k, v in f["faults_recorded_as"].get(kind, {}).items())
        lines.append(f"| {kind} | {n} | {f['faults_as_expected'].get(kind, 0)} | {seen} |")
    lines += ["", "## Verdict", "", "| criterion | result | figure |", "|---|---|---|"]
    lines += [f"| {text} | {'PASS' if ok else 'FAIL'} | {figure} |" for text, ok, figure in checks]
    step = max(1, len(f["samples"]) // 40)
    shown = f["samples"][::step] + ([f["samples"][-1]] if (len(f["samples"]) - 1) % step else [])
    lines += ["", "## Samples", "", "| t (s) | phase | RSS (MiB) | fds | queue | backlog | requests |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {s['t']} | {s['phase']} | {s['rss_mib']} | {s['fds']} | {_fmt(s['queue'])} | {_fmt(s['backlog'])} | "
              f"{s['requests']:,} |" for s in shown]
    out.write_text("\n".join(lines) + "\n")
    console.print(f"written to {out}")


@click.command("soak")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="How long the load runs.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="How long the load runs, in seconds (overrides --minutes; the smoke test uses 20).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Concurrent SDK workers looping the scripted workload (plus one fault injector).")
@click.option("--fault-interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between two injected faults.")
@click.option("--sample-interval", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Seconds between two samples of the proxy's RSS, open fds and recorder backlog.")
@click.option("--time-scale", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="The emulator's --time-scale (emulated seconds per real second).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(__file__).with_name("soak-results.md"), show_default="bench/soak-results.md",
              help="Where to write the results (Markdown).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write every figure and sample as JSON to this file.")
@click.option("--keep", is_flag=True, help="Keep the work directory (store, emulator and proxy logs).")
def main(minutes: float, seconds: float | None, workers: int, fault_interval: float, sample_interval: float,
         time_scale: float, out: Path, json_out: Path | None, keep: bool) -> None:
    """Soak the proxy: N minutes of mixed SDK traffic with faults; memory, fds and backlog must
    stay flat and no answered request may be missing from the store. Exit 1 if the verdict fails.

    \b
    Example:
      python -m bench.soak --minutes 10            # writes bench/soak-results.md
      python -m bench.soak --seconds 20 --out /tmp/soak.md --json /tmp/soak.json
    """
    duration = seconds if seconds is not None else minutes * 60
    command = "python -m bench.soak " + (f"--seconds {seconds:g}" if seconds is not None else f"--minutes {minutes:g}")
    console = Console()
    opts = Options(duration, workers, fault_interval, sample_interval, time_scale, keep)
    try:
        figures = soak(opts, console)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    checks = verdict(figures)
    figures["verdict"] = [{"criterion": text, "pass": ok, "figure": figure} for text, ok, figure in checks]
    write_report(figures, checks, command, out, console)
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=1, default=str))
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main(prog_name="python -m bench.soak")
