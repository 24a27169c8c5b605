"""Every PromQL expression of every panel, run through a real Prometheus' HTTP API: each must be
valid and return at least one series.

Two targets: a synthetic exposition of the contracted metric names (checks the queries against
the contract, independent of the proxy), and a real `assistants-audit serve` in front of the
emulator driven with the openai SDK (checks them against what the proxy actually exposes)."""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web

from tests.dashboards import contract
from tests.dashboards.helpers import ROOT, committed_dashboards, panel_queries, stop_process, variable_queries
from tests.dashboards.promserver import PrometheusServer, check_queries
from tests.servers import ServerThread, free_port

# The Assistants API itself is deprecated in the openai SDK; that is what this proxy is for.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FALLBACK = re.compile(r"\s+or\s+vector\(0\)\s*$")

# Panels whose events the test workload cannot cause on a healthy proxy: their queries may answer
# with the `or vector(0)` fallback only. Everything else must be backed by real series.
EVENTS_NOT_PRODUCED = {"Audit store errors and lost records", "Enrichment calls by outcome"}


def family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def metric_families(expr: str) -> set[str]:
    return {family(n) for n in re.findall(r"\b((?:assistants_audit|gen_ai_client)_[a-z_]+)", expr)}


def test_every_panel_query_against_the_metric_contract(tmp_path: Path) -> None:
    ticks = itertools.count(1)

    def make_target() -> web.Application:
        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text=contract.exposition(next(ticks)), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        return app

    queries = panel_queries(committed_dashboards())
    assert len(queries) >= 40
    target = ServerThread(make_target).start()
    try:
        with PrometheusServer(f"127.0.0.1:{target.port}", tmp_path) as prom:
            prom.wait_for_scrapes(3)
            assert check_queries(prom, queries) == []
            # The harness can fail: a misspelt metric and a PromQL syntax error are both reported.
            bad = check_queries(prom, [("x", "typo", "sum(rate(assistants_audit_exchangez_total[1m]))"),
                                       ("x", "syntax", "sum(rate(assistants_audit_exchanges_total[1m])")])
            assert [p.split(":")[0] for p in bad] == ["x / typo", "x / syntax"]
            assert "no series" in bad[0] and "parse error" in bad[1]
    finally:
        target.stop()


def _require_sink() -> None:
    # Only a missing module skips; a metrics sink that exists but fails to import fails the test.
    try:
        found = importlib.util.find_spec("proxy.sinks.metrics") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        pytest.skip("metrics sink not built yet")


class ServeProcess:
    """`assistants-audit serve` as a subprocess, configured through its environment variables."""

    def __init__(self, upstream: str, store: Path, log_path: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.admin = f"127.0.0.1:{self.admin_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANTS_AUDIT_", "OTEL_"))}
        env.update(
            ASSISTANTS_AUDIT_UPSTREAM=upstream,
            ASSISTANTS_AUDIT_LISTEN=f"127.0.0.1:{self.port}",
            ASSISTANTS_AUDIT_ADMIN_LISTEN=self.admin,
            ASSISTANTS_AUDIT_STORE=str(store),
            ASSISTANTS_AUDIT_WORKERS="1",
            ASSISTANTS_AUDIT_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
        )
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve"], env=env, cwd=store.parent,
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def test_every_panel_query_against_real_proxy_traffic(emulator, tmp_path: Path) -> None:
    _require_sink()
    from tests.dashboards.traffic import drive

    queries = panel_queries(committed_dashboards())
    serve = ServeProcess(emulator.url, tmp_path / "store", tmp_path / "serve.log")
    try:
        serve.wait_ready()
        with _prometheus(serve.admin, tmp_path) as prom:
            prom.wait_for_scrapes(1)
            done = drive(serve.base_url)
            assert done == {"runs": 5, "errors": 3}

            # Recording is asynchronous: wait until the metrics show the workload's last kinds of
            # traffic, then two more scrapes so every rate() window holds two samples.
            for sentinel in (
                'assistants_audit_runs_total{status="failed"}',
                'assistants_audit_requests_by_version_total{beta_header="assistants=v1"}',
                # the Azure v1 client: no beta header, api_version from its api-version
                'assistants_audit_requests_by_version_total{beta_header="none", api_version="v1"}',
                'assistants_audit_upstream_errors_total{kind="http_429"}',
            ):
                _wait_for_series(prom, sentinel, serve)
            scraped = prom.scrapes()
            prom.wait_for_scrapes(scraped + 2)

            problems = check_queries(prom, queries)
            assert problems == [], "\n".join(problems)

            # Without the zero fallback, each query must still find real series (so the panels
            # show the workload, not a default), except for events a healthy run cannot cause.
            real = [(b, t, FALLBACK.sub("", e)) for b, t, e in queries if t not in EVENTS_NOT_PRODUCED]
            problems = check_queries(prom, real)
            assert problems == [], "\n".join(problems)

            # Every metric family a panel uses is declared by the proxy, even those without samples.
            declared = {family(n) for n in prom.metric_names_with_metadata()}
            used = set().union(*(metric_families(e) for _, _, e in queries))
            assert used - declared == set()

            # The template variables offer the workload's operations and models.
            variables = variable_queries(committed_dashboards())
            assert variables == {("assistants_audit_exchanges_total", "operation"), ("assistants_audit_tokens_total", "model")}
            assert "runs.create" in prom.label_values("operation", "assistants_audit_exchanges_total")
            assert prom.label_values("model", "assistants_audit_tokens_total") == ["gpt-4o"]

            # The shipped rules work on the real metrics: the recording rules have values and the
            # v1 requests of the workload fire the v1 alert (it has no `for`).
            for record in ("assistants_audit:failure_ratio:rate5m", "assistants_audit:rate_limited_ratio:rate5m",
                           "assistants_audit:cost_usd_per_day:rate1h"):
                assert prom.query(record)["data"]["result"], record
            _wait(lambda: "AssistantsAuditV1Traffic" in prom.firing_alerts(), "the v1 alert to fire", serve)
            assert "AssistantsAuditHighFailureRatio" not in prom.firing_alerts()
    finally:
        serve.stop()


def _prometheus(target: str, tmp_path: Path) -> PrometheusServer:
    workdir = tmp_path / "prom"
    workdir.mkdir()
    return PrometheusServer(target, workdir, rule_files=(ROOT / "prometheus" / "alerts.yml",))


def _wait_for_series(prom: PrometheusServer, expr: str, serve: ServeProcess) -> None:
    def found() -> bool:
        answer = prom.query(expr)
        return answer.get("status") == "success" and bool(answer["data"]["result"])

    _wait(found, expr, serve)


def _wait(predicate, what: str, serve: ServeProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout}s for {what}; serve log: {serve.log_path.read_text()[-3000:]}")
