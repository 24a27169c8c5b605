"""With several worker processes, one scrape must see the sum of all of them (the recorder process
follows every worker's journal, so its one registry counts them all)."""

from __future__ import annotations

import time

import pytest

from tests.sinks.serving import API_HEADERS, http_get, scrape, serve

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
