"""The benchmark's upstream speaks the Responses API as the official `openai` SDK reads it, and the
long stream follows the recorded event sequence (tests/fixtures/spec/responses_recorded.json), so
the Responses paths measure what real traffic costs."""

import asyncio
import itertools
import json
from pathlib import Path

import openai

from bench.loadgen import push
from bench.upstream import RESPONSE_STREAM_EVENTS, make_app
from tests.servers import serve

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures" / "spec" / "responses_recorded.json").read_text())


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="sk-bench-test", max_retries=0)


def test_plain_response_is_a_response_the_sdk_reads():
    with serve(make_app) as upstream:
        response = _client(upstream.url).responses.create(model="gpt-4o", input="How long do refunds take?")
    assert response.status == "completed"
    assert response.output[0].type == "message"
    assert response.output_text.startswith("Refunds are issued within 14 days")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_long_stream_follows_the_recorded_event_sequence():
    with serve(make_app) as upstream:
        stream = _client(upstream.url).responses.create(model="gpt-4o", input="How long do refunds take?",
                                                         stream=True)
        events = list(stream)
    assert len(events) == RESPONSE_STREAM_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # the same sequence as the recorded stream, runs of deltas collapsed
    def shape(names):
        return [name for name, _ in itertools.groupby(names)]
    assert shape(e.type for e in events) == shape(RECORDED["stream"]["event_names"])
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert deltas == done.text
    final = events[-1].response
    assert final.status == "completed" and final.output_text == done.text
    assert final.usage.output_tokens == sum(e.type == "response.output_text.delta" for e in events)


def test_outsized_answers_are_the_size_asked_for():
    with serve(make_app) as upstream:
        streamed = asyncio.run(push(upstream.url, events=5_000, output_bytes=None))
        plain = _client(upstream.url).responses.create(model="gpt-4o", input="Hi",
                                                        extra_headers={"X-Bench-Output-Bytes": "300000"})
    assert streamed["status"] == 200 and streamed["events"] == 5_000
    assert streamed["user_agent"].startswith("assistants-audit-bench/memory")
    assert len(plain.output_text) == 300_000
