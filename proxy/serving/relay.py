"""Worker -> recorder messages, in memory only: credentials for enrichment, and the worker's counters.

One non-blocking datagram per message on the recorder's abstract Unix socket. A credential is
sent when a fingerprint is first seen and then at most once a minute (so a restarted recorder
learns it again); a message the recorder cannot take (it is restarting, its buffer is full) is
simply not delivered: the hot path never waits for it.
"""

from __future__ import annotations

import socket
import time
import orjson

from proxy.lru import LRU

RESEND_SECONDS = 60.0


class RecorderRelay:
    def __init__(self, address: str, *, maxsize: int = 4096) -> None:
        self.address = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self._sent: LRU[str, float] = LRU(maxsize)

    def _send(self, message: dict) -> None:
        try:
            self._sock.sendto(orjson.dumps(message), self.address)
        except OSError:  # recorder not there right now, or its queue is full
            pass

    def remember(self, fingerprint: str | None, headers: tuple[tuple[str, str], ...]) -> None:
        """The forwarder's credential hook (same shape as proxy.sources.enrich.CredentialCache.remember)."""
        if not fingerprint or not headers:
            return
        now = time.monotonic()
        last = self._sent.get(fingerprint)
        if last is not None and now - last < RESEND_SECONDS:
            return
        self._sent.put(fingerprint, now)
        self._send({"cred": fingerprint, "h": [list(h) for h in headers]})

    def report(self, slot: str | None, *, lost: int, bodies_dropped: int, held: int, journal_bytes: int) -> None:
        if slot is not None:
            self._send({"slot": slot, "lost": lost, "bodies_dropped": bodies_dropped, "held": held,
                        "journal_bytes": journal_bytes})

    def close(self) -> None:
        self._sock.close()
