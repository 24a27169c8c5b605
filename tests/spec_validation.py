"""Validate JSON against the official OpenAI OpenAPI schemas (Assistants slice, v1 and v2).

The schemas come from the compact fixtures tests/fixtures/spec/{v1,v2}.json made by
scripts/extract_spec_fixture.py (already normalised to JSON Schema Draft 2020-12). Each fixture is
registered as one resource, `urn:openai-spec:<version>`, so its own "#/components/schemas/X" refs
resolve, and every check is a `$ref` into it: a component schema, an operation's response schema
or a stream event's data schema.

    validate("RunObject", body)                                  # v2 by default
    validate_response("GET /threads/{thread_id}/runs/{run_id}", 200, body, version="v1")
    validate_stream_event("thread.run.step.delta", data, "v2")

Each raises SpecViolation (an AssertionError) naming the JSON path of the first error;
validate_request does the same for request bodies. load(version) gives the SpecSchemas behind
them, whose *_errors methods return the error list instead and whose undeclared_properties finds
fields the spec never mentions (its objects are rarely closed, so validation lets those pass).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "spec")
VERSIONS = ("v1", "v2")


class SpecViolation(AssertionError):
    """An instance does not match its schema in the OpenAI spec."""


def _pointer(*parts: str) -> str:
    """A URI fragment (JSON pointer) to the given keys, escaped for "/", "~" and URI syntax."""
    return "/" + "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts)


def _describe(error: ValidationError) -> str:
    where = error.json_path
    schema_path = "/".join(str(p) for p in error.relative_schema_path)
    return f"{where}: {error.message[:300]} (schema: {schema_path})"


class SpecSchemas:
    """The schemas of one spec version, with validators built lazily and cached."""

    def __init__(self, fixture: dict, version: str) -> None:
        self.fixture = fixture
        self.version = version
        self.uri = f"urn:openai-spec:{version}"
        # Absolute refs, so any sub-schema can be checked on its own (see undeclared_properties).
        absolute = json.loads(json.dumps(fixture).replace('"$ref": "#/', f'"$ref": "{self.uri}#/'))
        resource = Resource(contents=absolute, specification=DRAFT202012)
        self._registry = Registry().with_resource(self.uri, resource)
        self._resolver = self._registry.resolver()
        self._validators: dict[str, Draft202012Validator] = {}
        self._branch_validators: dict[int, Draft202012Validator] = {}

    @property
    def source(self) -> dict:
        return self.fixture["source"]

    @property
    def operations(self) -> dict[str, dict]:
        return self.fixture["operations"]

    @property
    def stream_events(self) -> dict[str, Any]:
        return self.fixture["stream_events"]

    def _validator(self, fragment: str) -> Draft202012Validator:
        validator = self._validators.get(fragment)
        if validator is None:
            validator = Draft202012Validator({"$ref": f"{self.uri}#{fragment}"}, registry=self._registry)
            self._validators[fragment] = validator
        return validator

    def _errors(self, fragment: str, instance: Any) -> list[str]:
        errors = list(self._validator(fragment).iter_errors(instance))
        if not errors:
            return []
        first = best_match(errors)
        rest = [e for e in errors if e is not first]
        return [_describe(first)] + [_describe(e) for e in sorted(rest, key=lambda e: e.json_path)]

    # -- error lists (empty when valid) --------------------------------------------------------

    def schema_errors(self, name: str, instance: Any) -> list[str]:
        if name not in self.fixture["components"]["schemas"]:
            raise KeyError(f"no schema {name!r} in the {self.version} spec fixture")
        return self._errors(_pointer("components", "schemas", name), instance)

    def response_schema_fragment(self, operation: str, status: int | str,
                                 content_type: str = "application/json") -> str:
        """Where the body schema of `operation` ("METHOD /template") at `status` lives.

        Error statuses the spec does not list for the operation use ErrorResponse, as every
        OpenAI error body has that shape."""
        try:
            responses = self.operations[operation]["responses"]
        except KeyError:
            raise KeyError(f"no operation {operation!r} in the {self.version} spec") from None
        status = str(status)
        if status in responses and content_type in responses[status]:
            return _pointer("operations", operation, "responses", status, content_type)
        if int(status) >= 400:
            return _pointer("components", "schemas", "ErrorResponse")
        raise KeyError(f"{operation} ({self.version}) has no {status} {content_type} response "
                       f"in the spec (has {sorted(responses)})")

    def response_errors(self, operation: str, status: int | str, body: Any) -> list[str]:
        return self._errors(self.response_schema_fragment(operation, status), body)

    def request_errors(self, operation: str, body: Any,
                       content_type: str = "application/json") -> list[str]:
        if content_type not in self.operations[operation]["request"]:
            raise KeyError(f"{operation} ({self.version}) takes no {content_type} body")
        return self._errors(_pointer("operations", operation, "request", content_type), body)

    # -- fields the spec does not declare -----------------------------------------------------

    def undeclared_properties(self, fragment: str, instance: Any) -> list[str]:
        """JSON paths of object keys that no applicable schema declares.

        The OpenAI schemas rarely say `additionalProperties: false`, so validation alone lets an
        invented or wrong-version field through (`file_ids` in a v2 object, say). Objects whose
        schema declares no properties (metadata, function parameters) or allows additional
        ones are open and not checked."""
        found: list[str] = []
        self._undeclared({"$ref": f"{self.uri}#{fragment}"}, instance, "$", found)
        return found

    def response_undeclared(self, operation: str, status: int | str, body: Any) -> list[str]:
        return self.undeclared_properties(self.response_schema_fragment(operation, status), body)

    def stream_event_undeclared(self, event: str, data: Any) -> list[str]:
        return self.undeclared_properties(_pointer("stream_events", event), data)

    def _applicable(self, schema: Any, instance: Any) -> list[dict]:
        """`schema` with its $refs followed, plus the allOf parts and the anyOf/oneOf branches
        that `instance` satisfies."""
        out: list[dict] = []
        stack = [schema]
        while stack:
            node = stack.pop()
            if not isinstance(node, dict):
                continue
            if "$ref" in node:
                stack.append(self._resolver.lookup(node["$ref"]).contents)
            out.append(node)
            stack.extend(node.get("allOf", []))
            for key in ("anyOf", "oneOf"):
                stack.extend(b for b in node.get(key, []) if self._branch_ok(b, instance))
        return out

    def _branch_ok(self, branch: Any, instance: Any) -> bool:
        validator = self._branch_validators.get(id(branch))
        if validator is None:
            validator = self._branch_validators[id(branch)] = Draft202012Validator(
                branch, registry=self._registry)
        return validator.is_valid(instance)

    def _undeclared(self, schema: Any, instance: Any, path: str, found: list[str]) -> None:
        parts = self._applicable(schema, instance)
        if isinstance(instance, dict):
            declared: dict[str, list] = {}
            open_object = True
            for part in parts:
                if "properties" in part:
                    open_object = False
                    for name, sub in part["properties"].items():
                        declared.setdefault(name, []).append(sub)
            if any(p.get("additionalProperties") not in (None, False) or "patternProperties" in p
                   for p in parts):
                open_object = True
            for key, value in instance.items():
                if key in declared:
                    for sub in declared[key]:
                        self._undeclared(sub, value, f"{path}.{key}", found)
                elif not open_object:
                    found.append(f"{path}.{key}")
        elif isinstance(instance, list):
            items = [p["items"] for p in parts if isinstance(p.get("items"), dict)]
            for i, value in enumerate(instance):
                for sub in items:
                    self._undeclared(sub, value, f"{path}[{i}]", found)

    def stream_event_errors(self, event: str, data: Any) -> list[str]:
        if event not in self.stream_events:
            return [f"$: {event!r} is not an AssistantStreamEvent of the {self.version} spec"]
        return self._errors(_pointer("stream_events", event), data)


@functools.cache
def load(version: str = "v2") -> SpecSchemas:
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    with open(os.path.join(FIXTURE_DIR, f"{version}.json"), "rb") as f:
        return SpecSchemas(json.load(f), version)


def _raise(errors: list[str], what: str, version: str) -> None:
    if errors:
        more = f" (+{len(errors) - 1} more: {'; '.join(errors[1:4])})" if len(errors) > 1 else ""
        raise SpecViolation(f"{what} [{version} spec] at {errors[0]}{more}")


def validate(schema_name: str, instance: Any, version: str = "v2") -> None:
    """Raise SpecViolation unless `instance` matches components.schemas[schema_name]."""
    _raise(load(version).schema_errors(schema_name, instance), schema_name, version)


def validate_response(operation: str, status: int | str, body: Any, version: str = "v2") -> None:
    """Raise SpecViolation unless `body` is what the spec documents for `operation` at `status`."""
    _raise(load(version).response_errors(operation, status, body), f"{operation} -> {status}", version)


def validate_request(operation: str, body: Any, version: str = "v2") -> None:
    _raise(load(version).request_errors(operation, body), f"{operation} request", version)


def validate_stream_event(event: str, data: Any, version: str = "v2") -> None:
    """Raise SpecViolation unless `data` is the AssistantStreamEvent payload for `event`."""
    _raise(load(version).stream_event_errors(event, data), f"event {event}", version)
