"""`audit`: the unmodified openai SDK -> the proxy -> an upstream (the emulator by default),
through the real recording pipeline into a real store. `audit.start(...)` starts one;
`extra_sinks` observe the exchanges next to the standard ones;
`finish()` stops proxy and recorder (everything answered is stored by then) and opens the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import openai
import pytest

from analytics.store import connect
from proxy.config import Settings
from proxy.recording.local import build_recorder
from proxy.serving.app import make_app
from proxy.serving.fingerprint import Fingerprinter
from tests.servers import ServerThread

API_KEY = "sk-responses-e2e-secret"
AZURE_VERSION = "2025-04-01-preview"


@dataclass
class Audited:
    url: str  # the proxy's origin
    finish: Callable[[], duckdb.DuckDBPyConnection]

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """The SDK as a user of OpenAI points it at the proxy (base_url + /v1)."""
        kwargs.setdefault("base_url", f"{self.url}/v1")
        return openai.OpenAI(api_key=API_KEY, max_retries=0, **kwargs)

    def azure(self) -> openai.AzureOpenAI:
        """Azure OpenAI's classic form: /openai/responses?api-version=..."""
        return openai.AzureOpenAI(api_key=API_KEY, azure_endpoint=self.url, api_version=AZURE_VERSION, max_retries=0)

    def azure_v1(self) -> openai.OpenAI:
        """Azure OpenAI's v1 form: the plain client with base_url .../openai/v1."""
        return self.client(base_url=f"{self.url}/openai/v1")


@pytest.fixture
def audit(request, tmp_path) -> Iterator[Any]:
    started: list[tuple[ServerThread, Any]] = []

    class Start:
        def start(self, upstream: str | None = None, extra_sinks: tuple = (), **overrides: Any) -> Audited:
            upstream = upstream or request.getfixturevalue("emulator").url
            settings = Settings(upstream=upstream, store=str(tmp_path / f"store{len(started)}"), admin_listen=None,
                                **overrides).validate()
            recorder = build_recorder(settings, extra_sinks=extra_sinks)
            recorder.start()
            assert recorder.ready.wait(30)
            server = ServerThread(lambda: make_app(settings, recorder, fingerprinter=Fingerprinter("t"))).start()
            started.append((server, recorder))

            def finish() -> duckdb.DuckDBPyConnection:
                server.stop()
                recorder.close()
                return connect(settings.store)

            return Audited(server.url, finish)

    yield Start()
    for server, recorder in reversed(started):
        server.stop()
        recorder.close()
