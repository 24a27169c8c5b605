"""The spec fixtures and the validator the conformance test relies on: they are complete, they
accept real recorded OpenAI traffic, and they reject traffic that breaks the spec."""

from __future__ import annotations

import copy
import importlib.util
import json
import os

import pytest

from tests import spec_validation
from tests.spec_validation import SpecViolation, validate, validate_response, validate_stream_event

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "spec")

with open(os.path.join(FIXTURES, "recorded_samples.json")) as _f:
    RECORDED = json.load(_f)
SAMPLES = RECORDED["samples"]
JSON_SAMPLES = [s for s in SAMPLES if "body" in s]
STREAM_SAMPLES = [s for s in SAMPLES if "events" in s]


def _sample_id(sample: dict) -> str:
    return f"{sample['version']}:{sample['operation']}:{sample['status']}:{sample['cassette']}"


def _load_script():
    path = os.path.join(ROOT, "scripts", "extract_spec_fixture.py")
    spec = importlib.util.spec_from_file_location("extract_spec_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema_nodes(node, in_properties=False):
    """Every schema object below `node` (property names are not mistaken for keywords)."""
    if isinstance(node, dict):
        if in_properties:
            for value in node.values():
                yield from _schema_nodes(value)
            return
        yield node
        for key, value in node.items():
            if key in ("enum", "const", "required"):
                continue
            yield from _schema_nodes(value, in_properties=key in ("properties", "patternProperties", "$defs"))
    elif isinstance(node, list):
        for value in node:
            yield from _schema_nodes(value)


# --- what the fixtures hold --------------------------------------------------------------------

@pytest.mark.parametrize("version,file,info_version", [
    ("v2", "openai-openapi-2.3.0.yaml", "2.3.0"),
    ("v1", "openai-openapi-assistants-v1-2024-04-12.yaml", "2.0.0"),
])
def test_fixture_records_its_source_and_stays_small(version, file, info_version):
    spec = spec_validation.load(version)
    assert spec.source["file"] == file
    assert spec.source["info_version"] == info_version
    assert len(spec.source["sha256"]) == 64 and int(spec.source["sha256"], 16) >= 0
    assert os.path.getsize(os.path.join(FIXTURES, f"{version}.json")) < 300_000


V2_OPERATIONS = {
    "GET /assistants", "POST /assistants", "GET /assistants/{assistant_id}",
    "POST /assistants/{assistant_id}", "DELETE /assistants/{assistant_id}",
    "POST /threads", "GET /threads/{thread_id}", "POST /threads/{thread_id}", "DELETE /threads/{thread_id}",
    "GET /threads/{thread_id}/messages", "POST /threads/{thread_id}/messages",
    "GET /threads/{thread_id}/messages/{message_id}", "POST /threads/{thread_id}/messages/{message_id}",
    "DELETE /threads/{thread_id}/messages/{message_id}",
    "POST /threads/runs", "GET /threads/{thread_id}/runs", "POST /threads/{thread_id}/runs",
    "GET /threads/{thread_id}/runs/{run_id}", "POST /threads/{thread_id}/runs/{run_id}",
    "POST /threads/{thread_id}/runs/{run_id}/cancel",
    "POST /threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
    "GET /threads/{thread_id}/runs/{run_id}/steps", "GET /threads/{thread_id}/runs/{run_id}/steps/{step_id}",
    "GET /files", "POST /files", "GET /files/{file_id}", "DELETE /files/{file_id}", "GET /files/{file_id}/content",
    "GET /vector_stores", "POST /vector_stores", "GET /vector_stores/{vector_store_id}",
    "POST /vector_stores/{vector_store_id}", "DELETE /vector_stores/{vector_store_id}",
    "GET /vector_stores/{vector_store_id}/files", "POST /vector_stores/{vector_store_id}/files",
    "GET /vector_stores/{vector_store_id}/files/{file_id}",
    "DELETE /vector_stores/{vector_store_id}/files/{file_id}",
    "POST /vector_stores/{vector_store_id}/file_batches",
    "GET /vector_stores/{vector_store_id}/file_batches/{batch_id}",
    "POST /vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    "GET /vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    "POST /vector_stores/{vector_store_id}/search",
}
V1_ONLY_OPERATIONS = {
    "GET /assistants/{assistant_id}/files", "POST /assistants/{assistant_id}/files",
    "GET /assistants/{assistant_id}/files/{file_id}", "DELETE /assistants/{assistant_id}/files/{file_id}",
    "GET /threads/{thread_id}/messages/{message_id}/files",
    "GET /threads/{thread_id}/messages/{message_id}/files/{file_id}",
}


def test_fixtures_cover_every_assistants_operation():
    v2 = set(spec_validation.load("v2").operations)
    v1 = set(spec_validation.load("v1").operations)
    assert V2_OPERATIONS <= v2, sorted(V2_OPERATIONS - v2)
    assert V1_ONLY_OPERATIONS <= v1, sorted(V1_ONLY_OPERATIONS - v1)
    assert not {op for op in v2 if "/files" in op and op.startswith(("GET /assistants", "POST /assistants"))}
    assert not {op for op in v1 if "vector_stores" in op}  # vector stores arrived with v2
    run = spec_validation.load("v2").operations["POST /threads/{thread_id}/runs"]
    assert run["request"]["application/json"] == {"$ref": "#/components/schemas/CreateRunRequest"}
    assert run["responses"]["200"]["application/json"] == {"$ref": "#/components/schemas/RunObject"}
    assert "include[]" in spec_validation.load("v2").operations[
        "GET /threads/{thread_id}/runs/{run_id}/steps"]["query"]
    assert "multipart/form-data" in spec_validation.load("v1").operations["POST /files"]["request"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_schemas_are_plain_draft_2020_12_and_closed_under_ref(version):
    fixture = spec_validation.load(version).fixture
    schemas = fixture["components"]["schemas"]
    for node in _schema_nodes([fixture["operations"], fixture["stream_events"], schemas]):
        leftovers = {k for k in node if k in ("nullable", "discriminator", "description", "example")
                     or k.startswith("x-")}
        assert not leftovers, f"{leftovers} left in {json.dumps(node)[:200]}"
        ref = node.get("$ref")
        if ref is not None:
            assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_stream_event_mapping(version):
    events = spec_validation.load(version).stream_events
    for name in ("thread.created", "thread.run.created", "thread.run.queued", "thread.run.in_progress",
                 "thread.run.requires_action", "thread.run.completed", "thread.run.failed",
                 "thread.run.cancelling", "thread.run.cancelled", "thread.run.expired",
                 "thread.run.step.created", "thread.run.step.delta", "thread.run.step.completed",
                 "thread.message.created", "thread.message.delta", "thread.message.completed",
                 "error", "done"):
        assert name in events, name
    assert events["thread.run.created"] == {"$ref": "#/components/schemas/RunObject"}
    assert events["thread.run.step.delta"] == {"$ref": "#/components/schemas/RunStepDeltaObject"}
    assert events["thread.message.delta"] == {"$ref": "#/components/schemas/MessageDeltaObject"}
    assert events["error"] == {"$ref": "#/components/schemas/Error"}
    assert ("thread.run.incomplete" in events) == (version == "v2")


# --- real traffic is accepted, broken traffic is not ---------------------------------------------

def test_recorded_samples_cover_both_versions_json_errors_and_streams():
    assert len(SAMPLES) >= 12
    assert {s["version"] for s in SAMPLES} == {"v1", "v2"}
    assert any(s["status"] >= 400 for s in JSON_SAMPLES)
    assert any("thread.message.delta" in {e["event"] for e in s["events"]} for s in STREAM_SAMPLES)


@pytest.mark.parametrize("sample", JSON_SAMPLES, ids=_sample_id)
def test_recorded_response_is_valid(sample):
    validate_response(sample["operation"], sample["status"], sample["body"], sample["version"])


REQUEST_SAMPLES = [s for s in JSON_SAMPLES if "request" in s and s["status"] < 400]


@pytest.mark.parametrize("sample", REQUEST_SAMPLES, ids=_sample_id)
def test_recorded_accepted_request_is_valid(sample):
    spec_validation.validate_request(sample["operation"], sample["request"], sample["version"])


def test_requests_are_checked_too():
    assert len(REQUEST_SAMPLES) >= 5
    with pytest.raises(SpecViolation, match="'assistant_id' is a required property"):
        spec_validation.validate_request("POST /threads/{thread_id}/runs", {"model": "gpt-4o"}, "v2")
    with pytest.raises(SpecViolation, match=r"at \$\.tools\[0\]"):
        spec_validation.validate_request("POST /assistants", {"model": "gpt-4o", "tools": [{"type": "retrieval"}]})


@pytest.mark.parametrize("sample", STREAM_SAMPLES, ids=_sample_id)
def test_recorded_stream_events_are_valid(sample):
    for ev in sample["events"]:
        validate_stream_event(ev["event"], ev["data"], sample["version"])


def _break(body: dict) -> tuple[dict, str]:
    """A copy of `body` with one field given a value of the wrong type, and that field's path."""
    broken = copy.deepcopy(body)
    if "error" in broken:
        broken["error"]["message"] = 404
        return broken, "$.error.message"
    if broken.get("data"):
        key = "id" if "id" in broken["data"][0] else "file_id"
        broken["data"][0][key] = 7
        return broken, f"$.data[0].{key}"
    broken["object"] = ["not", "a", "string"]
    return broken, "$.object"


@pytest.mark.parametrize("sample", JSON_SAMPLES, ids=_sample_id)
def test_broken_recorded_response_is_rejected_at_its_path(sample):
    broken, path = _break(sample["body"])
    with pytest.raises(SpecViolation) as caught:
        validate_response(sample["operation"], sample["status"], broken, sample["version"])
    assert f" at {path}" in str(caught.value), str(caught.value)


@pytest.mark.parametrize("sample", STREAM_SAMPLES, ids=_sample_id)
def test_broken_stream_event_is_rejected(sample):
    event = next(e for e in sample["events"] if isinstance(e["data"], dict))
    data = copy.deepcopy(event["data"])
    data.pop("id")
    with pytest.raises(SpecViolation, match="'id' is a required property"):
        validate_stream_event(event["event"], data, sample["version"])
    with pytest.raises(SpecViolation, match="not an AssistantStreamEvent"):
        validate_stream_event("thread.run.bogus", event["data"], sample["version"])


def _recorded(version: str, operation: str) -> dict:
    return copy.deepcopy(next(s["body"] for s in JSON_SAMPLES
                              if s["version"] == version and s["operation"] == operation and s["status"] == 200))


def test_nullable_fields_accept_null_and_only_null():
    run = _recorded("v2", "POST /threads/{thread_id}/runs")
    # `nullable: true` on a typed property, and the allOf: [$ref, {nullable: true}] idiom.
    run.update(started_at=None, truncation_strategy=None, tool_choice=None, response_format=None)
    validate("RunObject", run, "v2")
    run["started_at"] = "soon"
    with pytest.raises(SpecViolation, match=r"at \$\.started_at"):
        validate("RunObject", run, "v2")
    run["started_at"] = None
    run["truncation_strategy"] = {"last_messages": None}
    with pytest.raises(SpecViolation, match=r"at \$\.truncation_strategy"):
        validate("RunObject", run, "v2")


def test_version_specific_shapes():
    v1_run = _recorded("v1", "GET /threads/{thread_id}/runs/{run_id}")
    validate("RunObject", v1_run, "v1")
    with pytest.raises(SpecViolation, match="file_ids"):
        validate("RunObject", {k: v for k, v in v1_run.items() if k != "file_ids"}, "v1")
    v1_run["tools"] = [{"type": "retrieval"}]
    validate("RunObject", v1_run, "v1")
    with pytest.raises(SpecViolation, match=r"at \$\.tools\[0\]"):
        validate("AssistantObject", {**_recorded("v2", "POST /assistants"), "tools": [{"type": "retrieval"}]}, "v2")


def test_error_body_shape():
    validate("ErrorResponse", {"error": {"message": "No run found", "type": "invalid_request_error",
                                         "param": None, "code": None}})
    with pytest.raises(SpecViolation, match="'param' is a required property"):
        validate("ErrorResponse", {"error": {"message": "x", "type": "server_error", "code": None}})


def test_unknown_names_fail_loudly():
    with pytest.raises(KeyError):
        validate("NoSuchSchema", {})
    with pytest.raises(KeyError):
        validate_response("GET /nowhere", 200, {})
    with pytest.raises(KeyError):  # the spec documents no 201 for this operation
        validate_response("POST /assistants", 201, {})


# --- the normalisation rules of the extraction script ----------------------------------------------

def test_normalise_openapi_30_and_31_idioms():
    script = _load_script()
    norm = script.normalise
    assert norm({"type": "string", "nullable": True, "description": "d"}, openapi30=True) == \
        {"type": ["string", "null"]}
    assert norm({"type": "string", "enum": ["a"], "nullable": True}, openapi30=True) == \
        {"type": ["string", "null"], "enum": ["a", None]}
    # 3.0 ignores $ref siblings; 3.1 evaluates them.
    assert norm({"$ref": "#/components/schemas/X", "maxLength": 3}, openapi30=True) == \
        {"$ref": "#/components/schemas/X"}
    assert norm({"$ref": "#/components/schemas/X", "maxLength": 3}, openapi30=False) == \
        {"$ref": "#/components/schemas/X", "maxLength": 3}
    assert norm({"$ref": "#/components/schemas/X", "nullable": True}, openapi30=True) == \
        {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]}
    assert norm({"allOf": [{"$ref": "#/components/schemas/X"}, {"nullable": True}]}, openapi30=False) == \
        {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]}
    assert norm({"type": "object", "nullable": True, "anyOf": [{"required": ["a"]}]}, openapi30=True) == \
        {"anyOf": [{"type": "object", "anyOf": [{"required": ["a"]}]}, {"type": "null"}]}
    assert norm({"type": "number", "minimum": 0, "exclusiveMinimum": True}, openapi30=True) == \
        {"type": "number", "exclusiveMinimum": 0}
    # Property names that look like keywords are kept; vendor extensions and discriminators go.
    out = norm({"type": "object", "discriminator": {"propertyName": "type"}, "x-oaiMeta": {},
                "properties": {"description": {"type": "string", "x-stainless-const": True}}},
               openapi30=False)
    assert out == {"type": "object", "properties": {"description": {"type": "string"}}}


