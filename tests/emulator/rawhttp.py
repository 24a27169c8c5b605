"""Raw HTTP to the emulator with http.client: bytes and key order exactly as sent (the SDK would
parse them away)."""

from __future__ import annotations

import http.client
import json

V2 = {"Authorization": "Bearer sk-test", "OpenAI-Beta": "assistants=v2"}


def raw(url: str, method: str, path: str, body: object = None, headers: dict | None = None):
    """One request: status, headers (lower-case names) and the raw body bytes."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    sent = dict(V2, **(headers or {}))
    payload = None
    if isinstance(body, bytes | str):
        payload = body.encode() if isinstance(body, str) else body
    elif body is not None:
        payload = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=payload, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def call_json(url: str, method: str, path: str, body: object = None, headers: dict | None = None) -> dict:
    status, _, data = raw(url, method, path, body, headers)
    assert status == 200, data[:300]
    return json.loads(data)


def sse_events(data: bytes) -> list[tuple[str, object]]:
    events = []
    for block in data.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            payload = fields["data"]
            events.append((fields["event"], payload if payload == "[DONE]" else json.loads(payload)))
    return events
