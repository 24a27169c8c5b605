"""The recorder process: everything that turns journaled exchanges into rows, metrics and spans.

`serve` starts it with `python -m proxy.recording` and hands it the settings on its standard
input (a pickle, then the pipe stays open: end of file means the supervisor is gone, and the
recorder drains and exits). Its working threads (journal -> facts -> store, metrics, spans; the views keeper) run at the
lowest CPU priority there is (`SCHED_IDLE`; `nice` 19 where that is refused), so that work only
gets CPU the workers leave idle; its event loop (the /metrics socket, the credential channel)
stays at normal priority, so a scrape is answered at once even under saturation.

It holds:
- the `JournalRecorder` thread (journal -> parse -> store, prices, metrics, spans, enrichment);
- the Prometheus registry, served to the supervisor's admin listener over an abstract Unix
  socket (`RecorderControl.metrics_address`);
- a datagram socket (`RecorderControl.channel_address`) on which workers send, in memory only,
  the credentials enrichment needs (fingerprint -> Authorization/api-key) and their own
  counters (records they could not journal, bodies dropped at the lag bound);
- the enricher and the vector store sampler, whose own calls go to a journal slot of the
  recorder's own and are recorded like any other exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import pickle
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry


from proxy.assistants.parse import parse
from proxy.config import ConfigError, Settings
from proxy.sources.enrich import CredentialCache, Enricher, EnrichmentSink
from proxy.serving.fingerprint import Fingerprinter
from proxy.recording.dispatch import Sink
from proxy.recording.control import RecorderControl
from proxy.recording.recorder import JournalRecorder, prepare_store
from proxy.sources.sampler import VectorStoreSampler, sampler_key
from proxy.serving.appender import JournalAppender
from proxy.recording.local import standard_sinks
from proxy.sinks.metrics import MetricsSink, metrics_handler
from proxy.sinks.telemetry import tracer_provider_from_env

log = logging.getLogger("assistants_audit.recorder")

NICE_FALLBACK = 19  # where SCHED_IDLE is refused


def lower_priority() -> str:
    """Give the workers every CPU cycle they want: under saturation the recorder falls behind on
    disk (the journal) and catches up when load drops.

    `SCHED_IDLE`, not a `nice` value: at `nice` 5 the scheduler still gave the recorder a third of
    a busy core in slices of several milliseconds, which is what a worker's request waited behind
    (the benchmark's p99 at 1,000 req/s went from 78 ms to 8.7 ms, and saturated throughput from
    0.55x to 0.84x the bare forwarder, when the recorder became SCHED_IDLE: bench/findings.md).
    Per thread (Linux scheduling policies are): called first by each working thread."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICE_FALLBACK)
        return f"nice {os.nice(0)}"


class _Channel(asyncio.DatagramProtocol):
    """Datagrams from the workers: {"cred": fp, "h": [[name, value]]} or {"slot": .., "lost": n, ...}."""

    def __init__(self, credentials: CredentialCache, recorder: JournalRecorder) -> None:
        self.credentials = credentials
        self.recorder = recorder

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = orjson.loads(data)
            if "cred" in message:
                self.credentials.remember(str(message["cred"]),
                                          tuple((str(k), str(v)) for k, v in message.get("h") or ()))
            elif "slot" in message:
                slot = str(message["slot"])
                self.recorder.reported_lost[slot] = max(self.recorder.reported_lost.get(slot, 0),
                                                        int(message.get("lost", 0)))
                dropped = self.recorder.reported_bodies_dropped
                dropped[slot] = max(dropped.get(slot, 0), int(message.get("bodies_dropped", 0)))
        except Exception:  # a malformed datagram is dropped; never logged as it may hold a credential
            log.debug("recorder channel: malformed datagram dropped")


