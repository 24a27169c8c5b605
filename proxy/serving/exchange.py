"""The unit the hot path hands to the recording pipeline.

The forwarder builds one `Exchange` per request it answered (or failed to answer) and passes it
to `Recorder.submit` *after* the last body byte was written to the client but *before* the
response is finished (`write_eof`), so a journal entry exists for every answered exchange.
Nothing here is parsed: bodies are the raw bytes as they crossed the wire (possibly gzip),
capped; parsing happens later, off the event loop.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, str], ...]

# Why these and only these: they are what the facts need; secrets (Authorization, api-key,
# cookies, proxy keys) are never copied into an Exchange, only their keyed fingerprint.
SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "cookie", "set-cookie", "proxy-authorization", "x-proxy-key"}
)


_id_state: list = []


def _reset_id_state() -> None:
    # A fresh random prefix per process (and per fork), then a counter: unique without a
    # syscall per request (os.urandom per id showed up in the hot path's profile).
    _id_state[:] = [os.urandom(6).hex(), itertools.count()]


_reset_id_state()
os.register_at_fork(after_in_child=_reset_id_state)


def new_exchange_id() -> str:
    """Time-ordered, globally unique id (ms timestamp, 48 random bits per process, a counter)."""
    prefix, counter = _id_state
    return f"{int(time.time() * 1000):012x}{prefix}{next(counter) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True, slots=True)
class Exchange:
    """Occurs once per proxied request, when the proxy has forwarded the last byte it will forward.

    Also built for calls the proxy itself makes (origin ``enrichment`` or ``sampler``).
    """

    exchange_id: str
    worker: str
    origin: str  # "client" | "enrichment" | "sampler"
    started_at: float  # wall clock, unix seconds, when the request head was received
    ttfb_s: float | None  # request received -> upstream response head received
    duration_s: float  # request received -> last byte forwarded
    proxy_overhead_s: float  # time spent in the proxy's own code (not waiting on either peer)
    method: str
    path: str  # raw path as received (no query)
    query: str  # raw query string, without '?'
    request_headers: Headers  # lower-cased names, SECRET_HEADERS removed
    key_fingerprint: str | None  # keyed hash of the credential, never the credential
    request_body: bytes  # first N bytes of the request body (N = body cap)
    request_body_size: int  # total bytes forwarded
    status: int | None  # upstream status, or the proxy's own (502/504) when it failed
    response_headers: Headers  # lower-cased names, as the upstream sent them
    response_body: bytes  # as on the wire (compressed if Content-Encoding says so), capped
    response_body_size: int  # total bytes forwarded to the client
    error_type: str | None = None  # proxy-level failure: upstream_unreachable, upstream_timeout, upstream_reset, client_disconnected, ...
    request_body_truncated: bool = False
    response_body_truncated: bool = False
    upstream: str = ""  # upstream origin, e.g. https://example.openai.azure.com
    traceparent: str | None = None  # the traceparent the proxy sent upstream, if any
    extra: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, *, response: bool = False) -> str | None:
        for k, v in self.response_headers if response else self.request_headers:
            if k == name:
                return v
        return None


class Recorder(Protocol):
    """What the forwarder talks to. `submit` must not block on anything but a small local append."""

    def submit(self, exchange: Exchange) -> None: ...


class NullRecorder:
    """Records nothing: the bare forwarder, and the default before the pipeline is configured."""

    def submit(self, exchange: Exchange) -> None:
        return None
