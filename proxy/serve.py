"""`assistants-audit serve`: run the proxy (and its admin listener) until SIGTERM/SIGINT.

Process model:
- `--workers 1` (default): one process serves the proxy port and the admin port.
- `--workers N`: a supervisor forks N workers that each bind the proxy port with SO_REUSEPORT
  (each with its own event loop, upstream ClientSession and recorder, named w0..wN-1). The
  admin listener runs in the supervisor; workers write metrics to per-process files under
  STORE/prometheus-multiproc that its /metrics sums. The vector store sampler runs in w0 only.
  SIGTERM/SIGINT to the supervisor is forwarded to the workers, which stop accepting and drain
  in-flight requests (streams included) for up to --grace-period seconds. A worker that dies on
  its own stops the whole proxy (exit 1) rather than leave it silently short of capacity.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import click
from aiohttp import web

from proxy import logs
from proxy.admin import MetricsHandler, make_admin_app, upstream_reachable
from proxy.app import make_app
from proxy.config import ConfigError, Settings, option_error, settings_options
from proxy.exchange import NullRecorder, Recorder
from proxy.fingerprint import load_or_create_secret
from proxy.forward import make_client_session
from proxy.guard import ProxyRunner
from proxy.telemetry import TelemetryConfig

log = logging.getLogger("assistants_audit.serve")


def configure_logging(level: str) -> None:
    logs.configure_logging(level, "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")


class Observability:
    """What one process records with: the recorder plus the metrics registry and tracer
    provider its sinks write to. Built per worker (after fork), closed at shutdown."""

    def __init__(self, settings: Settings, worker: str, extra_sinks: Sequence[Any] = ()) -> None:
        self.registry = _optional_call("prometheus_client", "CollectorRegistry")
        self.tracer_provider = _optional_call("proxy.telemetry", "tracer_provider_from_env")
        self.recorder = build_recorder(settings, worker, registry=self.registry,
                                       tracer_provider=self.tracer_provider, extra_sinks=tuple(extra_sinks))
        start = getattr(self.recorder, "start", None)
        if callable(start):
            start()

    def metrics_handler(self) -> MetricsHandler | None:
        if self.registry is None:
            return None
        factory = _optional_attr("proxy.sinks.metrics", "metrics_handler")
        return factory(self.registry) if factory is not None else None

    async def close(self) -> None:
        await _close(self.recorder)
        if self.tracer_provider is not None:
            await _close(self.tracer_provider, names=("shutdown",))


class Enrichment:
    """--enrich: the forwarder remembers each client's credential by fingerprint (memory only);
    an EnrichmentSink on the recorder asks the Enricher to fetch the run steps no client looked
    at, on this worker's loop and upstream session."""

    def __init__(self, enrich: Any, settings: Settings, session: aiohttp.ClientSession, worker: str) -> None:
        self.credentials = enrich.CredentialCache()
        self.enricher = enrich.Enricher(upstream=settings.upstream, session=session, recorder=NullRecorder(),
                                        credentials=self.credentials, loop=asyncio.get_running_loop(),
                                        worker=f"{worker}-enricher")
        self.sinks = [enrich.EnrichmentSink(self.enricher)]

    @classmethod
    def build(cls, settings: Settings, session: aiohttp.ClientSession, worker: str) -> "Enrichment | None":
        if not settings.enrich:
            return None
        try:
            enrich = importlib.import_module("proxy.enrich")
        except ModuleNotFoundError as exc:
            if exc.name != "proxy.enrich":
                raise
            return None
        return cls(enrich, settings, session, worker)

    def bind(self, recorder: Recorder) -> None:
        self.enricher.recorder = recorder


