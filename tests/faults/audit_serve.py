"""A real `assistants-audit serve` process for the fault and security tests, started with extra
environment (libfaketime, an OTLP endpoint, secrets passed as variables rather than on the
command line), and the ways these tests look at what it left behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import rows

# variables of the test run that must not leak into the proxy under test
_FOREIGN_ENV = ("OTEL_", "PROMETHEUS_", "ASSISTANTS_AUDIT_", "FAKETIME", "LD_PRELOAD")

StartServe = Callable[..., ServeProcess]


@pytest.fixture
def serving(monkeypatch) -> Iterator[StartServe]:
    """`serving(upstream_url, store, *args, env={...})`: a ServeProcess with exactly this extra
    environment; killed at teardown if a test left it running."""
    started: list[ServeProcess] = []

    def start(upstream: str, store: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
        with monkeypatch.context() as m:  # only for the Popen inside ServeProcess
            for name in list(os.environ):
                if name.startswith(_FOREIGN_ENV):
                    m.delenv(name)
            for name, value in (env or {}).items():
                m.setenv(name, value)
            proc = ServeProcess(upstream, store, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.proc.kill()  # Popen.kill leaves a process that already exited alone
        proc.proc.wait()
        proc.log.close()


def store_files(store: Path) -> dict[Path, bytes]:
    """Every regular file under the store directory, as bytes."""
    return {p: p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def exchange_log(store: Path, origin: str = "client") -> list[tuple]:
    """(exchange_id, upstream_request_id, status_code, error_type, stream) of every recorded row,
    duplicates included (the raw log, not the deduplicating view)."""
    return rows(store, "SELECT exchange_id, upstream_request_id, status_code, error_type, stream "
                       f"FROM exchange_log WHERE origin = '{origin}'")
