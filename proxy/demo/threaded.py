"""Run a real aiohttp server on loopback in a background thread with its own event loop, so
synchronous code (the official `openai` SDK in the demo and in tests) can talk to it."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Serve `make_app()` on 127.0.0.1:port in a thread. `url` is http://127.0.0.1:port.
    `runner` is the AppRunner class (proxy.serving.guard.ProxyRunner for the proxy app)."""

    def __init__(self, make_app: Callable[[], web.Application], port: int | None = None,
                 runner: Callable[..., web.AppRunner] = web.AppRunner) -> None:
        self._make_app = make_app
        self._runner_class = runner
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"server-{self.port}", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # surface start-up errors to the test
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    async def _start(self) -> None:
        self.app = self._make_app()
        self._runner = self._runner_class(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    def start(self) -> "ServerThread":
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro_fn: Callable[[], object], timeout: float = 30) -> object:
        """Run a coroutine function on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)


@contextlib.contextmanager
def serve(make_app: Callable[[], web.Application]) -> Iterator[ServerThread]:
    server = ServerThread(make_app).start()
    try:
        yield server
    finally:
        server.stop()
