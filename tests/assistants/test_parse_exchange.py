"""ExchangeFact from recorded exchanges: route, version, client identity, errors, parse errors."""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from datetime import timezone

import pytest

from proxy.assistants.parse import api_version_from_beta, parse
from proxy.assistants.facts import ExchangeFact, RunSnapshot, VectorStoreObservation
from tests.recording.recorded import T0, exchange

PY_SDK = [
    ("user-agent", "OpenAI/Python 1.99.0"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "1.99.0"),
    ("x-stainless-poll-helper", "true"),
    ("x-stainless-retry-count", "2"),
]


def _ex(name: str, **kw) -> ExchangeFact:
    facts = parse(exchange(name, **kw), capture_content=False)
    assert isinstance(facts[0], ExchangeFact)
    return facts[0]


def test_recorded_v2_poll_with_python_sdk_headers():
    ef = _ex("runs_retrieve_v2", request_headers=PY_SDK)
    assert ef.route == "/threads/{thread_id}/runs/{run_id}"
    assert ef.operation == "runs.retrieve"
    assert ef.provider == "openai"
    assert (ef.beta_header, ef.api_version, ef.v1_semantics) == ("assistants=v2", "v2", False)
    assert ef.upstream_request_id == "req_1e697127f1cadb6dc060f6ca02fcadb9"
    assert ef.processing_ms == 119.0
    assert (ef.sdk, ef.sdk_lang, ef.sdk_version, ef.helper, ef.retry_count) == ("python 1.99.0", "python", "1.99.0", "poll", 2)
    assert ef.user_agent == "OpenAI/Python 1.99.0"
    assert (ef.run_id, ef.thread_id) == ("run_OHJXOmN3ujL9negG5WStzEVq", "thread_zLTcdCfBOWhdA16mh490ukiZ")
    assert (ef.assistant_id, ef.model) == ("asst_fqxhpajzq5zgGCF42bx98WkL", "gpt-4")
    assert ef.started_at.tzinfo is timezone.utc and ef.started_at.timestamp() == T0
    assert (ef.duration_ms, ef.ttfb_ms) == (200.0, 50.0)
    assert ef.key_fingerprint == "fp_test"
    assert ef.stream is False and ef.error_type is None and ef.parse_error is None
    assert ef.bytes_out == len(exchange("runs_retrieve_v2").response_body)


def test_ruby_client_identity_and_no_sdk():
    ef = _ex("runs_create_v2")
    assert (ef.user_agent, ef.sdk, ef.helper, ef.retry_count) == ("Ruby", None, None, None)
    assert ef.bytes_in == len(b'{"assistant_id":"asst_N1oWljftjFCZz5VGszSvMEa6","stream":false,"max_prompt_tokens":256,"max_completion_tokens":16}')


def test_stream_helper_header():
    ef = _ex("runs_streamed_create_v2", request_headers=[("x-stainless-stream-helper", "threads.runs.create_and_stream")])
    assert ef.helper == "threads.runs.create_and_stream"
    assert ef.stream is True


def test_beta_header_parsing():
    assert api_version_from_beta("assistants=v1") == "v1"
    assert api_version_from_beta("foo=bar, assistants=v2") == "v2"
    assert api_version_from_beta("realtime=v1") is None
    assert api_version_from_beta(None) is None


def test_v1_semantics_from_fields_whatever_the_header():
    v1 = _ex("runs_create_v1")
    assert (v1.api_version, v1.v1_semantics) == ("v1", True)  # run object carries top-level file_ids
    # a retrieval tool + file_ids assistant seen with a v2 header is still v1 semantics
    mixed = _ex("synthetic_assistant_v1_retrieval")
    assert (mixed.beta_header, mixed.api_version, mixed.v1_semantics) == ("assistants=v2", "v2", True)
    assert _ex("runs_create_v2").v1_semantics is False
    # v2 vector store batches carry file_ids too: not a v1 signal
    assert _ex("vector_store_file_batches_create").v1_semantics is False
    assert _ex("messages_create_v1").v1_semantics is True
    assert _ex("messages_create_v2").v1_semantics is False


def test_v1_only_route_flags_v1_semantics():
    base = exchange("assistants_create_v2")
    ex = dataclasses.replace(base, path="/v1/assistants/asst_1/files", request_body=b'{"file_id":"file-1"}',
                             response_body=b'{"id":"file-1","object":"assistant.file","assistant_id":"asst_1"}')
    ef = parse(ex, capture_content=False)[0]
    assert (ef.operation, ef.v1_semantics, ef.assistant_id) == ("assistants.files.create", True, "asst_1")


def test_upstream_error_bodies():
    ef = _ex("runs_create_v2_error")
    assert (ef.status_code, ef.error_type, ef.error_code) == (400, "invalid_request_error", "invalid_thread")
    ef = _ex("vector_store_file_batches_list_files_500")
    assert (ef.status_code, ef.error_type, ef.error_code) == (500, "server_error", None)
    ef = _ex("runs_modify_v2_error")
    assert (ef.error_type, ef.error_code) == ("invalid_request_error", "invalid_type")


