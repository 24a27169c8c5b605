"""A real `prometheus` binary on a free loopback port, scraping one target every second, queried
through its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.dashboards.helpers import require_binary, stop_process
from tests.servers import free_port


class PrometheusServer:
    def __init__(
        self, target: str, workdir: Path, metrics_path: str = "/metrics", rule_files: tuple[Path, ...] = ()
    ) -> None:
        self.binary = require_binary("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path) for path in rule_files],
                    "scrape_configs": [
                        {
                            "job_name": "assistants-audit",
                            "metrics_path": metrics_path,
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        self._config = config
        self._process: subprocess.Popen | None = None

    def start(self) -> "PrometheusServer":
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self._config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._ready(), 30, "prometheus did not become ready")
        return self

    def stop(self) -> None:
        stop_process(self._process)

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _wait(self, predicate, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"{message}; log: {self.log_path.read_text()[-2000:]}")

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error in the body
            return json.loads(exc.read())

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def scrapes(self) -> int:
        """Successful scrapes of the target so far (from the synthetic scrape_samples_scraped series)."""
        result = self.query('count_over_time(up{job="assistants-audit"}[10m])')
        up = self.query('up{job="assistants-audit"}')
        if up.get("status") != "success" or not up["data"]["result"] or up["data"]["result"][0]["value"][1] != "1":
            return 0
        return int(float(result["data"]["result"][0]["value"][1])) if result["data"]["result"] else 0

    def wait_for_scrapes(self, n: int, timeout: float = 30) -> None:
        self._wait(lambda: self.scrapes() >= n, timeout, f"target not scraped {n} times")

    def label_values(self, label: str, metric: str) -> list[str]:
        """What Grafana asks for a `label_values(metric, label)` template variable."""
        return self.api(f"label/{label}/values", **{"match[]": metric}).get("data", [])

    def firing_alerts(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.api("alerts")["data"]["alerts"] if a["state"] == "firing"}

    def metric_names_with_metadata(self) -> set[str]:
        """Metric families the target declared (# TYPE), including ones with no samples yet."""
        data = self.api("targets/metadata", match_target='{job="assistants-audit"}')
        return {entry["metric"] for entry in data.get("data", [])}


def check_queries(prom: PrometheusServer, queries: list[tuple[str, str, str]]) -> list[str]:
    """Run each (dashboard, panel, expr); return one line per expression that errs or is empty."""
    problems = []
    for board, title, expr in queries:
        answer = prom.query(expr)
        if answer.get("status") != "success":
            problems.append(f"{board} / {title}: {answer.get('error')}: {expr}")
        elif not answer["data"]["result"]:
            problems.append(f"{board} / {title}: no series: {expr}")
    return problems
