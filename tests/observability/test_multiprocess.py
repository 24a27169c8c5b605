"""With several worker processes, one scrape must see the sum of all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests.observability.serving import API_HEADERS, ROOT, http_get, scrape, serve

WORKER = textwrap.dedent(
    """
    import sys
    from types import SimpleNamespace
    from prometheus_client import CollectorRegistry
    from proxy.sinks.metrics import MetricsSink
    from tests.observability import factories as f

    name, n, vs_prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sink = MetricsSink(CollectorRegistry(), SimpleNamespace(vector_store_gauge_limit=50, prices=None))
    for i in range(n):
        ex = f.exchange(worker=name, t=i)
        sink.on_exchange(ex, [f.exchange_fact(ex), f.run(f"run_{name}_{i}", status="completed", prompt_tokens=10),
                              f.vector_store(f"{vs_prefix}{i}", 1000 * (i + 1))])
    sink.store.set_queue(depth=2, spooled=1)
    sink.flush()
    """
)


def test_two_processes_one_multiproc_dir(tmp_path):
    from proxy.sinks.metrics import multiprocess_registry

    path = str(tmp_path / "prom")
    os.makedirs(path)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": path, "PYTHONPATH": ROOT}
    for name, n, prefix in (("w0", 3, "vs_a"), ("w1", 5, "vs_b")):
        subprocess.run([sys.executable, "-c", WORKER, name, str(n), prefix], env=env, check=True, cwd=ROOT, timeout=60)
    registry = multiprocess_registry(path)
    get = registry.get_sample_value
    labels = {"operation": "runs.retrieve", "status_class": "2xx", "api_version": "v2"}
    assert get("assistants_audit_exchanges_total", labels) == 8
    assert get("assistants_audit_worker_exchanges_total", {"worker": "w0"}) == 3
    assert get("assistants_audit_worker_exchanges_total", {"worker": "w1"}) == 5
    assert get("assistants_audit_runs_total", {"status": "completed", "model": "gpt-4o", "last_error_code": ""}) == 8
    assert get("assistants_audit_tokens_total", {"model": "gpt-4o", "assistant": "asst_1", "token_type": "input"}) == 80
    assert get("assistants_audit_exchange_duration_seconds_count", labels) == 8
    # gauges: queue depth of both (dead processes are only dropped by mark_worker_dead)
    assert get("assistants_audit_store_queue_depth") == 4
    assert get("assistants_audit_vector_stores") == 8
    assert get("assistants_audit_vector_store_total_usage_bytes") == 1000 * (1 + 2 + 3) + 1000 * (1 + 2 + 3 + 4 + 5)
    assert get("assistants_audit_vector_store_usage_bytes", {"vector_store_id": "vs_b4"}) == 5000


def per_worker(served):
    scraped = scrape(f"{served.admin_url}/metrics")
    return scraped, {dict(labels)["worker"]: v for (name, labels), v in scraped.items()
                     if name == "assistants_audit_worker_exchanges_total"}


@pytest.mark.slow
def test_serve_workers_2_scrape_sees_both(emulator, tmp_path):
    with serve(emulator.url, str(tmp_path / "store"), "--workers", "2") as served:
        sent = 1  # serve() made one request to check it is up
        by_worker: dict[str, float] = {}
        deadline = time.monotonic() + 60
        # the second worker may still be starting: keep sending (a fresh connection each time,
        # so SO_REUSEPORT spreads them) until the scrape shows both
        while len(by_worker) < 2 and time.monotonic() < deadline:
            for _ in range(20):
                http_get(f"{served.url}/v1/assistants", API_HEADERS)
            sent += 20
            time.sleep(0.3)
            scraped, by_worker = per_worker(served)
        assert len(by_worker) == 2 and all(v > 0 for v in by_worker.values()), by_worker
        while sum(by_worker.values()) < sent and time.monotonic() < deadline:
            time.sleep(0.2)
            scraped, by_worker = per_worker(served)
        assert sum(by_worker.values()) == sent, by_worker
        key = ("assistants_audit_exchanges_total",
               (("api_version", "v2"), ("operation", "assistants.list"), ("status_class", "2xx")))
        assert scraped[key] == sent
