"""`assistants-audit serve`: the supervisor, its serving workers and its recorder process.

Process model (the same for any `--workers N`):

    supervisor   holds the admin listener (/healthz, /readyz, /metrics: the recorder's registry,
                 fetched over an abstract Unix socket), forks the workers, starts the recorder,
                 restarts the recorder if it dies, forwards SIGTERM/SIGINT.
    worker wI    forwards bytes and appends one journal record per exchange (`JournalAppender`);
                 nothing else: no parsing, no DuckDB, no spans, no metrics. Workers share the
                 port with SO_REUSEPORT (one worker binds it plainly).
    recorder     `python -m proxy.recording`, at a lower CPU priority: follows every worker's
                 journal and does everything that turns an exchange into rows, metrics, spans,
                 enrichment and vector store samples (`proxy.recording.process`).

Shutdown: SIGTERM stops the workers (they drain in-flight requests for up to --grace-period),
then the recorder, which stores what is left in the journal and exits. A worker that dies on its
own stops the proxy (exit 1) rather than serve short of capacity silently; the recorder is
restarted (what it had not stored is still in the journal). If the supervisor itself is killed,
workers get SIGTERM from the kernel (PR_SET_PDEATHSIG) and the recorder sees its standard input
close: both drain and exit.
"""

from __future__ import annotations

import asyncio
import gc
import ctypes
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import click
from aiohttp import web

from proxy import logs
from proxy.admin import make_admin_app, upstream_reachable
from proxy.serving.app import make_app
from proxy.config import ConfigError, Settings, option_error, settings_options
from proxy.serving.fingerprint import load_or_create_secret
from proxy.serving.forward import make_client_session
from proxy.serving.guard import ProxyRunner
from proxy.recording.control import RecorderControl
from proxy.serving.appender import JournalAppender
from proxy.serving.relay import RecorderRelay

log = logging.getLogger("assistants_audit.serve")


def configure_logging(level: str) -> None:
    logs.configure_logging(level, "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")


def run_loop(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


def prepare_store(store: str) -> Path:
    """The store directory, created if need be and checked writable, before anything is started:
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


def _check_free(option: str, address: tuple[str, int], reuse_port: bool) -> None:
    """Bind (without listening) where a listener will go, before any process is started: a busy
    port is one line naming the option, not a worker's error after the others started."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise option_error(option, f"cannot listen on {_url(host, port)}: {reason}") from None


async def _start_site(runner: web.BaseRunner, option: str, address: tuple[str, int], **kwargs: Any) -> None:
    host, port = address
    try:
        await web.TCPSite(runner, host, port, **kwargs).start()
    except OSError as exc:  # the event loop's strerror repeats the address; the errno text suffices
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise option_error(option, f"cannot listen on {_url(host, port)}: {reason}") from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


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


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the supervisor dies (even by kill -9)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --- a worker ---------------------------------------------------------------------------------------


async def serve_worker(settings: Settings, *, worker: str, control: RecorderControl, reuse_port: bool) -> None:
    """One worker: serve until SIGTERM/SIGINT, then drain (bounded by grace_period) and exit."""
    stop = _stop_event()
    appender = JournalAppender(settings.store, fsync=settings.journal_fsync, max_lag_bytes=settings.max_recorder_lag)
    appender.open()
    relay = RecorderRelay(control.channel_address)
    session = make_client_session(settings)

    async def housekeeping() -> None:
        while True:
            await asyncio.sleep(1.0)
            appender.tick()
            relay.report(appender.name, lost=appender.lost_records, bodies_dropped=appender.bodies_dropped,
                         held=appender.held, journal_bytes=appender.journal_bytes)

    ticker = asyncio.create_task(housekeeping(), name=f"journal-housekeeping-{worker}")
    try:
        app = make_app(settings, appender, session=session, worker=worker,
                       credentials=relay if settings.enrich else None)
        runner = ProxyRunner(app, handle_signals=False, access_log=None, shutdown_timeout=settings.grace_period)
        await runner.setup()
        await _start_site(runner, "listen", settings.listen_address, reuse_port=reuse_port or None, backlog=1024)
        # Everything alive now lives as long as the worker: out of the cyclic collector's sight,
        # so its collections scan a request's objects, not the ~40,000 of the imported modules
        # (with them, the collector took about 15 % of a saturated worker's CPU).
        gc.collect()
        gc.freeze()
        log.info("worker %s forwarding %s -> %s (journal slot %s)", worker, _url(*settings.listen_address),
                 settings.upstream, appender.name)
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
    finally:
        ticker.cancel()
        appender.close()
        relay.report(appender.name or "", lost=appender.lost_records, bodies_dropped=appender.bodies_dropped,
                     held=0, journal_bytes=appender.journal_bytes)
        relay.close()
        await session.close()
    log.info("worker %s stopped", worker)


# --- the supervisor ---------------------------------------------------------------------------------


class RecorderProcess:
    """The recorder child: started with the settings on its stdin, restarted when it dies."""

    def __init__(self, settings: Settings, control: RecorderControl) -> None:
        self.settings = settings
        self.control = control
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "proxy.recording"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, close_fds=True)
        assert self.proc.stdin is not None
        # secrets (fingerprint secret, sampler key) travel in this pipe, never in argv or the environment
        self.proc.stdin.write(pickle.dumps((self.settings, self.control)))
        self.proc.stdin.flush()
        log.debug("recorder process %d started", self.proc.pid)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the recorder says the store is laid out (or it died, or `timeout`). A
        configuration only the recorder reads (OTEL_*) that it refuses raises ConfigError here,
        before any worker starts."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode(errors="replace") if ready else ""
        if line.startswith("error "):
            self.proc.wait()
            raise ConfigError(line[len("error "):].strip())
        return line == "ready\n"

    def check(self) -> None:
        """Restart the recorder if it died on its own."""
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        log.error("recorder (pid %d) exited with %s; restarting it (the journal keeps what it had not stored)",
                  self.proc.pid, code)
        self._close_pipe()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.start()

    def forget_pipes(self) -> None:
        """In a forked worker: close the inherited ends of the recorder's pipes."""
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    os.close(pipe.fileno())

    def _close_pipe(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    async def stop(self, timeout: float) -> int:
        if self.proc is None:
            return 0
        self._close_pipe()  # end of file: store what is left, then exit (seen even while it starts up)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            log.error("recorder did not stop within %.0f s; sending SIGTERM", timeout)
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(5)
        if self.proc.poll() is None:
            log.error("recorder did not stop within %.0f s; killing it (the journal keeps the rest)", timeout)
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode or 0


def recorder_metrics(control: RecorderControl):
    """The admin /metrics handler: the recorder's exposition, fetched over its Unix socket."""

    async def handle(request: web.Request) -> web.Response:
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=control.metrics_address),
                                             timeout=aiohttp.ClientTimeout(total=10)) as session:
                async with session.get("http://recorder/metrics",
                                       headers={"Accept": request.headers.get("Accept", "")}) as response:
                    body = await response.read()
                    return web.Response(body=body, status=response.status,
                                        headers={"Content-Type": response.headers.get("Content-Type", "text/plain")})
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return web.Response(status=503, text="# the recorder process is (re)starting\n")

    return handle


