"""No request or upstream input can grow the exposition: thousands of random exchanges (paths,
methods, beta headers, models, SDK headers, statuses, error types, run and step objects, tool types,
vector stores) go through the real parser and the real metrics sink; every label value must come
from its vocabulary or cap, and the series count must stay under the bound those imply."""

from __future__ import annotations

import json
import math
import random
import string

import pytest
from prometheus_client import CollectorRegistry

from proxy.assistants.parse import parse
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.sinks import metrics as M
from proxy.sinks.metrics import CAPPED_LABELS, FIXED_LABELS, SERIES_LIMIT, MetricsSink, series_count
from tests.exchanges import exchange

GAUGE_LIMIT = 5
# the README's "Bounded cardinality" promise for the default --vector-store-gauge-limit of 50
README_BOUND = 100_000


def _word(rng: random.Random, n: int = 12) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_.=/: ") for _ in range(rng.randint(1, n)))


PATHS = [
    "/v1/threads/{id}/runs/{id}", "/v1/threads/{id}/runs", "/v1/threads/runs", "/v1/assistants", "/v1/assistants/{id}",
    "/v1/threads/{id}/runs/{id}/steps", "/v1/vector_stores/{id}", "/v1/vector_stores", "/v1/files/{id}/content",
    "/v1/threads/{id}/runs/{id}/submit_tool_outputs", "/v1/vector_stores/{id}/search", "/{w}/{w}", "/v1/{w}",
    "/openai/threads/{id}/runs", "/api/projects/{w}/threads/{id}/runs/{id}", "/api/projects/{w}/{w}",
]


def _run(rng: random.Random) -> dict:
    usage = rng.choice([
        None, {"prompt_tokens": rng.randint(0, 5000), "completion_tokens": 7, "total_tokens": None},
        {"prompt_tokens": -rng.randint(1, 10**6), "completion_tokens": 1, "total_tokens": 0},
        {"prompt_tokens": 2**63 - 1, "completion_tokens": 0, "total_tokens": 2**63 - 1},
        {"prompt_tokens": rng.random(), "completion_tokens": True, "total_tokens": "x"}, _word(rng),
    ])
    return {
        "id": f"run_{rng.getrandbits(48):x}", "object": "thread.run", "thread_id": f"thread_{rng.getrandbits(32):x}",
        "assistant_id": f"asst_{rng.getrandbits(32):x}", "model": rng.choice([_word(rng), "gpt-4o", "x" * 200]),
        "status": rng.choice(["completed", "failed", "cancelled", "expired", "incomplete", "queued", _word(rng)]),
        "created_at": 1_700_000_000, "started_at": 1_700_000_001, "completed_at": 1_700_000_002,
        "last_error": rng.choice([None, {"code": _word(rng), "message": "m"}, {"code": "server_error"}]),
        "usage": usage, "tools": [{"type": _word(rng)}],
    }


def _step(rng: random.Random) -> dict:
    calls = [{"id": f"call_{rng.getrandbits(40):x}", "type": rng.choice(["function", "file_search", _word(rng)]),
              "function": {"name": _word(rng), "arguments": "{}"}} for _ in range(rng.randint(0, 3))]
    return {"id": f"step_{rng.getrandbits(40):x}", "object": "thread.run.step", "run_id": f"run_{rng.getrandbits(8)}",
            "type": "tool_calls", "status": "completed", "step_details": {"type": "tool_calls", "tool_calls": calls},
            "usage": rng.choice([None, {"prompt_tokens": -5, "completion_tokens": 1, "total_tokens": -4}])}


def _vector_store(rng: random.Random) -> dict:
    return {"id": f"vs_{rng.getrandbits(48):x}", "object": "vector_store", "usage_bytes": rng.randint(0, 10**12),
            "status": _word(rng), "file_counts": {"completed": rng.randint(0, 9)}}


