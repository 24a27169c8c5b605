"""Incremental Server-Sent Events decoder (WHATWG event-stream interpretation).

Fed raw bytes in whatever chunks the wire produced: lines are split on bytes (CR, LF or CRLF, the
only line terminators SSE allows, none of which can occur inside a multi-byte UTF-8 sequence),
so a chunk boundary in the middle of a line, of a CRLF pair or of a UTF-8 character is harmless.
Each complete line is decoded on its own. Like openai-python's `SSEDecoder`, an event is
dispatched at a blank line; an event left unterminated at end of stream is dropped by `finish()`
(the spec's rule; a capped copy therefore yields only whole events).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """Occurs when a blank line ends an event block that had an `event` or `data` field."""

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    __slots__ = ("_pending", "_held_cr", "_event", "_data", "_last_id", "_retry", "_first_line", "_finished")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # bytes of the current, not yet terminated line
        self._held_cr = False  # last byte seen was CR: a following LF belongs to the same terminator
        self._event: str | None = None
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None
        self._first_line = True
        self._finished = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume the next bytes of the stream; return the events they completed."""
        if not chunk:
            return []
        out: list[SSEEvent] = []
        if self._held_cr:
            self._held_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        start = 0
        n = len(chunk)
        while start < n:
            lf = chunk.find(b"\n", start)
            cr = chunk.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < n:
                    if chunk[nxt] == 0x0A:
                        nxt += 1
                else:
                    self._held_cr = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                self._pending.append(chunk[start:])
                break
            if self._pending:
                self._pending.append(chunk[start:end])
                raw = b"".join(self._pending)
                self._pending.clear()
            else:
                raw = chunk[start:end]
            event = self._line(raw)
            if event is not None:
                out.append(event)
            start = nxt
        return out

    def finish(self) -> list[SSEEvent]:
        """End of stream: process a final unterminated line; an undispatched event is discarded."""
        if self._finished:
            return []
        self._finished = True
        if self._pending:
            raw = b"".join(self._pending)
            self._pending.clear()
            self._line(raw)
        self._event, self._data, self._retry = None, [], None
        return []

    def _line(self, raw: bytes) -> SSEEvent | None:
        line = raw.decode("utf-8", "replace")
        if self._first_line:
            self._first_line = False
            if line.startswith("\ufeff"):
                line = line[1:]
        if not line:
            if self._event is None and not self._data:
                self._retry = None
                return None
            event = SSEEvent(self._event, "\n".join(self._data), self._last_id, self._retry)
            self._event, self._data, self._retry = None, [], None
            return event
        if line[0] == ":":
            return None
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None


def decode_all(body: bytes) -> list[SSEEvent]:
    """Decode a whole (possibly truncated) stream at once."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    decoder.finish()
    return events
