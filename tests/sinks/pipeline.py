"""The full recording pipeline in process, for sink tests driven by the real openai SDK: a proxy in
front of the emulator whose recorder feeds the store, the metrics sink (a fresh registry) and the
tracing sink (spans kept in memory)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import openai
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from analytics.store import connect
from proxy.config import Settings
from proxy.recording.local import build_recorder
from proxy.serving.app import make_app
from proxy.serving.fingerprint import Fingerprinter
from tests.servers import ServerThread

Finish = Callable[[], tuple[CollectorRegistry, tuple[ReadableSpan, ...], duckdb.DuckDBPyConnection]]


@contextmanager
def recorded_pipeline(upstream: str, store: str, headers: dict[str, str] | None = None,
                      **settings: Any) -> Iterator[tuple[openai.OpenAI, Finish]]:
    """Yields (client, finish); finish() stops proxy and recorder (everything answered is recorded
    by then) and returns (registry, finished spans, store connection)."""
    settings_ = Settings(upstream=upstream, store=store, admin_listen=None, **settings).validate()
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = build_recorder(settings_, registry=registry, tracer_provider=provider)
    recorder.start()
    assert recorder.ready.wait(30)
    server = ServerThread(lambda: make_app(settings_, recorder, fingerprinter=Fingerprinter("t"),
                                           tracer_provider=provider)).start()
    client = openai.OpenAI(api_key="sk-test", base_url=f"{server.url}/v1", max_retries=0, default_headers=headers)

    def finish():
        server.stop()
        recorder.close()
        return registry, exporter.get_finished_spans(), connect(settings_.store)

    try:
        yield client, finish
    finally:
        server.stop()
        recorder.close()
