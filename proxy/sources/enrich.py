"""Enrichment: fetch the run steps of runs whose steps the client never looked at.

Clients that poll a run rarely list its steps, yet the steps carry the tool calls and the
file_search results. When the recorder sees a run reach a terminal state and has seen none of
its steps, the `EnrichmentSink` asks the `Enricher` to fetch them once, with the client's own
credential and `OpenAI-Beta` header, outside any client request (with the file_search results'
`include[]` for v2 runs only: v1 had no such option). The response is recorded as an
ordinary exchange of origin ``enrichment``, so it goes through the same parser and sinks.

The credential never leaves memory: the forwarder remembers it in a `CredentialCache` keyed by
its fingerprint (a bounded dict), and the enricher looks it up by the fingerprint recorded on the
run's exchange. After a restart (journal replay) there is no credential, so nothing is fetched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from proxy.serving.exchange import Exchange, Recorder
from proxy.assistants.facts import Fact, RunSnapshot, StepSnapshot
from proxy.lru import LRU
from proxy.sources.owncalls import recorded_get
from proxy.sinks.common import TERMINAL_RUN_STATUSES

log = logging.getLogger("assistants_audit.enrich")

FILE_SEARCH_INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"
# Headers copied from the client's request so the upstream sees the same identity and version.
_COPIED_HEADERS = ("openai-beta", "openai-organization", "openai-project")


class CredentialCache:
    """Fingerprint -> credential headers, in memory only, bounded (least recently used dropped)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._items: LRU[str, tuple[tuple[str, str], ...]] = LRU(maxsize)
        self._lock = threading.Lock()

    def remember(self, fingerprint: str | None, headers: tuple[tuple[str, str], ...]) -> None:
        if not fingerprint or not headers:
            return
        with self._lock:
            self._items.put(fingerprint, headers)

    def get(self, fingerprint: str | None) -> tuple[tuple[str, str], ...] | None:
        if not fingerprint:
            return None
        with self._lock:
            return self._items.get(fingerprint)


@dataclass(frozen=True, slots=True)
class EnrichRequest:
    """Occurs when a run reached a terminal state and none of its steps were seen."""

    run_id: str
    thread_id: str
    api_prefix: str  # the client's path up to /threads (e.g. /v1, /openai)
    query: str  # Azure's api-version, kept as the client sent it
    headers: tuple[tuple[str, str], ...]  # OpenAI-Beta etc. from the client, secrets excluded
    key_fingerprint: str | None
    # the run's Assistants API version (header, Azure api-version, or a v1-shaped object): the
    # file_search `include` exists only in v2 (v1 had retrieval, with no results to include)
    api_version: str | None = None


class Enricher:
    """Performs `EnrichRequest`s on the proxy's event loop with its pooled upstream session."""

    def __init__(
        self,
        *,
        upstream: str,
        session: aiohttp.ClientSession,
        recorder: Recorder,
        credentials: CredentialCache,
        loop: asyncio.AbstractEventLoop,
        worker: str = "enricher",
        max_concurrency: int = 4,
        max_pages: int = 5,
        timeout: float = 30.0,
        delay: float = 2.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.session = session
        self.recorder = recorder
        self.credentials = credentials
        self.loop = loop
        self.worker = worker
        self.max_pages = max_pages
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        # Clients often list steps right after the run ends: wait a little, then ask again
        # whether the steps are still unseen before spending an upstream call.
        self.delay = delay
        self.still_needed: Callable[[str], bool] = lambda run_id: True
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._lock = threading.Lock()
        self.skipped_no_credentials = 0

    def schedule(self, request: EnrichRequest) -> bool:
        """Called from the recorder thread. Returns False when it cannot be done (no credential)."""
        credential = self.credentials.get(request.key_fingerprint)
        if credential is None or self.loop.is_closed():
            self.skipped_no_credentials += 1
            return False
        future = asyncio.run_coroutine_threadsafe(self._fetch_all(request, credential), self.loop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return True

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def close(self) -> None:
        """Cancel what is still in flight (at shutdown): enrichment is best effort."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.cancel()

    async def _fetch_all(self, request: EnrichRequest, credential: tuple[tuple[str, str], ...]) -> None:
        after: str | None = None
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self.still_needed(request.run_id):
            return
        async with self._semaphore:
            for _ in range(self.max_pages):
                after = await self._fetch_page(request, credential, after)
                if after is None:
                    return

    async def _fetch_page(
        self, request: EnrichRequest, credential: tuple[tuple[str, str], ...], after: str | None
    ) -> str | None:
        path = f"{request.api_prefix}/threads/{request.thread_id}/runs/{request.run_id}/steps"
        params = [p for p in request.query.split("&") if p]
        params.append("limit=100")
        if request.api_version == "v2":
            params.append("include[]=" + FILE_SEARCH_INCLUDE)
        if after:
            params.append("after=" + after)
        query = "&".join(params)
        headers = dict(request.headers)
        headers.update(credential)
        headers["accept"] = "application/json"
        headers["user-agent"] = "assistants-audit-enricher"
        status, _, body = await recorded_get(
            self.session, self.recorder, upstream=self.upstream, path=path, query=query, headers=headers,
            timeout=self.timeout, origin="enrichment", worker=self.worker,
            key_fingerprint=request.key_fingerprint, started_at=time.time())
        if status != 200 or not body:
            return None
        return _next_cursor(body)


def _next_cursor(body: bytes) -> str | None:
    import orjson

    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(page, dict) and page.get("has_more") and page.get("last_id"):
        return str(page["last_id"])
    return None


def _api_prefix(path: str) -> str | None:
    index = path.find("/threads/")
    return path[:index] if index >= 0 else None


class EnrichmentSink:
    """Watches facts for terminal runs whose steps were never seen and asks for them once."""

    def __init__(self, enricher: Enricher, *, max_tracked: int = 100_000) -> None:
        self.enricher = enricher
        enricher.still_needed = lambda run_id: run_id not in self._steps_seen
        self.max_tracked = max_tracked
        self._steps_seen: LRU[str, bool] = LRU(max_tracked)
        self._requested: LRU[str, bool] = LRU(max_tracked)
        self.requested = 0

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        terminal: list[RunSnapshot] = []
        for fact in facts:
            if isinstance(fact, StepSnapshot) and fact.run_id:
                self._steps_seen.put(fact.run_id, True)
            elif isinstance(fact, RunSnapshot) and fact.status in TERMINAL_RUN_STATUSES:
                terminal.append(fact)
        if exchange.origin == "enrichment":
            if exchange.status is not None and exchange.status < 500:
                for fact in terminal:
                    self._steps_seen.put(fact.run_id, True)
            return
        for run in terminal:
            if run.run_id in self._steps_seen or run.run_id in self._requested or not run.thread_id:
                continue
            prefix = _api_prefix(exchange.path)
            if prefix is None:
                continue
            self._requested.put(run.run_id, True)
            request = EnrichRequest(
                run_id=run.run_id,
                thread_id=run.thread_id,
                api_prefix=prefix,
                query="&".join(p for p in exchange.query.split("&") if p.startswith("api-version=")),
                headers=tuple((k, v) for k, v in exchange.request_headers if k in _COPIED_HEADERS),
                key_fingerprint=exchange.key_fingerprint,
                api_version=run.api_version,
            )
            if self.enricher.schedule(request):
                self.requested += 1

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
