"""Request bodies are checked against the spec's request schema before a handler touches them:
wrong-typed fields answer OpenAI's 400 `invalid_request_error`, never a 500.

The fuzz test generates bodies from the spec fixture's request schemas (tests/fixtures/spec),
for every operation with a JSON body in v1 and v2: bodies the spec accepts, and the same with
one value somewhere swapped for one of another JSON type. A real emulator on loopback answers
each; it may refuse, but never with a 5xx, and every 400 is shaped like OpenAI's."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.app import EmulatorSettings
from tests import spec_validation
from tests.emulator.rawhttp import call_json, raw
from tests.plugins.emulator import start_emulator

ERROR_KEYS = {"message", "type", "param", "code"}
DOC = b"Emulatia is a small country. Its capital is Testopolis.\n"


@pytest.fixture(scope="module")
def served():
    running = start_emulator(EmulatorSettings(seed=13, poll_after_ms=1))
    try:
        yield running
    finally:
        running.server.stop()


def _headers(version: str) -> dict[str, str]:
    return {"OpenAI-Beta": f"assistants={version}", "Authorization": "Bearer sk-validation"}


def _upload(url: str, version: str) -> str:
    boundary = "validation-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode() + DOC + f"\r\n--{boundary}--\r\n".encode()
    headers = {**_headers(version), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return call_json(url, "POST", "/v1/files", body, headers)["id"]


@pytest.fixture(scope="module")
def real_ids(served) -> dict[str, dict[str, str]]:
    """Per version, a real object for every path parameter, so a valid body gets past the
    lookups and into the handler's own code."""
    out = {}
    for version in ("v1", "v2"):
        url, h = served.url, _headers(version)
        file_id = _upload(url, version)
        vs = call_json(url, "POST", "/v1/vector_stores", {"file_ids": [file_id]}, h)["id"]
        asst = call_json(url, "POST", "/v1/assistants", {"model": "gpt-4o", "instructions": "Hi."}, h)["id"]
        thread = call_json(url, "POST", "/v1/threads", {"messages": [{"role": "user", "content": "hi"}]}, h)["id"]
        message = call_json(url, "GET", f"/v1/threads/{thread}/messages", None, h)["data"][0]["id"]
        run = call_json(url, "POST", f"/v1/threads/{thread}/runs", {"assistant_id": asst}, h)["id"]
        out[version] = {"assistant_id": asst, "thread_id": thread, "message_id": message, "run_id": run,
                        "vector_store_id": vs, "file_id": file_id}
    return out


