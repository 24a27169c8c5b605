"""`recording_proxy`: openai SDK -> proxy -> emulator, through the real pipeline into a real store.
`recorded` is the same as (client, finish) for tests that need only the OpenAI client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import openai
import pytest

from analytics.store import connect
from proxy.serving.app import make_app
from proxy.config import Settings
from proxy.serving.fingerprint import Fingerprinter
from proxy.recording.local import build_recorder
from tests.servers import ServerThread


@dataclass
class RecordingProxy:
    url: str  # the proxy's origin: base_url is url + "/v1", Azure's azure_endpoint is url
    client: openai.OpenAI
    finish: Callable[[], duckdb.DuckDBPyConnection]  # stop proxy and recorder, open the store


@pytest.fixture
def recording_proxy(emulator, tmp_path):
    settings = Settings(upstream=emulator.url, store=str(tmp_path / "store"), admin_listen=None).validate()
    recorder = build_recorder(settings)
    recorder.start()
    assert recorder.ready.wait(30)
    server = ServerThread(lambda: make_app(settings, recorder, fingerprinter=Fingerprinter("t"))).start()
    client = openai.OpenAI(api_key="sk-e2e-secret", base_url=f"{server.url}/v1", max_retries=0)

    def finish():
        server.stop()
        recorder.close()
        return connect(settings.store)

    try:
        yield RecordingProxy(server.url, client, finish)
    finally:
        server.stop()
        recorder.close()


@pytest.fixture
def recorded(recording_proxy):
    return recording_proxy.client, recording_proxy.finish
