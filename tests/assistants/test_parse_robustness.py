"""parse() never raises, whatever the upstream or client sent: it runs on the recorder thread and a
crash there would cost the exchange its facts."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.assistants.parse import parse
from proxy.assistants.facts import ExchangeFact
from tests.recording.recorded import exchange

KINDS = ["list", "thread.run", "thread.run.step", "thread.message", "assistant", "thread", "vector_store",
         "vector_store.deleted", "vector_store.file", "file", "assistant.deleted", "thread.deleted"]
KEYS = ["id", "object", "data", "status", "created_at", "usage", "tools", "file_ids", "step_details", "tool_calls",
        "required_action", "submit_tool_outputs", "function", "file_search", "results", "content", "text", "value",
        "file_counts", "usage_bytes", "bytes", "expires_after", "last_error", "attachments", "tool_resources",
        "deleted", "type", "code_interpreter", "outputs", "ranking_options", "score", "tool_outputs", "stream", "error"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(KINDS))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)),
                           max_leaves=30)

ROUTES = ["runs_retrieve_v2", "synthetic_steps_list_tools", "synthetic_runs_submit_tool_outputs", "vector_stores_list",
          "messages_create_v2", "vector_store_file_batches_create", "runs_streamed_create_v2"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ROUTES), json_values, json_values, st.booleans())
def test_arbitrary_json_never_raises(name, response, request, as_stream):
    base = exchange(name)
    body = json.dumps(response).encode()
    headers = (("content-type", "application/json"),)
    if as_stream:
        body = b"event: thread.run.created\ndata: " + body + b"\n\nevent: thread.run.step.completed\ndata: " + body + b"\n\n"
        headers = (("content-type", "text/event-stream"),)
    ex = dataclasses.replace(base, response_body=body, response_headers=headers, request_body=json.dumps(request).encode())
    facts = parse(ex, capture_content=True)
    assert isinstance(facts[0], ExchangeFact)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ROUTES), st.binary(max_size=300), st.sampled_from([None, "gzip", "deflate", "br", "zstd"]))
def test_arbitrary_bytes_never_raise(name, body, encoding):
    base = exchange(name)
    headers = tuple(base.response_headers) + ((("content-encoding", encoding),) if encoding else ())
    facts = parse(dataclasses.replace(base, response_body=body, response_headers=headers, request_body=body), capture_content=False)
    assert isinstance(facts[0], ExchangeFact)
