"""What came over the wire -> Python values: a captured body decoded (Content-Encoding undone,
JSON parsed, server-sent events read one at a time), and the tolerant readers of JSON values every
parser uses. Shared by the Assistants parser (proxy.assistants.parse) and the Responses parser
(proxy.responses.parse); pure, no I/O.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from proxy.assistants.facts import MAX_USAGE_TOKENS
from proxy.assistants.sse import SSEDecoder

# No brotli decoder is a dependency of this wheel (either one is used when installed): without
# one a br body is a parse error, never a crash.
try:
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import brotlicffi as _brotli  # type: ignore[import-not-found,no-redef]
    except ImportError:
        _brotli = None

Json = dict[str, Any]


# --- JSON values -----------------------------------------------------------------------------


def ts(value: object) -> datetime | None:
    """Unix seconds (int or float) -> aware UTC datetime; anything else -> None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_strs(value: object) -> tuple[str, ...]:
    return tuple(v for v in as_list(value) if isinstance(v, str))


def refused_counts(values: list[object]) -> str | None:
    """Why these token counts cannot be real (one of USAGE_INVALID_REASONS but `inconsistent`,
    which depends on how the counts relate), or None. None values are absent counts, not refused."""
    given = [v for v in values if v is not None]
    # the API sends JSON integers; a string, float or bool here is not a token count
    if any(isinstance(v, bool) or not isinstance(v, int) for v in given):
        return "malformed"
    if any(v < 0 for v in given):  # type: ignore[operator]
        return "negative"
    if any(v > MAX_USAGE_TOKENS for v in given):  # type: ignore[operator]
        return "too_large"
    return None


# --- body decoding ---------------------------------------------------------------------------


@dataclass(slots=True)
class Body:
    data: Any = None  # parsed JSON (dict/list) or None
    sse: bytes | None = None  # decoded event-stream bytes; read them with `events()`
    error: str | None = None
    raw: bytes = b""  # the decoded bytes of a JSON body that did not parse (cut by the cap)

    @property
    def is_sse(self) -> bool:
        return self.sse is not None

    def events(self, skip: Callable[[str], bool] = lambda name: False) -> Iterator[tuple[str, Any]]:
        """(event name, parsed data) one at a time, so a stream of any length is never held as a
        list of events. Events whose name `skip` accepts are not parsed at all (deltas); an event
        without a name is parsed and named by its data's `type`. A data line that is not JSON
        sets `error` and is passed over."""
        if not self.sse:
            return
        decoder = SSEDecoder()
        view = memoryview(self.sse)
        for start in range(0, len(view), _SSE_SLICE):
            for event in decoder.feed(bytes(view[start:start + _SSE_SLICE])):
                name = event.event or ""
                if (name and skip(name)) or event.data.startswith("[DONE]"):
                    continue
                try:
                    data = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    self.error = self.error or "invalid_json_event"
                    continue
                if not name:
                    name = as_str(as_dict(data).get("type")) or ""
                    if skip(name):
                        continue
                yield name, data
        decoder.finish()


# Bytes handed to the SSE decoder at once: what it holds besides the body itself.
_SSE_SLICE = 64 * 1024
# A decoded copy larger than this is a parse error: a small compressed body (a "zip bomb") must
# not make the recorder hold gigabytes.
MAX_DECODED_BODY = 64 * 1024 * 1024


def _decompress(raw: bytes, encoding: str | None) -> tuple[bytes, str | None]:
    """Undo every coding of Content-Encoding (a list, applied in order, so undone in reverse)."""
    data = raw
    for coding in reversed([c.strip().lower() for c in (encoding or "").split(",") if c.strip()]):
        if not data or coding == "identity":
            continue
        data, err = _decode_coding(data, coding)
        if err:
            return b"", err
    return data, None


