"""Both halves of recording in one process: a journal appender and the recorder loop on a thread.

`serve` never uses this: there the workers only append and the recorder is a process of its
own (`proxy.recording.process`). It is for what runs a proxy in-process around a store: the
test suite's in-process proxies, the benchmark's stage breakdown. It goes through the same
journal, the same tail, the same sinks, so what it records is what `serve` records.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from analytics.prices import PriceSink
from proxy.assistants.parse import parse as assistants_parse
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.recording.dispatch import Sink
from proxy.recording.recorder import JournalRecorder, Parse, prepare_store
from proxy.serving.appender import JournalAppender
from proxy.sinks.metrics import MetricsSink
from proxy.sinks.otel import OtelSink


class LocalRecorder:
    """Implements proxy.serving.exchange.Recorder. start() before the first submit, close() at the end."""

    def __init__(self, settings: Settings, sinks: Sequence[Sink] = (), parse: Parse | None = None,
                 *, tick_interval: float = 1.0, **recorder_options: Any) -> None:
        self.settings = settings
        self.appender = JournalAppender(settings.store, fsync=settings.journal_fsync,
                                        max_lag_bytes=settings.max_recorder_lag)
        self.recorder = JournalRecorder(settings.store, sinks, parse or assistants_parse,
                                        capture_content=settings.capture_content, **recorder_options)
        self.tick_interval = tick_interval
        self._lock = threading.Lock()  # submit (event loop) and tick (timer thread) share the writer
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def ready(self) -> threading.Event:
        return self.recorder.ready

    def start(self) -> "LocalRecorder":
        prepare_store(self.recorder.store_dir)
        self.appender.open()
        self.recorder.start()
        self._ticker = threading.Thread(target=self._tick, name="journal-tick", daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_interval):
            with self._lock:
                self.appender.tick()
            self._report()

    def submit(self, exchange: Exchange) -> None:
        with self._lock:
            self.appender.submit(exchange)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(5)
        with self._lock:
            self.appender.close()
        self._report()
        self.recorder.close()

    def _report(self) -> None:
        name = self.appender.name or "local"
        self.recorder.reported_lost[name] = self.appender.lost_records
        self.recorder.reported_bodies_dropped[name] = self.appender.bodies_dropped

    # counters, as the metrics sink reads them from the recorder
    def __getattr__(self, name: str) -> Any:
        return getattr(self.recorder, name)


def standard_sinks(settings: Settings, *, registry: CollectorRegistry | None = None, tracer_provider: Any = None,
                   extra_sinks: Iterable[Sink] = ()) -> tuple[list[Sink], MetricsSink | None]:
    """The sinks every recorder feeds besides the per-slot stores: prices, metrics, spans."""
    sinks: list[Sink] = [PriceSink(settings)]
    metrics = MetricsSink(registry, settings) if registry is not None else None
    if metrics is not None:
        sinks.append(metrics)
    if tracer_provider is not None:
        sinks.append(OtelSink(tracer_provider, settings))
    sinks.extend(extra_sinks)
    return sinks, metrics


def build_recorder(settings: Settings, *, registry: CollectorRegistry | None = None, tracer_provider: Any = None,
                   extra_sinks: Iterable[Sink] = (), parse: Parse | None = None) -> LocalRecorder:
    """An in-process recorder with the standard sinks (metrics and spans when given a registry/provider)."""
    sinks, metrics = standard_sinks(settings, registry=registry, tracer_provider=tracer_provider,
                                    extra_sinks=extra_sinks)
    recorder = LocalRecorder(settings, sinks, parse=parse)
    if metrics is not None:
        metrics.bind_recorder(recorder.recorder)
    return recorder
