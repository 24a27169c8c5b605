"""Responses and Conversations traffic cannot grow the exposition either: random response objects
and streams (statuses, models, error codes, incomplete reasons, usage good and impossible, output
items of known and made-up types) mixed with the random Assistants traffic, through the real parser
and metrics sink. Every label value stays in its vocabulary and the series under the README's bound."""

from __future__ import annotations

import json
import random

import pytest
from prometheus_client import CollectorRegistry

from proxy.assistants.parse import parse
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.sinks.metrics import MetricsSink, series_count
from tests.exchanges import exchange
from tests.sinks.test_metrics_cardinality import (
    GAUGE_LIMIT,
    README_BOUND,
    _exchange,
    _word,
    assert_labels_in_vocabulary,
    series_bound,
)

PATHS = ["/v1/responses", "/v1/responses/{id}", "/v1/responses/{id}/cancel", "/openai/responses",
         "/openai/v1/responses", "/v1/conversations", "/v1/conversations/{id}/items", "/v1/responses/{id}/input_items"]
ITEM_TYPES = ["function_call", "file_search_call", "web_search_call", "code_interpreter_call", "mcp_call", "message",
              "reasoning", "custom_tool_call", "image_generation_call"]


def _response_object(rng: random.Random) -> dict:
    usage = rng.choice([
        None, {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
               "input_tokens_details": {"cached_tokens": rng.randint(0, 10)},
               "output_tokens_details": {"reasoning_tokens": rng.randint(0, 5)}},
        {"input_tokens": -3, "output_tokens": 1}, {"input_tokens": 2**62, "output_tokens": 0}, _word(rng),
    ])
    items = [{"id": f"it_{rng.getrandbits(40):x}", "call_id": f"call_{rng.getrandbits(40):x}",
              "type": rng.choice([*ITEM_TYPES, f"{_word(rng, 6)}_call", _word(rng)]), "name": _word(rng),
              "status": rng.choice(["completed", "failed", _word(rng)])} for _ in range(rng.randint(0, 3))]
    return {
        "id": f"resp_{rng.getrandbits(64):x}", "object": "response", "created_at": 1_700_000_000,
        "model": rng.choice(["gpt-4o", "o4-mini", _word(rng), "x" * 300]),
        "status": rng.choice(["completed", "failed", "incomplete", "cancelled", "queued", "in_progress", _word(rng)]),
        "background": rng.random() < 0.3, "completed_at": rng.choice([None, 1_700_000_003]),
        "error": rng.choice([None, {"code": rng.choice(["server_error", "vector_store_timeout", _word(rng)]),
                                    "message": "m"}]),
        "incomplete_details": rng.choice([None, {"reason": rng.choice(["max_output_tokens", _word(rng)])}]),
        "conversation": rng.choice([None, {"id": f"conv_{rng.getrandbits(40):x}"}]),
        "usage": usage, "output": items, "tools": [{"type": rng.choice(["file_search", _word(rng)])}],
    }


def _responses_exchange(rng: random.Random, i: int) -> Exchange:
    path = rng.choice(PATHS).replace("{id}", f"resp_{rng.getrandbits(48):x}")
    stream = rng.random() < 0.3
    obj = _response_object(rng)
    if stream:
        names = ["response.created", "response.in_progress", rng.choice(["response.completed", "response.failed",
                                                                        "response.incomplete", _word(rng)])]
        body = "".join(f"event: {n}\ndata: {json.dumps({'type': n, 'response': obj})}\n\n" for n in names)
        body += "".join(f"event: response.output_item.done\ndata: {json.dumps({'item': item})}\n\n"
                        for item in obj["output"])
        ctype = "text/event-stream"
    else:
        body, ctype = json.dumps(obj), "application/json"
    request = {"model": _word(rng), "stream": stream, "background": obj["background"],
               "input": [{"type": "function_call_output", "call_id": f"call_{rng.getrandbits(30)}", "output": "x"}]}
    return exchange(
        i, t=i, ttfb_s=rng.random(), duration=rng.random() * 100, proxy_overhead_s=0.001,
        method=rng.choice(["POST", "GET", "DELETE"]), path=path,
        query=rng.choice(["", "api-version=2025-04-01-preview", f"api-version={_word(rng)}"]),
        request_headers=(("content-type", "application/json"),), key_fingerprint=None,
        request_body=json.dumps(request).encode(), status=rng.choice([200, 200, 200, 400, 429, 500]),
        response_headers=(("content-type", ctype),), body=body.encode(),
        error_type=rng.choice([None] * 8 + ["upstream_reset"]),
        extra={"first_event_s": f"{rng.random():.6f}"} if stream else {},
    )


@pytest.mark.parametrize("seed", [7, 2025])
def test_random_responses_traffic_keeps_labels_in_vocabulary_and_series_bounded(seed):
    registry = CollectorRegistry()
    sink = MetricsSink(registry, Settings(vector_store_gauge_limit=GAUGE_LIMIT), clock=lambda: 1_700_000_000.0,
                       max_runs=500, max_responses=500)
    rng = random.Random(seed)
    for i in range(4000):
        ex = _responses_exchange(rng, i) if i % 2 else _exchange(rng, i)
        sink.on_exchange(ex, parse(ex, capture_content=False))
    labels = assert_labels_in_vocabulary(registry)
    # the random traffic reached the new metrics, with values of their own
    assert {"responses", "conversations", "assistants"} <= labels["api"]
    assert {"responses", "shared"} <= labels["generation"]
    assert {"server_error", "max_output_tokens", "other"} <= labels["status_reason"]
    assert {"function", "mcp", "other"} <= labels["type"] and labels["mode"] == {"sync", "stream", "background"}
    assert "response" in labels["object"]
    bound = series_bound(registry, 50)
    assert series_count(registry) <= series_bound(registry, GAUGE_LIMIT)
    assert bound <= README_BOUND, bound
