"""Server-sent events as OpenAI writes them: `event: <name>` / `data: <compact JSON>`."""

from __future__ import annotations

import json

DONE = b"event: done\ndata: [DONE]\n\n"


def encode(name: str, payload: object) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {data}\n\n".encode()
