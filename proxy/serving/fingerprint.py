"""Keyed, non-reversible fingerprints of API keys, so exchanges can be grouped by credential
without the credential ever being stored.

HMAC-SHA256 with a secret that never leaves the machine: `--fingerprint-secret`, or a random
32-byte secret created (mode 0600) in STORE/fingerprint.key on first start. Without the secret
a fingerprint cannot be matched against guessed keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from proxy.config import Settings

KEY_FILE = "fingerprint.key"


def load_or_create_secret(store_dir: str) -> bytes:
    """Read STORE/fingerprint.key, creating it atomically (0600) if absent.

    Safe when several workers start at once: the file is written under a private name and
    linked into place, so a reader never sees a half-written secret.
    """
    os.makedirs(store_dir, exist_ok=True)
    path = os.path.join(store_dir, KEY_FILE)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(32).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker won the race; use its secret
        finally:
            os.unlink(tmp)
    with open(path, "rb") as f:
        secret = f.read().strip()
    if not secret:
        raise RuntimeError(f"{path} is empty; delete it to create a new fingerprint secret")
    return secret


def credential_from_headers(headers: Iterable[tuple[str, str]]) -> str | None:
    """The client's API credential: `Authorization: Bearer ...` (OpenAI) or `api-key` (Azure)."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else value.strip()
        if lowered == "api-key":
            return value.strip()
    return None


class Fingerprinter:
    """credential -> `kfp_` + 16 hex digits of HMAC-SHA256(secret, credential).

    A process sees few distinct keys, so results are kept in a small in-memory map (an HMAC per
    request was visible in the hot path's profile). The map lives only in this process's memory,
    like the request that carried the key; it is cleared when full rather than grown."""

    CACHE_SIZE = 1024

    def __init__(self, secret: bytes | str) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._cache: dict[str, str] = {}

    def __call__(self, credential: str | None) -> str | None:
        if not credential:
            return None
        cached = self._cache.get(credential)
        if cached is not None:
            return cached
        digest = hmac.new(self._secret, credential.encode("utf-8", "surrogateescape"), hashlib.sha256)
        fingerprint = "kfp_" + digest.hexdigest()[:16]
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[credential] = fingerprint
        return fingerprint

    @classmethod
    def for_settings(cls, settings: Settings) -> "Fingerprinter":
        if settings.fingerprint_secret:
            return cls(settings.fingerprint_secret)
        return cls(load_or_create_secret(settings.store))