class RecorderService:
    """The recorder's parts, built and torn down together (in the recorder process, or in a test)."""

    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None,
                 tracer_provider: Any = None, extra_sinks: tuple[Sink, ...] = ()) -> None:
        self.settings = settings
        self.store_dir = Path(settings.store).absolute()
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tracer_provider = tracer_provider
        self.credentials = CredentialCache()
        self.extra_sinks = extra_sinks
        self.own: JournalAppender | None = None
        self.session: aiohttp.ClientSession | None = None
        self.enricher: Enricher | None = None
        self.sampler_task: asyncio.Task[None] | None = None
        self.recorder: JournalRecorder | None = None
        self.metrics: MetricsSink | None = None

    async def start(self) -> JournalRecorder:
        settings = self.settings
        loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                                             auto_decompress=False)
        key = sampler_key(settings)
        sampling = settings.sample_vector_stores is not None and bool(key)
        if settings.enrich or sampling:
            # the proxy's own calls (enrichment, sampler) are journaled in a slot of the recorder's own
            self.own = JournalAppender(self.store_dir, fsync=settings.journal_fsync, slot_prefix="r")
            try:
                self.own.open()
            except OSError as exc:
                log.error("store %s: cannot open a journal for the proxy's own calls (%s)", self.store_dir, exc)
        extra: list[Sink] = []
        if settings.enrich:
            self.enricher = Enricher(upstream=settings.upstream, session=self.session, recorder=self.own,
                                     credentials=self.credentials, loop=loop, worker="enricher")
            extra.append(EnrichmentSink(self.enricher))
        sinks, self.metrics = standard_sinks(settings, registry=self.registry, tracer_provider=self.tracer_provider,
                                             extra_sinks=[*extra, *self.extra_sinks])
        assert self.metrics is not None
        self.recorder = JournalRecorder(self.store_dir, sinks, parse, capture_content=settings.capture_content,
                                        thread_setup=lower_priority)
        self.metrics.bind_recorder(self.recorder)
        self.recorder.start()
        if sampling and key:
            sampler = VectorStoreSampler(upstream=settings.upstream, api_key=key, session=self.session,
                                         recorder=self.own, key_fingerprint=Fingerprinter.for_settings(settings)(key),
                                         every=float(settings.sample_vector_stores))
            self.sampler_task = asyncio.create_task(sampler.run(), name="vector-store-sampler")
        self.ticker = asyncio.create_task(self._tick(), name="own-journal-tick")
        return self.recorder

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.own is not None:
                self.own.tick()

    async def close(self) -> None:
        """Stop making calls, then drain every journal into the store, then flush spans."""
        for task in (self.sampler_task, getattr(self, "ticker", None)):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.enricher is not None:
            await self.enricher.close()
        if self.own is not None:
            self.own.close()
        if self.recorder is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)
        if self.session is not None:
            await self.session.close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


async def run_recorder(settings: Settings, control: RecorderControl) -> None:
    try:
        provider = tracer_provider_from_env()
    except ConfigError as exc:  # a bad OTEL_* value: the supervisor stops start-up with this one line
        os.write(sys.stdout.fileno(), f"error {exc}\n".encode())
        raise SystemExit(2) from None
    service = RecorderService(settings, tracer_provider=provider)
    prepare_store(service.store_dir)
    # tell the supervisor the store is laid out: it starts the workers now
    os.write(sys.stdout.fileno(), b"ready\n")
    recorder = await service.start()
    loop = asyncio.get_running_loop()
    for address in (control.channel_address, control.metrics_address):  # left by a recorder that died
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(control.channel_address)
    transport, _ = await loop.create_datagram_endpoint(lambda: _Channel(service.credentials, recorder), sock=sock)
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(service.registry))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, control.metrics_address).start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # end of file on stdin: the supervisor is gone (even kill -9): drain and exit
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    gc.collect()
    gc.freeze()  # what startup made lives as long as the process: out of the collector's scans
    log.info("recorder %d following %s (its working threads at the lowest CPU priority)", os.getpid(),
             service.store_dir)
    await stop.wait()
    loop.remove_reader(sys.stdin.fileno())
    log.info("recorder storing what is left in the journal")
    transport.close()
    await runner.cleanup()
    await service.close()
    log.info("recorder stopped (%d exchanges recorded)", recorder.records)


def main() -> None:
    # `kill -USR1 <recorder pid>` writes every thread's stack to the log: where is it stuck?
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    settings, control = pickle.load(sys.stdin.buffer)
    from proxy.serve import configure_logging, run_loop

    configure_logging(settings.log_level)
    run_loop(run_recorder(settings, control))
