"""Calls the proxy makes on its own behalf (enrichment, the vector store sampler): one GET to the
upstream, recorded as an `Exchange` of that origin, like a client's call, credentials left out."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from proxy.serving.exchange import SECRET_HEADERS, Exchange, Headers, Recorder, new_exchange_id

log = logging.getLogger("assistants_audit.owncalls")


async def recorded_get(
    session: aiohttp.ClientSession,
    recorder: Recorder,
    *,
    upstream: str,
    path: str,
    query: str,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
    origin: str,
    worker: str,
    key_fingerprint: str | None,
    started_at: float,
) -> tuple[int | None, Headers, bytes]:
    """GET upstream+path?query, submit the exchange, return (status, response headers, body);
    status is None when the upstream could not be reached or timed out."""
    started = time.perf_counter()
    status: int | None = None
    body = b""
    response_headers: Headers = ()
    error_type: str | None = None
    ttfb: float | None = None
    try:
        async with session.get(f"{upstream}{path}?{query}", headers=headers, timeout=timeout) as resp:
            ttfb = time.perf_counter() - started
            status = resp.status
            response_headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.raw_headers)
            body = await resp.read()
    except asyncio.TimeoutError:
        error_type = "upstream_timeout"
    except aiohttp.ClientError as exc:
        error_type = "upstream_unreachable"
        log.info("%s call to %s failed: %s", origin, path, type(exc).__name__)
    recorder.submit(Exchange(
        exchange_id=new_exchange_id(), worker=worker, origin=origin, started_at=started_at, ttfb_s=ttfb,
        duration_s=time.perf_counter() - started, proxy_overhead_s=0.0, method="GET", path=path, query=query,
        request_headers=tuple((k, v) for k, v in headers.items() if k.lower() not in SECRET_HEADERS),
        key_fingerprint=key_fingerprint, request_body=b"", request_body_size=0, status=status,
        response_headers=response_headers, response_body=body, response_body_size=len(body),
        error_type=error_type, upstream=upstream,
    ))
    return status, response_headers, body
