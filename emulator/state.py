"""In-memory state: every object the emulator knows, deterministic ids, pagination."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import Clock
from emulator.errors import bad_request

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# prefix -> (separator, length, alphabet) as OpenAI formats its ids
_ID_FORMATS: dict[str, tuple[str, int, str]] = {
    "asst": ("_", 24, _ALPHABET),
    "thread": ("_", 24, _ALPHABET),
    "msg": ("_", 24, _ALPHABET),
    "run": ("_", 24, _ALPHABET),
    "step": ("_", 24, _ALPHABET),
    "call": ("_", 24, _ALPHABET),
    "file": ("-", 22, _ALPHABET),
    "vs": ("_", 24, _ALPHABET),
    "vsfb": ("_", 32, "0123456789abcdef"),
    "req": ("_", 32, "0123456789abcdef"),
}


class Ids:
    """Ids are a hash of (seed, counter): the same seed and the same calls give the same ids."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.counter = 0

    def new(self, prefix: str) -> str:
        self.counter += 1
        sep, length, alphabet = _ID_FORMATS[prefix]
        digest = hashlib.sha256(f"{self.seed}:{prefix}:{self.counter}".encode()).digest()
        n = int.from_bytes(digest, "big")
        chars = []
        for _ in range(length):
            n, rem = divmod(n, len(alphabet))
            chars.append(alphabet[rem])
        return prefix + sep + "".join(chars)


@dataclass
class Store:
    clock: Clock
    ids: Ids
    assistants: dict[str, dict] = field(default_factory=dict)
    threads: dict[str, dict] = field(default_factory=dict)
    messages: dict[str, dict] = field(default_factory=dict)  # id -> message (all threads)
    thread_messages: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, Any] = field(default_factory=dict)  # id -> runs.Run
    thread_runs: dict[str, list[str]] = field(default_factory=dict)
    steps: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    file_bytes: dict[str, bytes] = field(default_factory=dict)
    vector_stores: dict[str, dict] = field(default_factory=dict)
    vs_files: dict[str, dict[str, dict]] = field(default_factory=dict)  # vs_id -> file_id -> vs file
    batches: dict[str, dict] = field(default_factory=dict)
    active_runs: dict[str, None] = field(default_factory=dict)  # ordered set of runs with pending actions
    processing_seconds: float = 2.0  # how long a vector store file takes to process

    def now(self) -> int:
        return int(self.clock.now())


def paginate(items: list[dict], query: dict[str, str], *, default_order: str = "desc") -> tuple[list[dict], bool]:
    """`items` in creation order. Cursor pagination as OpenAI does it (limit/order/after/before)."""
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise bad_request("Invalid 'limit': expected an integer.", param="limit", code="invalid_type") from None
    if not 1 <= limit <= 100:
        raise bad_request(
            f"Invalid 'limit': integer below minimum value or above maximum value. Expected a value between 1 and "
            f"100, but got {limit} instead.", param="limit", code="integer_out_of_range")
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order", code="invalid_value")
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [item["id"] for item in ordered]
    after, before = query.get("after"), query.get("before")
    if after:
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    if before:
        ids = [item["id"] for item in ordered]
        if before in ids:
            ordered = ordered[: ids.index(before)]
            return ordered[-limit:], len(ordered) > limit
        ordered = []
    return ordered[:limit], len(ordered) > limit
