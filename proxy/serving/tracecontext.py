"""W3C trace context for the hot path: the traceparent the forwarder sends upstream.

No OpenTelemetry SDK here (the serving process does not load it): the forwarder only mints a
span id; the recorder process builds the span with exactly that id (`proxy.sinks.telemetry`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    flags: int

    @classmethod
    def parse(cls, value: str | None) -> TraceParent | None:
        m = _TRACEPARENT.match((value or "").strip().lower())
        if m is None or m.group(1) == "ff":
            return None
        trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
        if trace_id == 0 or span_id == 0:
            return None
        return cls(trace_id, span_id, int(m.group(4), 16))

    def header(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"


def outgoing_traceparent(incoming: str | None) -> str:
    """The traceparent to send upstream: the client's trace (or a new one) with a fresh span id,
    which becomes the proxy's SERVER span when the exchange is recorded."""
    parent = TraceParent.parse(incoming)
    span_id = random.getrandbits(64) or 1
    if parent is None:
        return TraceParent(random.getrandbits(128) or 1, span_id, 1).header()
    return TraceParent(parent.trace_id, span_id, parent.flags).header()
