"""The vector store sampler: storage is billed by size over time, and a size only changes in the
store where someone looks. Orphaned stores nobody touches cost most and are seen least, so with
`--sample-vector-stores EVERY` the proxy itself lists every vector store of one key
(`--sampler-key`, else OPENAI_API_KEY) every EVERY seconds and records each page as an exchange
of origin ``sampler`` (parsed like any list response into vector store observations).

One sampler per proxy: it runs in worker w0 only, as a task owned by the app's cleanup_ctx.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from proxy.config import Settings
from proxy.serving.exchange import Recorder
from proxy.serving.fingerprint import Fingerprinter
from proxy.sources.owncalls import recorded_get

log = logging.getLogger("assistants_audit.sampler")

AZURE_API_VERSION = "2024-05-01-preview"
PAGE_LIMIT = 100


def _is_azure(upstream: str) -> bool:
    host = URL(upstream).host or ""
    return host.endswith((".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com"))


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body as JSON bytes; it is recorded as sent, but the sampler needs `has_more`/`last_id`."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class VectorStoreSampler:
    """Lists all vector stores of one key, page by page, submitting each page to the recorder."""

    def __init__(
        self,
        *,
        upstream: str,
        api_key: str,
        session: aiohttp.ClientSession,
        recorder: Recorder,
        key_fingerprint: str | None,
        every: float,
        worker: str = "sampler",
        max_pages: int = 1000,
        page_limit: int = PAGE_LIMIT,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.azure = _is_azure(self.upstream)
        self._api_key = api_key
        self.session = session
        self.recorder = recorder
        self.key_fingerprint = key_fingerprint
        self.every = every
        self.worker = worker
        self.max_pages = max_pages
        self.page_limit = page_limit
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock
        self.sweeps = 0
        self.failures = 0

    def _request(self, after: str | None) -> tuple[str, str, dict[str, str]]:
        params = [f"limit={self.page_limit}"]
        if after:
            params.append(f"after={after}")
        if self.azure:
            path = "/openai/vector_stores"
            params.insert(0, f"api-version={AZURE_API_VERSION}")
            headers = {"api-key": self._api_key}
        else:
            path = "/v1/vector_stores"
            headers = {"authorization": f"Bearer {self._api_key}"}
        headers.update({"openai-beta": "assistants=v2", "accept": "application/json",
                        "user-agent": "assistants-audit-sampler"})
        return path, "&".join(params), headers

    async def sample_once(self) -> int:
        """One sweep over all pages; returns the number of vector stores listed."""
        after: str | None = None
        listed = 0
        for _ in range(self.max_pages):
            page = await self._page(after)
            if page is None:
                return listed
            data = page.get("data") if isinstance(page, dict) else None
            items = data if isinstance(data, list) else []
            listed += len(items)
            last = page.get("last_id") or (items[-1].get("id") if items and isinstance(items[-1], dict) else None)
            if not page.get("has_more") or not last:
                break
            after = str(last)
        self.sweeps += 1
        return listed

    async def _page(self, after: str | None) -> dict[str, Any] | None:
        path, query, headers = self._request(after)
        status, response_headers, body = await recorded_get(
            self.session, self.recorder, upstream=self.upstream, path=path, query=query, headers=headers,
            timeout=self.timeout, origin="sampler", worker=self.worker, key_fingerprint=self.key_fingerprint,
            started_at=self.clock())
        if status != 200:
            self.failures += 1
            if status is not None:
                log.warning("vector store sampling: upstream answered %d", status)
            return None
        try:
            page = orjson.loads(_decoded(body, dict(response_headers).get("content-encoding")))
        except (orjson.JSONDecodeError, OSError, zlib.error):
            self.failures += 1
            return None
        return page if isinstance(page, dict) else None

    async def run(self) -> None:
        """Sweep, then wait EVERY seconds, until cancelled. A failed sweep is retried next time."""
        while True:
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the sampler must never take the proxy down
                self.failures += 1
                log.exception("vector store sampling sweep failed")
            await asyncio.sleep(self.every)


SAMPLER = web.AppKey("vector_store_sampler", VectorStoreSampler)


def sampler_key(settings: Settings, env: dict[str, str] | None = None) -> str | None:
    """The key the sampler lists vector stores with: --sampler-key, else OPENAI_API_KEY."""
    return settings.sampler_key or (os.environ if env is None else env).get("OPENAI_API_KEY")


def sampler_ctx(
    settings: Settings,
    recorder: Recorder,
    *,
    fingerprint: Callable[[str], str | None] | None = None,
    env: dict[str, str] | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx for the proxy app: starts the sampler task (if `settings.sample_vector_stores`
    is set) with its own client session, and cancels it on shutdown. Add it to one worker only."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        every = settings.sample_vector_stores
        key = sampler_key(settings, env)
        if every is None:
            yield
            return
        if not key:
            log.warning("--sample-vector-stores is set but there is no --sampler-key or OPENAI_API_KEY: not sampling")
            yield
            return
        fp = Fingerprinter.for_settings(settings) if fingerprint is None else fingerprint
        # raw bytes as on the wire, like the forwarder: the parser handles Content-Encoding itself
        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False)
        sampler = VectorStoreSampler(upstream=settings.upstream, api_key=key, session=session,
                                     recorder=recorder, key_fingerprint=fp(key), every=float(every))
        app[SAMPLER] = sampler
        task = asyncio.create_task(sampler.run(), name="vector-store-sampler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await session.close()

    return ctx