def test_proxy_error_wins_and_bare_status_errors():
    ef = _ex("runs_retrieve_v2", status=502, response_body=b"", error_type="upstream_unreachable")
    assert (ef.status_code, ef.error_type, ef.parse_error) == (502, "upstream_unreachable", None)
    ef = _ex("runs_retrieve_v2", status=503, response_body=b"<html>busy</html>",
             response_headers=[("content-type", "text/html")])
    assert (ef.error_type, ef.parse_error) == ("http_503", None)


def test_invalid_json_and_utf8_are_parse_errors_not_exceptions():
    facts = parse(exchange("runs_retrieve_v2", response_body=b'{"id": "run_x", "object": "thr'), capture_content=False)
    assert facts[0].parse_error == "response:invalid_json" and len(facts) == 1
    facts = parse(exchange("runs_retrieve_v2", response_body=b'{"id": "\xff\xfe"}'), capture_content=False)
    assert facts[0].parse_error == "response:invalid_utf8"


def test_gzip_and_deflate_bodies_parse_like_plain():
    plain = parse(exchange("runs_retrieve_v2"), capture_content=False)
    gz = parse(exchange("runs_retrieve_v2", gzip_response=True), capture_content=False)
    assert gz[0].content_encoding == "gzip" and gz[0].parse_error is None
    assert gz[1:] == plain[1:]
    raw = exchange("runs_retrieve_v2").response_body
    for body in (zlib.compress(raw), zlib.compress(raw)[2:-4]):  # zlib-wrapped and raw deflate
        headers = [("content-type", "application/json"), ("content-encoding", "deflate")]
        assert parse(exchange("runs_retrieve_v2", response_body=body, response_headers=headers), capture_content=False)[1:] == plain[1:]


def test_brotli_without_decoder_and_garbage_gzip():
    headers = [("content-type", "application/json"), ("content-encoding", "br")]
    ef = _ex("runs_retrieve_v2", response_body=b"\x1b\x00\x00", response_headers=headers)
    try:
        import brotli  # noqa: F401
    except ImportError:
        assert ef.parse_error == "response:unsupported_encoding:br"
    else:
        assert ef.parse_error is not None
    headers = [("content-type", "application/json"), ("content-encoding", "gzip")]
    assert _ex("runs_retrieve_v2", response_body=b"not gzip", response_headers=headers).parse_error.startswith("response:bad_gzip")


