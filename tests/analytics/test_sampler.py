"""The vector store sampler against the emulator on loopback: it lists every store of its key,
page by page, records each page as an exchange of origin "sampler", and the parser turns those
into usage observations, including stores no client ever touched through the proxy."""

from __future__ import annotations

import asyncio
import io

import aiohttp

from proxy.serving.app import make_app
from proxy.assistants.parse import parse
from proxy.config import Settings
from proxy.assistants.facts import VectorStoreObservation
from proxy.sources.sampler import SAMPLER, VectorStoreSampler, sampler_ctx
from tests.plugins.proxy import ListRecorder
from tests.servers import ServerThread

KEY = "sk-sampler-secret-123"


def _orphaned_stores(emulator, n: int) -> dict[str, int]:
    client = emulator.client()
    sizes = {}
    for i in range(n):
        vs = client.vector_stores.create(name=f"orphan-{i}")
        if i == 0:
            f = client.files.create(file=("notes.txt", io.BytesIO(b"hello world " * 500)), purpose="assistants")
            client.vector_stores.files.create(vector_store_id=vs.id, file_id=f.id)
        sizes[vs.id] = 0
    for vs in client.vector_stores.list(limit=100):
        sizes[vs.id] = vs.usage_bytes
    return sizes


def _observations(exchanges) -> dict[str, VectorStoreObservation]:
    out = {}
    for ex in exchanges:
        for fact in parse(ex, capture_content=False):
            if isinstance(fact, VectorStoreObservation):
                out[fact.vector_store_id] = fact
    return out


def test_sweep_pages_through_all_stores_and_records_them(emulator):
    sizes = _orphaned_stores(emulator, 5)
    assert any(sizes.values())  # the store with a file has a size
    recorder = ListRecorder()

    async def sweep() -> int:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            sampler = VectorStoreSampler(upstream=emulator.url, api_key=KEY, session=session, recorder=recorder,
                                         key_fingerprint="kfp_sampler", every=60, page_limit=2)
            return await sampler.sample_once()

    assert asyncio.run(sweep()) == 5
    exchanges = recorder.exchanges
    assert len(exchanges) == 3  # 2 + 2 + 1
    assert {ex.origin for ex in exchanges} == {"sampler"}
    assert all(ex.status == 200 and ex.key_fingerprint == "kfp_sampler" for ex in exchanges)
    assert all(KEY not in repr(ex.request_headers) for ex in exchanges)
    observed = _observations(exchanges)
    assert {k: v.usage_bytes for k, v in observed.items()} == sizes
    assert {v.source for v in observed.values()} == {"sampler"}


def test_sampler_ctx_runs_in_the_proxy_app_until_shutdown(emulator):
    sizes = _orphaned_stores(emulator, 2)
    recorder = ListRecorder()
    settings = Settings(upstream=emulator.url, sample_vector_stores=0.05, sampler_key=KEY,
                        fingerprint_secret="s", admin_listen=None)

    def build():
        app = make_app(settings, recorder)
        app.cleanup_ctx.append(sampler_ctx(settings, recorder, env={}))
        return app

    server = ServerThread(build).start()
    try:
        recorder.wait_for(3, timeout=60)  # several sweeps, each one page
        sampler = server.app[SAMPLER]
        assert sampler.sweeps >= 2
    finally:
        server.stop()
    # the app's cleanup awaited the cancelled sampler task and its loop is closed: nothing runs any more
    assert server.loop.is_closed()
    assert set(_observations(recorder.exchanges)) == set(sizes)
    assert recorder.exchanges[0].key_fingerprint and recorder.exchanges[0].key_fingerprint != KEY


def test_sampler_off_unless_configured(emulator):
    recorder = ListRecorder()
    settings = Settings(upstream=emulator.url, admin_listen=None, fingerprint_secret="s")

    def build():
        app = make_app(settings, recorder)
        app.cleanup_ctx.append(sampler_ctx(settings, recorder, env={"OPENAI_API_KEY": KEY}))
        return app

    server = ServerThread(build).start()  # returns once the app's start-up (cleanup_ctx) has run
    try:
        assert SAMPLER not in server.app
    finally:
        server.stop()
    assert recorder.exchanges == []
