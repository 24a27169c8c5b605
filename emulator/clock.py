"""Clocks for the emulator. Run state is computed from the clock when read, so the clock decides
how fast runs move: a StepClock advances a fixed step on every request (fully deterministic, what
tests use), a ScaledClock follows wall time times a scale (what the CLI and the demo use)."""

from __future__ import annotations

import time
from typing import Protocol

# 2025-06-15T00:00:00Z: a fixed origin so identical inputs give identical timestamps.
DEFAULT_EPOCH = 1_749_945_600.0


class Clock(Protocol):
    def now(self) -> float: ...

    def tick(self) -> None:
        """Called once per API request."""

    def advance_to(self, t: float) -> None:
        """Make now() at least t (a streamed run moves time forward as it emits events)."""

    def advance(self, seconds: float) -> None: ...

    def wall_seconds(self, emulated_seconds: float) -> float:
        """Real seconds to wait for `emulated_seconds` to pass (0 for a step clock)."""


class StepClock:
    def __init__(self, start: float = DEFAULT_EPOCH, step: float = 1.0) -> None:
        self._now = float(start)
        self.step = float(step)

    def now(self) -> float:
        return self._now

    def tick(self) -> None:
        self._now += self.step

    def advance_to(self, t: float) -> None:
        self._now = max(self._now, t)

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    def wall_seconds(self, emulated_seconds: float) -> float:
        return 0.0


class ScaledClock:
    def __init__(self, start: float | None = None, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("time scale must be > 0")
        self._origin = time.time() if start is None else float(start)
        self._t0 = time.monotonic()
        self._offset = 0.0
        self.scale = scale

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._t0) * self.scale + self._offset

    def tick(self) -> None:
        pass

    def advance_to(self, t: float) -> None:
        gap = t - self.now()
        if gap > 0:
            self._offset += gap

    def advance(self, seconds: float) -> None:
        self._offset += max(0.0, seconds)

    def wall_seconds(self, emulated_seconds: float) -> float:
        return max(0.0, emulated_seconds / self.scale)