async def _start_admin(settings: Settings, control: RecorderControl) -> web.AppRunner | None:
    if settings.admin_address is None:
        return None
    runner = web.AppRunner(make_admin_app(settings, metrics_handler=recorder_metrics(control)),
                           handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await _start_site(runner, "admin_listen", settings.admin_address, reuse_address=True)
    except ConfigError:
        await runner.cleanup()
        raise
    log.info("admin listener on %s (/healthz /readyz /metrics)", _url(*settings.admin_address))
    return runner


async def supervise(settings: Settings, children: dict[int, str], recorder: RecorderProcess) -> int:
    """Hold the admin listener, keep the recorder alive, forward SIGTERM/SIGINT, drain in order."""
    stop = _stop_event()
    try:
        admin = await _start_admin(settings, recorder.control)
    except ConfigError:  # taken since start-up checked it: the workers and the recorder must not outlive us
        for pid in children:
            _signal(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
        await recorder.stop(timeout=60.0)
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
        if stopping_since is None:
            recorder.check()
        reaped = False
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            reaped = True
            name = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if stopping_since is None:
                # A worker died on its own: stop the others rather than serve at reduced capacity silently.
                log.error("worker %s (pid %d) exited with %d; stopping", name, pid, code)
                exit_code = 2 if code == 2 else 1  # 2: it could not start with these options
                stop.set()
            elif code != 0:
                exit_code = exit_code or 1
        if not reaped:
            await asyncio.sleep(0.1)
    # the workers are gone: the recorder stores the rest of their journals, then exits
    if await recorder.stop(timeout=max(60.0, settings.grace_period * 2)) != 0:
        exit_code = 1
    if admin is not None:
        await admin.cleanup()
    return exit_code


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run(settings: Settings) -> int:
    """Serve until told to stop; returns the process exit code."""
    # the store holds raw bodies (journal) and, with --capture-content, message text: every
    # file and directory the proxy creates is its user's only (group access: see the README)
    os.umask(0o077)
    prepare_store(settings.store)
    _check_free("listen", settings.listen_address, reuse_port=settings.workers > 1)
    if settings.admin_address is not None:
        _check_free("admin_listen", settings.admin_address, reuse_port=False)
    if not settings.fingerprint_secret:
        load_or_create_secret(settings.store)  # before forking, so every worker shares it
    control = RecorderControl.create()
    # The recorder first: the store is laid out (tables, views) before the first request is served.
    recorder = RecorderProcess(settings, control)
    recorder.start()
    if not recorder.wait_ready(60.0):
        log.error("the recorder is not ready after 60 s; serving anyway (the journal keeps every exchange)")
    children: dict[int, str] = {}
    for index in range(settings.workers):
        name = f"w{index}"
        pid = os.fork()
        if pid == 0:  # worker
            _die_with_parent()
            recorder.forget_pipes()  # the recorder's stdin must reach end of file when the supervisor goes
            code = 0
            try:
                run_loop(serve_worker(settings, worker=name, control=control, reuse_port=settings.workers > 1))
            except ConfigError as exc:  # e.g. --listen taken since the check: one line
                logging.getLogger("assistants_audit.serve").error("worker %s: %s", name, exc)
                code = 2
            except BaseException:
                logging.getLogger("assistants_audit.serve").exception("worker %s failed", name)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = name
    log.info("supervisor %d started %d worker(s) and the recorder", os.getpid(), settings.workers)
    try:
        return run_loop(supervise(settings, children, recorder))
    finally:
        control.remove()


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
    configure_logging(settings.log_level)
    try:
        code = run(settings)
    except OSError as exc:
        raise click.ClickException(f"cannot serve: {exc.strerror or exc}") from None
    sys.exit(code)