def test_undeclared_fields_are_found_through_refs_and_branches():
    spec = spec_validation.load("v2")
    assistant = _recorded("v2", "POST /assistants")
    assistant["metadata"] = {"anything": "goes"}  # an open map: never reported
    assert spec.response_undeclared("POST /assistants", 200, assistant) == []
    assistant["file_ids"] = []  # a v1 field on a v2 object: valid (the schema is open) but undeclared
    assistant["tools"] = [{"type": "code_interpreter", "bogus": 1}]  # inside a oneOf branch
    validate_response("POST /assistants", 200, assistant, "v2")
    assert spec.response_undeclared("POST /assistants", 200, assistant) == ["$.tools[0].bogus", "$.file_ids"]
    steps = _recorded("v2", "GET /threads/{thread_id}/runs/{run_id}/steps")
    steps["data"] = [{"invented": True}]
    assert spec.response_undeclared("GET /threads/{thread_id}/runs/{run_id}/steps", 200, steps) == \
        ["$.data[0].invented"]


def test_emulator_ships_the_request_schemas_of_the_fixtures():
    """emulator/request_schemas.json (package data: the emulator validates bodies with it) is the
    script's slice of the committed fixtures: both come from one run of the script, and every
    operation with a JSON request body in the fixtures is in it."""
    script = _load_script()
    with open(os.path.join(ROOT, "emulator", "request_schemas.json")) as f:
        shipped = json.load(f)
    for version in spec_validation.VERSIONS:
        fixture = spec_validation.load(version).fixture
        assert shipped[version] == script.request_schemas(fixture), version
        with_body = {op for op, spec in fixture["operations"].items() if "application/json" in spec["request"]}
        assert set(shipped[version]["operations"]) == with_body and with_body, version
