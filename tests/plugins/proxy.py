"""Fixtures for the proxy (owned by the proxy work).

- `start_proxy(upstream_url, recorder=None, **settings)`: a proxy on loopback in a thread (served
  like `serve` does, with proxy.serving.guard's connection guards), stopped at teardown. Returns a
  `RunningProxy` with `.url`, `.base_url` (url + "/v1"), `.recorder`.
- `proxy`: the proxy in front of the `emulator` fixture, recording into a `ListRecorder`.
- `ListRecorder`: keeps every submitted Exchange; `wait_for(n)` blocks until n arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from proxy.serving.app import make_app
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.serving.fingerprint import Fingerprinter
from proxy.serving.guard import ProxyRunner
from tests.servers import ServerThread


class ListRecorder:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._cond = threading.Condition()

    def submit(self, exchange: Exchange) -> None:
        with self._cond:
            self.exchanges.append(exchange)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[Exchange]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.exchanges) >= count, timeout):
                raise AssertionError(f"expected {count} exchanges, got {len(self.exchanges)}")
            return list(self.exchanges)


@dataclass
class RunningProxy:
    server: ServerThread
    settings: Settings
    recorder: Any

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"


TEST_FINGERPRINT_SECRET = "test-fingerprint-secret"


@pytest.fixture
def start_proxy(tmp_path) -> Iterator[Callable[..., RunningProxy]]:
    started: list[ServerThread] = []

    def start(upstream: str, recorder: Any = None, **overrides: Any) -> RunningProxy:
        overrides.setdefault("store", str(tmp_path / "store"))
        overrides.setdefault("admin_listen", None)
        settings = Settings(upstream=upstream, **overrides).validate()
        recorder = recorder if recorder is not None else ListRecorder()
        server = ServerThread(lambda: make_app(
            settings, recorder, fingerprinter=Fingerprinter(TEST_FINGERPRINT_SECRET)), runner=ProxyRunner)
        started.append(server.start())
        return RunningProxy(server, settings, recorder)

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def proxy(request, start_proxy) -> RunningProxy:
    """The proxy in front of the emulator (clients: base_url=proxy.base_url)."""
    emulator = request.getfixturevalue("emulator")
    return start_proxy(emulator.url)