def test_truncated_json_copy_is_marked():
    full = exchange("runs_retrieve_v2").response_body
    facts = parse(exchange("runs_retrieve_v2", cap=len(full) // 2), capture_content=False)
    assert (facts[0].body_truncated, facts[0].parse_error) == (True, "response:truncated")
    assert facts[0].bytes_out == len(full)


def test_truncated_gzip_stream_yields_the_complete_events():
    full = gzip.compress(exchange("runs_streamed_create_v2").response_body)
    headers = [("content-type", "text/event-stream; charset=utf-8"), ("content-encoding", "gzip")]
    facts = parse(exchange("runs_streamed_create_v2", response_body=full[: len(full) // 2], response_headers=headers),
                  capture_content=False)
    runs = [f.status for f in facts if isinstance(f, RunSnapshot)]
    all_runs = [f.status for f in parse(exchange("runs_streamed_create_v2"), capture_content=False) if isinstance(f, RunSnapshot)]
    assert facts[0].body_truncated is False  # the forwarder's flag; this copy was cut by the test, not the cap
    assert facts[0].parse_error is None
    assert 0 < len(runs) < len(all_runs) and runs == all_runs[: len(runs)]  # the complete events before the cut


def test_truncated_sse_copy_from_the_cap():
    full = exchange("runs_streamed_create_v2").response_body
    facts = parse(exchange("runs_streamed_create_v2", cap=len(full) - 200), capture_content=False)
    assert facts[0].body_truncated is True
    assert len([f for f in facts if isinstance(f, RunSnapshot)]) == 3


def test_stream_error_event():
    body = b'event: error\ndata: {"error": {"type": "server_error", "code": "overloaded", "message": "x"}}\n\n'
    headers = [("content-type", "text/event-stream")]
    ef = _ex("runs_streamed_create_v2", response_body=body, response_headers=headers)
    assert (ef.error_type, ef.error_code, ef.stream) == ("server_error", "overloaded", True)


def test_azure_exchange():
    base = exchange("vector_stores_retrieve")
    ex = dataclasses.replace(base, path="/openai/vector_stores/vs_hpLLcdz2Mvm3bKsGnN4hEsv2", query="api-version=2024-05-01-preview",
                             request_headers=(("user-agent", "AzureOpenAI/Python 1.0"),))
    facts = parse(ex, capture_content=False)
    ef = facts[0]
    assert (ef.provider, ef.azure_api_version, ef.beta_header, ef.api_version) == ("azure.ai.openai", "2024-05-01-preview", None, "v2")
    assert (ef.route, ef.vector_store_id) == ("/vector_stores/{vector_store_id}", "vs_hpLLcdz2Mvm3bKsGnN4hEsv2")
    assert isinstance(facts[1], VectorStoreObservation)


def test_unknown_route_and_non_json_bodies():
    ef = _ex("usage_vector_stores")
    assert (ef.operation, ef.api_version, ef.parse_error) == ("other", None, None)
    facts = parse(exchange("files_upload"), capture_content=False)  # multipart request body is not parsed
    assert facts[0].parse_error is None and facts[0].operation == "files.create"


def test_parse_is_pure():
    ex = exchange("synthetic_steps_list_tools")
    assert parse(ex, capture_content=True) == parse(ex, capture_content=True)


def test_truncated_list_page_keeps_its_complete_items():
    full = exchange("vector_stores_list").response_body
    every = [f for f in parse(exchange("vector_stores_list"), capture_content=False) if isinstance(f, VectorStoreObservation)]
    cut = full.index(b'"id": "' + every[3].vector_store_id.encode()) + 5  # inside the 4th item
    facts = parse(exchange("vector_stores_list", cap=cut), capture_content=False)
    assert (facts[0].parse_error, facts[0].body_truncated) == ("response:truncated", True)
    assert facts[1:] == every[:3]


JSONL = b'{"custom_id": "a", "body": {}}\n{"custom_id": "b", "body": {}}\n'
BINARY = b"[\x89PNG\r\n\x1a\n\xff\xfe\x00{"
NOT_JSON_TYPES = ["application/octet-stream", "application/jsonl", "application/x-ndjson", "text/plain; charset=utf-8",
                  "image/png", None]


@pytest.mark.parametrize("ctype", NOT_JSON_TYPES, ids=str)
@pytest.mark.parametrize("body", [JSONL, BINARY, b'["a", "b"]', b"{not json"], ids=["jsonl", "binary", "array", "brace"])
def test_file_content_that_looks_like_json_is_not_parsed(ctype, body):
    """`GET /files/{id}/content` answers the file's own bytes: whatever they start with, only a
    JSON media type makes a body an API object to parse."""
    base = exchange("runs_retrieve_v2")
    headers = [("content-type", ctype)] if ctype else []
    ex = dataclasses.replace(base, method="GET", path="/v1/files/file-abc123/content", response_body=body,
                             response_body_size=len(body), response_headers=tuple(headers))
    facts = parse(ex, capture_content=False)
    assert (facts[0].operation, facts[0].parse_error, facts[1:]) == ("files.content", None, [])


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                   "application/problem+json", "text/json"])
def test_json_media_types_are_parsed(ctype):
    facts = parse(exchange("runs_retrieve_v2", response_headers=[("content-type", ctype)]), capture_content=False)
    assert facts[0].parse_error is None and isinstance(facts[1], RunSnapshot)
    bad = parse(exchange("runs_retrieve_v2", response_body=b"{broken", response_headers=[("content-type", ctype)]),
                capture_content=False)
    assert bad[0].parse_error == "response:invalid_json"


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/octet-stream"])
def test_only_event_stream_bodies_are_decoded_as_events(ctype):
    body = exchange("runs_streamed_create_v2").response_body
    facts = parse(exchange("runs_streamed_create_v2", response_headers=[("content-type", ctype)]), capture_content=False)
    assert not any(isinstance(f, RunSnapshot) for f in facts)
    assert facts[0].parse_error == ("response:invalid_json" if ctype == "application/json" else None)
    assert body.startswith(b"event:")


def test_foundry_project_exchange_names_provider_project_and_azure_sdk():
    from tests.exchanges import exchange as make

    run = b'{"id": "run_f1", "object": "thread.run", "thread_id": "thread_f1", "assistant_id": "asst_f1", "status": "queued"}'
    facts = parse(make(method="GET", path="/api/projects/sales-eu/threads/thread_f1/runs/run_f1", query="api-version=v1",
                       request_headers=(("user-agent", "azsdk-python-ai-agents/1.1.0 Python/3.11.7 (Linux-6.1-x86_64)"),),
                       body=run), capture_content=False)
    ef, snapshot = facts[0], next(f for f in facts if isinstance(f, RunSnapshot))
    assert (ef.operation, ef.api, ef.provider, ef.project, ef.azure_api_version, ef.api_version) == (
        "runs.retrieve", "foundry_agents", "azure.ai.agents", "sales-eu", "v1", "v2")
    assert (ef.sdk, ef.sdk_lang, ef.sdk_version) == ("python azure-ai-agents 1.1.0", "python", "azure-ai-agents 1.1.0")
    assert (snapshot.run_id, snapshot.project, snapshot.api_version) == ("run_f1", "sales-eu", "v2")
    # elsewhere: no project, and a User-Agent alone names no OpenAI SDK
    plain = parse(make(request_headers=(("user-agent", "OpenAI/Python 1.54.0"),)), capture_content=False)[0]
    assert (plain.project, plain.sdk) == (None, None)
