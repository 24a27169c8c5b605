"""Run `assistants-audit serve` as a real process on loopback for observability tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_HEADERS = {"Authorization": "Bearer sk-test", "OpenAI-Beta": "assistants=v2"}


def http_get(url: str, headers: dict | None = None) -> bytes:
    """One request on a fresh connection (so SO_REUSEPORT can pick any worker)."""
    req = urllib.request.Request(url, headers={"Connection": "close", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(http_get(url).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    admin_url: str


@contextlib.contextmanager
def serve(upstream: str, store: str, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    listen, admin = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_", "ASSISTANTS_AUDIT_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--upstream", upstream, "--listen", f"127.0.0.1:{listen}",
         "--admin-listen", f"127.0.0.1:{admin}", "--store", store, *args],
        cwd=ROOT, env={**base_env, "PYTHONPATH": ROOT, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    served = Served(proc, f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http_get(f"{served.admin_url}/healthz")
                http_get(f"{served.url}/v1/assistants", API_HEADERS)
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()) from None
                if time.monotonic() > deadline:
                    raise AssertionError("serve did not start") from None
                time.sleep(0.2)
        yield served
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
