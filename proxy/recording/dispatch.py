"""Sinks observe parsed exchanges. The dispatcher calls each one, and a failing sink is logged,
never allowed to break recording for the others or reach the proxy (mitmproxy's `safecall`).

All sink methods run in the recorder (`proxy.recording.recorder.JournalRecorder`, one thread of
the recorder process), never in a serving process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from proxy.serving.exchange import Exchange
from proxy.facts import Fact

log = logging.getLogger("assistants_audit.sinks")


class Sink(Protocol):
    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        """Called once per exchange, in journal order, after parsing."""

    def flush(self) -> None:
        """Called by the recorder on a timer and at shutdown: push buffered work out."""

    def close(self) -> None:
        """Called once at shutdown after the last on_exchange."""


class Dispatcher:
    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.errors = 0

    def _safecall(self, sink: Sink, method: str, *args: object) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception:  # a sink must never break recording
            self.errors += 1
            log.exception("sink %s.%s failed", type(sink).__name__, method)

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        for sink in self.sinks:
            self._safecall(sink, "on_exchange", exchange, facts)

    def flush(self) -> None:
        for sink in self.sinks:
            self._safecall(sink, "flush")

    def close(self) -> None:
        for sink in self.sinks:
            self._safecall(sink, "close")