def _optional_attr(module_name: str, attr: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return getattr(module, attr, None)


def _optional_call(module_name: str, attr: str) -> Any:
    factory = _optional_attr(module_name, attr)
    return factory() if factory is not None else None


def build_recorder(settings: Settings, worker: str, **sinks: Any) -> Recorder:
    """The recording pipeline (proxy.pipeline.build_recorder), or a NullRecorder if it is absent."""
    factory = _optional_attr("proxy.pipeline", "build_recorder")
    if factory is None:
        log.warning("proxy.pipeline is not installed: exchanges are forwarded but not recorded")
        return NullRecorder()
    accepted = inspect.signature(factory).parameters
    kwargs = {k: v for k, v in dict(sinks, worker=worker).items() if k in accepted}
    return factory(settings, **kwargs)


async def _close(thing: Any, names: tuple[str, ...] = ("aclose", "close")) -> None:
    for name in names:
        method = getattr(thing, name, None)
        if method is not None:
            result = method()
            if inspect.isawaitable(result):
                await result
            return


def prepare_store(store: str) -> Path:
    """The store directory, created if need be and checked writable, before anything is forked:
    a store that cannot work stops start-up with one line naming --store and the path."""
    path = Path(store).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise option_error("store", f"{path}: a file is in the way (not a directory)") from None
    except OSError as exc:
        raise option_error("store", f"{path}: cannot create the directory: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise option_error("store", f"{path}: not writable: {exc.strerror or exc}") from None
    return path


async def _start_site(runner: web.BaseRunner, option: str, address: tuple[str, int], **kwargs: Any) -> None:
    host, port = address
    try:
        await web.TCPSite(runner, host, port, **kwargs).start()
    except OSError as exc:  # the event loop's strerror repeats the address; the errno text suffices
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise option_error(option, f"cannot listen on {_url(host, port)}: {reason}") from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start_admin(settings: Settings, metrics_handler: MetricsHandler | None) -> web.AppRunner | None:
    if settings.admin_address is None:
        return None
    runner = web.AppRunner(make_admin_app(settings, metrics_handler=metrics_handler),
                           handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await _start_site(runner, "admin_listen", settings.admin_address, reuse_address=True)
    except ConfigError:
        await runner.cleanup()
        raise
    log.info("admin listener on %s (/healthz /readyz /metrics)", _url(*settings.admin_address))
    return runner


async def _probe_upstream(settings: Settings) -> None:
    """Say at start-up, not only on /readyz, when the upstream takes no connection."""
    if not await upstream_reachable(settings):
        log.warning("upstream %s accepts no TCP connection (within --connect-timeout %.0fs); serving anyway: "
                    "clients get 502/504 until it does", settings.upstream, settings.connect_timeout)


def _announce(settings: Settings) -> None:
    host, port = settings.listen_address
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host  # clients need a real address
    log.info("serving on %s -> upstream %s; clients use base_url %s/v1; store %s", _url(host, port),
             settings.upstream, _url(shown, port), Path(settings.store).absolute())


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_worker(settings: Settings, *, worker: str, with_admin: bool, reuse_port: bool) -> None:
    """One worker: serve until SIGTERM/SIGINT, then drain (bounded by grace_period) and exit."""
    stop = _stop_event()
    session = make_client_session(settings)
    enrichment = Enrichment.build(settings, session, worker)
    observability = Observability(settings, worker, enrichment.sinks if enrichment else ())
    if enrichment is not None:
        enrichment.bind(observability.recorder)
    try:
        app = make_app(settings, observability.recorder, session=session, worker=worker,
                       tracer_provider=observability.tracer_provider,
                       credentials=enrichment.credentials if enrichment else None)
        sampler_ctx = _optional_attr("proxy.sampler", "sampler_ctx")
        if sampler_ctx is not None and worker == "w0":  # one vector store sampler per proxy
            app.cleanup_ctx.append(sampler_ctx(settings, observability.recorder))
        runner = ProxyRunner(app, handle_signals=False, access_log=None,
                             shutdown_timeout=settings.grace_period)
        await runner.setup()
        await _start_site(runner, "listen", settings.listen_address, reuse_port=reuse_port or None, backlog=1024)
        log.info("worker %s forwarding %s -> %s", worker, _url(*settings.listen_address), settings.upstream)
        admin = await _start_admin(settings, observability.metrics_handler()) if with_admin else None
        probe = None
        if worker == "w0":  # once per proxy, not once per worker
            _announce(settings)
            probe = asyncio.create_task(_probe_upstream(settings), name="upstream-probe")
        await stop.wait()
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
        log.info("worker %s draining in-flight requests (up to %.0fs)", worker, settings.grace_period)
        await runner.cleanup()
        if admin is not None:
            await admin.cleanup()
    finally:
        # The recorder drains first (it may still ask for enrichments), then in-flight
        # enrichments are cancelled (best effort), then the upstream session closes.
        await observability.close()
        if enrichment is not None:
            await enrichment.enricher.close()
        await session.close()
    log.info("worker %s stopped", worker)


async def supervise(settings: Settings, children: dict[int, str], metrics_dir: str | None) -> int:
    """Hold the admin listener, forward SIGTERM/SIGINT to the workers, wait for them."""
    stop = _stop_event()
    handler = None
    if metrics_dir is not None:
        registry = _optional_attr("proxy.sinks.metrics", "multiprocess_registry")(metrics_dir, settings)
        handler = _optional_attr("proxy.sinks.metrics", "metrics_handler")(registry)
    try:
        admin = await _start_admin(settings, handler)
    except ConfigError:  # the workers must not outlive the supervisor
        for pid in children:
            _signal(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
        raise
    exit_code = 0
    stopping_since: float | None = None
    while children:
        if stop.is_set() and stopping_since is None:
            stopping_since = time.monotonic()
            for pid in children:
                _signal(pid, signal.SIGTERM)
        if stopping_since is not None and time.monotonic() - stopping_since > settings.grace_period + 10:
            for pid in children:
                _signal(pid, signal.SIGKILL)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            await asyncio.sleep(0.1)
            continue
        name = children.pop(pid, "?")
        code = os.waitstatus_to_exitcode(status)
        if metrics_dir is not None:
            _optional_attr("proxy.sinks.metrics", "mark_worker_dead")(pid, metrics_dir)
        if stopping_since is None:
            # A worker died on its own: stop the others rather than serve at reduced capacity silently.
            log.error("worker %s (pid %d) exited with %d; stopping", name, pid, code)
            exit_code = 2 if code == 2 else 1  # 2: it could not start with these options
            stop.set()
        elif code != 0:
            exit_code = exit_code or 1
    if admin is not None:
        await admin.cleanup()
    return exit_code


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def run(settings: Settings) -> int:
    """Serve until told to stop; returns the process exit code."""
    # the store holds raw bodies (journal) and, with --capture-content, message text: every
    # file and directory the proxy creates is its user's only (group access: see the README)
    os.umask(0o077)
    prepare_store(settings.store)
    if not settings.fingerprint_secret:
        load_or_create_secret(settings.store)  # before forking, so every worker shares it
    if settings.workers == 1:
        _run(serve_worker(settings, worker="w0", with_admin=True, reuse_port=False))
        return 0
    # Workers write their metrics to per-process files the supervisor's /metrics sums up.
    metrics_dir = None
    enable = _optional_attr("proxy.sinks.metrics", "enable_multiprocess")
    if enable is not None and settings.admin_listen:
        metrics_dir = os.path.join(os.path.abspath(settings.store), "prometheus-multiproc")
        enable(metrics_dir)
    children: dict[int, str] = {}
    for index in range(settings.workers):
        name = f"w{index}"
        pid = os.fork()
        if pid == 0:  # worker
            code = 0
            try:
                _run(serve_worker(settings, worker=name, with_admin=False, reuse_port=True))
            except ConfigError as exc:  # e.g. --listen taken: one line, as with one worker
                logging.getLogger("assistants_audit.serve").error("worker %s: %s", name, exc)
                code = 2
            except BaseException:
                logging.getLogger("assistants_audit.serve").exception("worker %s failed", name)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = name
    log.info("supervisor %d started %d workers", os.getpid(), settings.workers)
    return _run(supervise(settings, children, metrics_dir))


@click.command()
@settings_options
def serve(**options: Any) -> None:
    """Run the recording proxy in front of an Assistants API upstream.

    Point clients at it with base_url="http://LISTEN/v1" (Azure: azure_endpoint="http://LISTEN").
    Every option can also be set with the environment variable shown.

    \b
    Example:
      assistants-audit serve --upstream https://api.openai.com --listen 127.0.0.1:8080
      ASSISTANTS_AUDIT_UPSTREAM=https://my.openai.azure.com assistants-audit serve --workers 2
    """
    settings = Settings.from_env_and_args(options)
    TelemetryConfig.from_env()  # a bad OTEL_* value stops start-up here, before any worker starts
    configure_logging(settings.log_level)
    try:
        code = run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot serve: {exc.strerror or exc}") from None
    sys.exit(code)
