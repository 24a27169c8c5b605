"""Fixtures for the emulator (owned by the emulator work).

`emulator` (function scope) and `emulator_session` (session scope) serve a fresh emulator on
127.0.0.1 in a thread with a step clock (every request moves time one second), so runs finish
after a few polls and the SDK's poll interval (`openai-poll-after-ms`) is 1 ms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from emulator.app import EmulatorSettings, make_app
from tests.servers import ServerThread

FAST = EmulatorSettings(seed=0, poll_after_ms=1)


@dataclass
class RunningEmulator:
    server: ServerThread
    settings: EmulatorSettings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def client(self, **kwargs):
        """An openai.OpenAI client pointed at this emulator (no retries unless asked)."""
        import openai

        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(api_key="sk-emulator", base_url=self.base_url, **kwargs)


def start_emulator(settings: EmulatorSettings = FAST) -> RunningEmulator:
    return RunningEmulator(ServerThread(lambda: make_app(settings)).start(), settings)


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    running = start_emulator()
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Start emulators with custom settings: `make_emulator(seed=3, time_scale=50)`; all stop at teardown."""
    started: list[RunningEmulator] = []

    def start(settings: EmulatorSettings | None = None, **overrides) -> RunningEmulator:
        base = settings or FAST
        running = start_emulator(replace(base, **overrides))
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.server.stop()


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[RunningEmulator]:
    running = start_emulator()
    try:
        yield running
    finally:
        running.server.stop()