def _response(rng: random.Random) -> tuple[int, bytes, str]:
    status = rng.choice([200, 200, 200, 201, 400, 401, 404, 429, 500, 503, 299, 999, 100, rng.randint(100, 999)])
    kind = rng.randrange(6)
    if kind == 0:
        body = {"error": {"type": _word(rng), "code": _word(rng), "message": "no"}}
    elif kind == 1:
        body = _run(rng)
    elif kind == 2:
        body = {"object": "list", "data": [_step(rng) for _ in range(rng.randint(1, 3))]}
    elif kind == 3:
        body = _vector_store(rng)
    elif kind == 4:
        events = "".join(f"event: thread.run.{rng.choice(['completed', 'failed'])}\ndata: {json.dumps(_run(rng))}\n\n"
                         for _ in range(2))
        return status, (events + "event: error\ndata: {\"error\": {\"type\": \"" + _word(rng) + "\"}}\n\n").encode(), (
            "text/event-stream")
    else:
        return status, _word(rng, 40).encode(), rng.choice(["application/json", "text/plain", _word(rng)])
    return status, json.dumps(body).encode(), "application/json"


def _exchange(rng: random.Random, i: int) -> Exchange:
    path = rng.choice(PATHS).replace("{id}", _word(rng)).replace("{w}", _word(rng)).replace(" ", "%20")
    headers = [("content-type", "application/json")]
    if rng.random() < 0.9:
        headers.append(("openai-beta", rng.choice([f"assistants={_word(rng)}", "assistants=v2", "assistants=v1",
                                                   _word(rng), f"assistants=v2,{_word(rng)}=1", "ASSISTANTS=V2"])))
    if rng.random() < 0.8:
        headers += [("x-stainless-lang", _word(rng)), ("x-stainless-package-version", _word(rng))]
    status, body, ctype = _response(rng)
    request = json.dumps({"model": _word(rng), "assistant_id": _word(rng), "stream": rng.random() < 0.2}).encode()
    return exchange(
        i, worker=rng.choice(["w0", "w1"]), origin=rng.choice(["client"] * 8 + ["enrichment"]), t=i,
        ttfb_s=rng.random(), duration=rng.random() * 100,
        proxy_overhead_s=rng.random() / 100, method=rng.choice(["GET", "POST", "DELETE", "PATCH", _word(rng, 6)]),
        path=path, query=rng.choice(["", f"api-version={_word(rng)}", "api-version=2024-05-01-preview"]),
        request_headers=tuple(headers), key_fingerprint=None, request_body=request,
        status=None if status == 100 and rng.random() < 0.5 else status,
        response_headers=(("content-type", ctype),), body=body,
        error_type=rng.choice([None] * 6 + ["upstream_timeout", "upstream_reset", "client_disconnected", _word(rng)]),
    )


def _per_child_samples(family) -> int:
    """Samples one label set of this family exposes."""
    if family.type == "histogram":
        buckets = {s.labels["le"] for s in family.samples if s.name.endswith("_bucket")}
        return len(buckets) + 3  # _bucket per le, _count, _sum, _created
    return 2 if family.type == "counter" else 1  # counters: _total and _created


def _label_values(name: str) -> int:
    if name in FIXED_LABELS:
        return len(FIXED_LABELS[name])
    return CAPPED_LABELS[name] + 3  # the first N values, then "other", "unknown" / "none" / ""


def series_bound(registry: CollectorRegistry, gauge_limit: int) -> int:
    """The most series the sink can expose: per metric, at most every combination its label
    vocabularies allow and never more than SERIES_LIMIT label sets plus the overflow one; the
    per-store gauges only for the `gauge_limit` largest stores."""
    bound = 0
    for family in registry.collect():
        label_names = {k for s in family.samples for k in s.labels if k != "le"}
        if "vector_store_id" in label_names:
            per_store = 4 if family.name.endswith("_files") else 1
            bound += per_store * gauge_limit
            continue
        combinations = math.prod(_label_values(n) for n in label_names)
        bound += min(combinations, SERIES_LIMIT + 1) * _per_child_samples(family)
    return bound