def assert_openai_400(status: int, body: bytes, param: str | None = None) -> dict:
    assert status == 400, (status, body[:500])
    error = json.loads(body)["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["type"] == "invalid_request_error" and error["message"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    if param is not None:
        assert error["param"] == param, error
    return error


# -- the cases that used to crash a handler ---------------------------------------------------------

CRASHERS = [
    ("POST", "/assistants", {"model": "gpt-4o", "tool_resources": {"file_search": "x"}},
     "tool_resources.file_search", "Invalid type for 'tool_resources.file_search': expected an object, "
     "but got a string instead."),
    ("POST", "/assistants", {"model": "gpt-4o", "tools": [{"type": "function", "function": "x"}]},
     "tools[0].function", "Invalid type for 'tools[0].function': expected an object, but got a string instead."),
    ("POST", "/threads", {"tool_resources": {"code_interpreter": {"file_ids": True}}},
     "tool_resources.code_interpreter.file_ids", "Invalid type for 'tool_resources.code_interpreter.file_ids': "
     "expected an array, but got a boolean instead."),
    ("POST", "/vector_stores", {"file_ids": [[1]]},
     "file_ids[0]", "Invalid type for 'file_ids[0]': expected a string, but got an array instead."),
    ("POST", "/vector_stores/{vector_store_id}/files", {"file_id": {"a": 1}},
     "file_id", "Invalid type for 'file_id': expected a string, but got an object instead."),
    ("POST", "/threads/{thread_id}", {"tool_resources": 1.5},
     "tool_resources", "Invalid type for 'tool_resources': expected an object, but got a decimal instead."),
]


@pytest.mark.parametrize("method,template,body,param,message", CRASHERS, ids=[f"{c[1]}:{c[3]}" for c in CRASHERS])
def test_wrong_typed_field_is_openais_400(served, real_ids, method, template, body, param, message):
    path = "/v1" + template.format(**real_ids["v2"])
    status, headers, answer = raw(served.url, method, path, body, _headers("v2"))
    error = assert_openai_400(status, answer, param)
    assert error["message"] == message and error["code"] == "invalid_type", error
    assert "x-request-id" in headers


OTHER_RULES = [
    ("v2", "/assistants", {}, "model", "missing_required_parameter"),
    ("v2", "/assistants", {"model": "gpt-4o", "tools": [{"type": "function"}]}, "tools[0].function",
     "missing_required_parameter"),
    ("v2", "/assistants", {"model": "gpt-4o", "tools": [{"type": "retrieval"}]}, "tools[0].type", "invalid_value"),
    ("v1", "/assistants", {"model": "gpt-4o", "tools": [{"type": "file_search"}]}, "tools[0].type", "invalid_value"),
    ("v2", "/assistants", {"model": "gpt-4o", "temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ("v2", "/assistants", {"model": "gpt-4o", "name": "n" * 257}, "name", "string_above_max_length"),
    ("v2", "/assistants", {"model": "gpt-4o", "metadata": {"a": True}}, "metadata.a", "invalid_type"),
    ("v2", "/assistants", {"model": "gpt-4o", "file_ids": []}, "file_ids", "unknown_parameter"),
    ("v2", "/threads/{thread_id}/runs", {"assistant_id": "a", "tool_choice": "sometimes"}, "tool_choice",
     "invalid_value"),
    ("v2", "/threads/{thread_id}/messages", {"role": "user", "content": 7}, "content", "invalid_type"),
    ("v1", "/threads/{thread_id}/messages", {"role": "robot", "content": "x"}, "role", "invalid_value"),
    ("v1", "/vector_stores", {"file_ids": [[1]]}, "file_ids[0]", "invalid_type"),  # v1 never had them: v2's schema
]


@pytest.mark.parametrize("version,template,body,param,code", OTHER_RULES,
                         ids=[f"{r[0]}{r[1]}:{r[3]}:{r[4]}" for r in OTHER_RULES])
def test_each_schema_rule_has_openais_wording(served, real_ids, version, template, body, param, code):
    path = "/v1" + template.format(**real_ids[version])
    status, _, answer = raw(served.url, "POST", path, body, _headers(version))
    error = assert_openai_400(status, answer, param)
    assert error["code"] == code, error
    assert f"'{param}'" in error["message"] or code == "invalid_value", error


def test_azure_paths_are_checked_alike(served):
    status, _, answer = raw(served.url, "POST", "/openai/assistants?api-version=2024-05-01-preview",
                            {"model": "gpt-4o", "tools": [{"type": "function", "function": "x"}]},
                            {"api-key": "azure-key", "OpenAI-Beta": ""})
    assert assert_openai_400(status, answer, "tools[0].function")["code"] == "invalid_type"


# -- fuzz: bodies generated from the request schemas --------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)
KIND_OF = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object",
           type(None): "null"}
OTHER_KIND = {"boolean": st.booleans(), "number": st.integers(-5, 5) | st.floats(-5, 5), "string": st.text(max_size=5),
              "array": st.lists(JSON, max_size=2), "object": st.dictionaries(st.text(max_size=5), JSON, max_size=2),
              "null": st.none()}


class Generator:
    """Hypothesis strategies for instances of one spec version's schemas (a useful subset of the
    keywords the fixture uses; anything it does not model generates arbitrary JSON)."""

    def __init__(self, version: str, ids: dict[str, str]) -> None:
        self.schemas = spec_validation.load(version).fixture["components"]["schemas"]
        self.ids = ids

    def of(self, schema: Any, depth: int = 0, name: str = "") -> st.SearchStrategy:
        if not isinstance(schema, dict) or depth > 6:
            return JSON
        if "$ref" in schema:
            return self.of(self.schemas[schema["$ref"].rsplit("/", 1)[1]], depth + 1, name)
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.of(branch, depth + 1, name) for branch in schema[key]])
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            for part in schema["allOf"]:
                part = self._resolve(part)
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += part.get("required", [])
            return self.of(merged, depth + 1, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.of({**schema, "type": k}, depth, name) for k in kind])
        if kind == "object" or "properties" in schema:
            return self._object(schema, depth)
        if kind == "array":
            items = self.of(schema.get("items", {}), depth + 1, name)
            return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
        if kind == "string":
            text = st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 12), 12))
            # file_id, file_ids[i], vector_store_ids[i], assistant_id: sometimes a real one, so a
            # valid body gets past the lookups into the code that uses it.
            known = self.ids.get(name.removesuffix("s").removesuffix("_id") + "_id") if name else None
            return st.sampled_from([known]) | text if known else text
        if kind == "integer":
            return st.integers(schema.get("minimum", -100), schema.get("maximum", 10_000))
        if kind == "number":
            return st.floats(schema.get("minimum", -100), schema.get("maximum", 100), allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return JSON

    def _resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def _object(self, schema: dict, depth: int) -> st.SearchStrategy:
        props = schema.get("properties", {})
        if not props:
            extra = schema.get("additionalProperties")
            values = self.of(extra, depth + 1) if isinstance(extra, dict) else JSON
            return st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=3)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {n: self.of(s, depth + 1, n) for n, s in props.items() if n in required},
            optional={n: self.of(s, depth + 1, n) for n, s in props.items() if n not in required})


def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*at, i))
    return out


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, new)
    return copy


def _operations() -> list[tuple[str, str]]:
    return [(version, op) for version in spec_validation.VERSIONS
            for op, spec in spec_validation.load(version).operations.items()
            if "application/json" in spec["request"]]


@pytest.mark.parametrize("version,operation", _operations(), ids=[f"{v}:{op}" for v, op in _operations()])
@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_bodies_never_get_a_5xx(served, real_ids, version, operation, data):
    spec = spec_validation.load(version)
    ids = real_ids[version]
    body = data.draw(Generator(version, ids).of(spec.operations[operation]["request"]["application/json"]),
                     label="valid-ish body")
    if data.draw(st.booleans(), label="swap one value for another type"):
        path = data.draw(st.sampled_from(_paths(body)[1:] or [()]), label="where")
        old_kind = KIND_OF[type(_at(body, path))]
        other = data.draw(st.sampled_from(sorted(k for k in OTHER_KIND if k != old_kind)), label="new kind")
        body = _replaced(body, path, data.draw(OTHER_KIND[other], label="new value"))
    method, template = operation.split(" ", 1)
    path_params = set(re.findall(r"\{(\w+)\}", template))
    status, _, answer = raw(served.url, method, "/v1" + template.format(**{p: ids[p] for p in path_params}),
                            json.dumps(body), {**_headers(version), "Content-Type": "application/json"})
    assert status < 500, (status, answer[:500], body)
    if status == 400:
        assert_openai_400(status, answer)
    if not isinstance(body, dict) or spec.request_errors(operation, body):
        assert status == 400, (status, answer[:300], body)  # refused before any handler saw it


def _at(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value
