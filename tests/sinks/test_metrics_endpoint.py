"""The aiohttp handler that exposes a registry, served on loopback."""

from __future__ import annotations


from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import Settings
from proxy.sinks.metrics import MetricsSink, metrics_handler
from tests.sinks import factories as f


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_metrics_handler_serves_text_and_openmetrics(aiohttp_client):
    registry = CollectorRegistry()
    sink = MetricsSink(registry, Settings(vector_store_gauge_limit=5))
    ex = f.exchange()
    sink.on_exchange(ex, [f.exchange_fact(ex), f.vector_store("vs_1", 123)])
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    client = await aiohttp_client(app)
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    samples = parse(await resp.text())
    key = (("api_version", "v2"), ("operation", "runs.retrieve"), ("status_class", "2xx"))
    assert samples[("assistants_audit_exchanges_total", key)] == 1
    assert samples[("assistants_audit_vector_store_usage_bytes", (("vector_store_id", "vs_1"),))] == 123
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await resp.text()).rstrip().endswith("# EOF")
