"""Build Exchanges from the committed fixtures (tests/fixtures/recordings, made by
scripts/extract_recordings.py) exactly as the forwarder would hand them to the recorder."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

from proxy.serving.exchange import Exchange
from tests.exchanges import exchange as make

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "recordings"
T0 = 1714433700.0


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def exchange(
    name: str,
    *,
    exchange_id: str | None = None,
    started_at: float = T0,
    request_headers: list[tuple[str, str]] = (),
    response_body: bytes | None = None,
    response_headers: list[tuple[str, str]] | None = None,
    gzip_response: bool = False,
    cap: int | None = None,
    origin: str = "client",
    status: int | None = None,
    error_type: str | None = None,
) -> Exchange:
    fx = load(name)
    req = fx["request_body"].encode()
    resp = response_body if response_body is not None else fx["response_body"].encode()
    resp_headers = [tuple(h) for h in fx["response_headers"]] if response_headers is None else list(response_headers)
    if gzip_response:
        resp = gzip.compress(resp)
        resp_headers.append(("content-encoding", "gzip"))
    size = len(resp)
    truncated = cap is not None and size > cap
    if truncated:
        resp = resp[:cap]
    return make(
        exchange_id=exchange_id or f"ex_{name}",
        origin=origin,
        started_at=started_at,
        ttfb_s=0.05,
        duration=0.2,
        method=fx["method"],
        path=fx["path"],
        query=fx["query"],
        request_headers=tuple(request_headers)
        + tuple(tuple(h) for h in fx["request_headers"] if h[0] not in {k for k, _ in request_headers}),
        key_fingerprint="fp_test",
        request_body=req,
        status=fx["status"] if status is None else status,
        response_headers=tuple(resp_headers),
        body=resp,
        response_body_size=size,
        response_body_truncated=truncated,
        error_type=error_type,
        upstream="",
    )


def rows(con, sql: str, *params) -> list[dict]:
    # TIMESTAMPTZ values come back through epoch() (duckdb's own conversion needs pytz, not installed)
    described = con.execute(f"DESCRIBE {sql}", list(params)).fetchall()
    tz_cols = {name for name, ctype, *_ in described if ctype.startswith("TIMESTAMP WITH TIME ZONE")}
    select = ", ".join(f'epoch("{n}") AS "{n}"' if n in tz_cols else f'"{n}"' for n, *_ in described)
    cur = con.execute(f"SELECT {select} FROM ({sql})", list(params))
    names = [d[0] for d in cur.description]
    return [
        {n: (datetime.fromtimestamp(v, tz=timezone.utc) if n in tz_cols and v is not None else v) for n, v in zip(names, r)}
        for r in cur.fetchall()
    ]