def _drive(n: int, seed: int) -> tuple[MetricsSink, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = Settings(vector_store_gauge_limit=GAUGE_LIMIT)
    sink = MetricsSink(registry, settings, clock=lambda: 1_700_000_000.0, max_runs=500)
    rng = random.Random(seed)
    for i in range(n):
        ex = _exchange(rng, i)
        sink.on_exchange(ex, parse(ex, capture_content=False))
    return sink, registry


def assert_labels_in_vocabulary(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Every label value exposed comes from its vocabulary or within its cap; returns them by label."""
    distinct: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name != "le":
                    distinct.setdefault(name, set()).add(value)
    unknown_labels = set(distinct) - set(FIXED_LABELS) - set(CAPPED_LABELS)
    assert not unknown_labels, f"labels without a vocabulary or cap: {unknown_labels}"
    for name, values in distinct.items():
        if name in FIXED_LABELS:
            assert values <= FIXED_LABELS[name], (name, sorted(values - FIXED_LABELS[name])[:10])
        elif name == "vector_store_id":
            assert len(values) <= GAUGE_LIMIT
        else:
            assert len(values) <= CAPPED_LABELS[name] + 3, (name, len(values))
    return distinct


@pytest.mark.parametrize("seed", [13, 2024])
def test_random_traffic_keeps_every_label_in_its_vocabulary_and_the_series_bounded(seed):
    sink, registry = _drive(3000, seed)
    assert_labels_in_vocabulary(registry)
    n = series_count(registry)
    bound = series_bound(registry, GAUGE_LIMIT)
    assert n <= bound, (n, bound)
    # twice the traffic, and the exposition holds no series the first half could not have made
    rng = random.Random(seed + 1)
    for i in range(3000):
        ex = _exchange(rng, 10_000 + i)
        sink.on_exchange(ex, parse(ex, capture_content=False))
    assert series_count(registry) <= bound
    assert series_bound(registry, 50) <= README_BOUND


def test_raw_beta_values_never_become_labels():
    """The case the issue measured: 3,000 requests, each with its own `assistants=<x>` value."""
    registry = CollectorRegistry()
    sink = MetricsSink(registry, Settings(vector_store_gauge_limit=GAUGE_LIMIT), clock=lambda: 1_700_000_000.0)
    before = None
    for i in range(3000):
        ex = exchange(
            i, ttfb_s=0.01, duration=0.02, path="/v1/assistants", request_headers=(("openai-beta", f"assistants=x{i}"),),
            key_fingerprint=None, response_headers=(("content-type", "application/json"),),
            body=b'{"object": "list", "data": []}',
        )
        sink.on_exchange(ex, parse(ex, capture_content=False))
        if i == 0:
            before = series_count(registry)
    assert series_count(registry) == before
    versions = {s.labels["api_version"] for m in registry.collect() for s in m.samples if "api_version" in s.labels}
    assert versions == {M.UNKNOWN}


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_vector_store_gauge_limit_is_the_number_of_stores_with_their_own_series(limit):
    """--vector-store-gauge-limit 0 means no per-store series at all (the org-wide totals stay)."""
    registry = CollectorRegistry()
    sink = MetricsSink(registry, Settings(vector_store_gauge_limit=limit), clock=lambda: 1_700_000_000.0)
    stores = [{"id": f"vs_{i}", "object": "vector_store", "created_at": 1_699_000_000, "name": None,
               "usage_bytes": (i + 1) * 1000, "status": "completed", "last_active_at": 1_699_999_000,
               "file_counts": {"in_progress": 0, "completed": 1, "failed": 0, "cancelled": 0, "total": 1}}
              for i in range(5)]
    body = json.dumps({"object": "list", "data": stores, "has_more": False}).encode()
    ex = Exchange(
        exchange_id="ex-vs", worker="w0", origin="client", started_at=1_700_000_000.0, ttfb_s=0.01,
        duration_s=0.02, proxy_overhead_s=0.001, method="GET", path="/v1/vector_stores", query="",
        request_headers=(("openai-beta", "assistants=v2"),), key_fingerprint=None, request_body=b"",
        request_body_size=0, status=200, response_headers=(("content-type", "application/json"),),
        response_body=body, response_body_size=len(body), upstream="http://upstream",
    )
    sink.on_exchange(ex, parse(ex, capture_content=False))
    exported = {s.labels["vector_store_id"] for family in registry.collect() for s in family.samples
                if "vector_store_id" in s.labels}
    assert exported == {f"vs_{i}" for i in range(4, 4 - limit, -1)}
    assert registry.get_sample_value("assistants_audit_vector_stores") == 5