def _decode_coding(raw: bytes, coding: str) -> tuple[bytes, str | None]:
    try:
        if coding in ("gzip", "x-gzip"):
            return _inflate(raw, 16 + zlib.MAX_WBITS, coding)
        if coding == "deflate":
            try:
                return _inflate(raw, zlib.MAX_WBITS, coding)
            except zlib.error:  # servers that send raw deflate without the zlib wrapper
                return _inflate(raw, -zlib.MAX_WBITS, coding)
        if coding == "br":
            if _brotli is None:
                return b"", "unsupported_encoding:br"
            return _brotli.decompress(raw), None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a parse error
        return b"", f"bad_{coding}:{type(exc).__name__}"
    return b"", f"unsupported_encoding:{coding}"


def _inflate(raw: bytes, wbits: int, coding: str) -> tuple[bytes, str | None]:
    decoder = zlib.decompressobj(wbits)
    data = decoder.decompress(raw, MAX_DECODED_BODY)
    if decoder.unconsumed_tail:
        return b"", f"decoded_too_large:{coding}"
    return data, None


# Exchange.error_type values for which the forwarded response body may have stopped early.
CUT_SHORT = frozenset({"upstream_reset", "upstream_timeout", "client_disconnected", "proxy_shutdown"})
_LIST_DATA = re.compile(rb'"data"\s*:\s*\[')


def _salvage_list(data: bytes) -> Json | None:
    """The complete items of a list page whose copy was cut by the body cap."""
    m = _LIST_DATA.search(data, 0, 4096)
    if m is None or b'"list"' not in data[: m.start()]:
        return None
    text = data[m.end():].decode("utf-8", "ignore")
    decoder = json.JSONDecoder()
    items: list[Any] = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            break
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        items.append(item)
    return {"object": "list", "data": items}


def salvage_members(data: bytes) -> Json:
    """The complete top-level members of a JSON object whose copy was cut short, in order, up to
    the first member the cut reached: `{"id": "x", "status": "in_progress", "output": [...` gives
    `{"id": "x", "status": "in_progress"}`."""
    text = data.decode("utf-8", "ignore")
    decoder = json.JSONDecoder()
    members: Json = {}
    pos = text.find("{")
    if pos < 0 or text[:pos].strip():
        return members
    pos += 1
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        try:
            key, pos = decoder.raw_decode(text, pos)
            while pos < n and text[pos] in " \t\r\n":
                pos += 1
            if not isinstance(key, str) or pos >= n or text[pos] != ":":
                return members
            pos += 1
            while pos < n and text[pos] in " \t\r\n":
                pos += 1
            value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            return members
        members[key] = value


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _is_json_media(media: str) -> bool:
    # application/jsonl and application/x-ndjson are lines of JSON, not one document
    return media in ("application/json", "text/json") or (media.startswith("application/") and media.endswith("+json"))


def decode_body(raw: bytes, content_type: str | None, encoding: str | None, truncated: bool) -> Body:
    body = Body()
    media = _media_type(content_type)
    if media != "text/event-stream" and not _is_json_media(media):
        return body  # file content, multipart, text: bytes that only look like JSON are not an API object
    data, err = _decompress(raw, encoding)
    if err:
        body.error = err
        return body
    if media == "text/event-stream":
        body.sse = data
        return body
    if not data.strip():
        return body
    try:
        body.data = orjson.loads(data)
    except orjson.JSONDecodeError:
        if truncated:
            body.error = "truncated"
            body.data = _salvage_list(data)
            body.raw = data
        else:
            try:
                data.decode("utf-8")
                body.error = "invalid_json"
            except UnicodeDecodeError:
                body.error = "invalid_utf8"
    return body


class Counted:
    """What both parsers' per-exchange contexts share (a mixin for their slotted dataclasses,
    which hold `seq` and `capture`): the order of facts within an exchange, and content kept
    only when capture is on."""

    __slots__ = ()
    seq: int
    capture: bool

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def content(self, value: Any) -> Any:
        return value if self.capture else None
