"""Request bodies of the Responses and Conversations APIs checked against the spec's request
schemas (emulator/responses_request_schemas.json, made by scripts/extract_responses_fixture.py),
answered with OpenAI-shaped 400s: `missing_required_parameter`, `unknown_parameter`,
`invalid_type`, `invalid_value`."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from emulator.errors import ApiError, missing, unknown_parameter

URI = "urn:openai-spec:responses-requests"
JSON_TYPES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
              "array": "an array", "object": "an object", "null": "null"}


@functools.cache
def _schemas() -> tuple[dict, Registry]:
    data = json.loads(resources.files("emulator").joinpath("responses_request_schemas.json").read_text())
    absolute = json.loads(json.dumps(data).replace('"$ref": "#/', f'"$ref": "{URI}#/'))
    registry = Registry().with_resource(URI, Resource(contents=absolute, specification=DRAFT202012))
    return absolute, registry


@functools.cache
def _validator(operation: str) -> Draft202012Validator:
    data, registry = _schemas()
    return Draft202012Validator(data["requests"][operation], registry=registry)


@functools.cache
def top_level_fields(operation: str) -> frozenset[str]:
    """The body fields the operation declares (its schema and the allOf parts it is made of)."""
    data, registry = _schemas()
    resolver = registry.resolver()
    names: set[str] = set()
    stack = [data["requests"][operation]]
    while stack:
        node = stack.pop()
        if "$ref" in node:
            stack.append(resolver.lookup(node["$ref"]).contents)
        names |= set(node.get("properties", {}))
        stack.extend(node.get("allOf", []))
    return frozenset(names)


def _param(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    return {str: "a string", list: "an array", dict: "an object", type(None): "null"}.get(type(value), "a value")


def _to_api_error(error: ValidationError) -> ApiError:
    param = _param(error)
    if error.validator == "required":
        name = error.message.split("'")[1]
        return missing(f"{param}.{name}" if param else name)
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = " or ".join(JSON_TYPES.get(w, w) for w in wanted)
        return ApiError(400, f"Invalid type for '{param}': expected {expected}, but got {_kind(error.instance)} "
                             "instead.", param=param, code="invalid_type")
    if error.validator in ("anyOf", "oneOf"):
        # Every branch rejected the value's JSON type: say which types would do, as OpenAI does.
        wanted: list[str] = []
        branches = {e.relative_schema_path[0] for e in error.context}
        for e in error.context:
            if e.validator == "type" and not e.relative_path:
                types = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
                wanted += [JSON_TYPES.get(t, t) for t in types if JSON_TYPES.get(t, t) not in wanted]
        typed = {e.relative_schema_path[0] for e in error.context if e.validator == "type" and not e.relative_path}
        if wanted and typed == branches:
            return ApiError(400, f"Invalid type for '{param}': expected one of {', '.join(wanted)}, but got "
                                 f"{_kind(error.instance)} instead.", param=param, code="invalid_type")
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        shown = ", ".join(f"'{v}'" for v in allowed)
        return ApiError(400, f"Invalid value: '{error.instance}'. Supported values are: {shown}.",
                        param=param, code="invalid_value")
    return ApiError(400, f"Invalid '{param or 'body'}': {error.message[:300]}", param=param or None,
                    code="invalid_value")


def check(operation: str, body: dict) -> None:
    """Raise the 400 OpenAI would send for `body` on `operation` ("POST /responses"), if any."""
    for name in body:
        if name not in top_level_fields(operation):
            raise unknown_parameter(name)
    errors = list(_validator(operation).iter_errors(body))
    if errors:
        raise _to_api_error(best_match(errors))


def known(operation: str) -> bool:
    return operation in _schemas()[0]["requests"]


__all__ = ["check", "known", "top_level_fields", "ApiError"]
