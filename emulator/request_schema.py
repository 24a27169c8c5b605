"""Request bodies checked against the official spec before any handler sees them: the one
validator of every API the emulator serves.

Each API's schemas are the spec's own request schemas, package data written by a fixture script:
one document {"operations": {"METHOD /path": schema}, "components": {"schemas": ...}} per API,
  * Assistants (with files and vector stores), one per version: request_schemas.json holds
    {"v1": document, "v2": document} (scripts/extract_spec_fixture.py);
  * Responses and Conversations: responses_request_schemas.json (scripts/extract_responses_fixture.py).
An operation is validated as soon as its schema is in its file. A body that fails gets OpenAI's 400
`invalid_request_error`, worded as OpenAI words it: "Invalid type for 'tools[0].function':
expected an object, but got a string instead." (param "tools[0].function", code "invalid_type").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from emulator.errors import ApiError, bad_request, missing, unknown_parameter

_NAMES = {"string": "a string", "integer": "an integer", "number": "a decimal", "boolean": "a boolean",
          "object": "an object", "array": "an array", "null": "null"}
_NUMBER = {"integer": "integer", "number": "decimal"}  # how OpenAI names them in bound errors
_COMPOSITIONS = ("anyOf", "oneOf")


def parse_body(raw: bytes) -> dict:
    """A request's JSON body (empty: {}), or the 400 OpenAI answers when it is not a JSON object."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
            "JSON. If you have trouble figuring out how to fix this, please contact us through our help center "
            "at help.openai.com.)") from None
    if not isinstance(body, dict):
        raise bad_request("Invalid type for request body: expected an object.", code="invalid_type")
    return body


class RequestSchemas:
    """The request body schemas of one API (or API version), and the check that answers a body with
    the 400 OpenAI would."""

    def __init__(self, name: str, document: dict) -> None:
        uri = f"urn:openai-spec:{name}:requests"
        self.operations: dict[str, Any] = document["operations"]
        registry = Registry().with_resource(uri, Resource(document, specification=DRAFT202012))
        self._resolver = registry.resolver(uri)
        self._validators = {op: Draft202012Validator({"$ref": f"{uri}#/operations/{_pointer(op)}"}, registry=registry)
                            for op in self.operations}
        # The top-level fields each operation defines: any other is an unknown parameter.
        self.fields = {op: frozenset(self._properties(schema)) for op, schema in self.operations.items()}

    def _properties(self, schema: dict) -> Iterable[str]:
        if "$ref" in schema:
            schema = self._resolver.lookup(schema["$ref"]).contents
        yield from schema.get("properties", {})
        for part in schema.get("allOf", []):
            yield from self._properties(part)

    def check(self, operation: str, body: dict) -> None:
        """Raise the 400 OpenAI answers for the first thing wrong with `body`, if anything is."""
        fields = self.fields[operation]
        for name in body:
            if name not in fields:
                raise unknown_parameter(name)
        errors = [e for e in self._validators[operation].iter_errors(body) if not _matched_several(e)]
        if errors:
            raise _api_error(meant_error(errors))


def _pointer(key: str) -> str:
    """`key` as one JSON pointer step inside a URI fragment ("POST /assistants" has a slash)."""
    return quote(key.replace("~", "~0").replace("/", "~1"))


@dataclass(frozen=True)
class SchemaFile:
    """Where one API's request schemas ship: what differs between the APIs is this data; the
    validation, the choice of the error reported and its wording are shared."""

    file: str
    document: str | None  # the key of its document, for a file holding several


def meant_error(errors: list[ValidationError]) -> ValidationError:
    """The shallowest concrete error, inside the variant of a union the value was meant as."""
    return _meant(min(errors, key=_rank))


APIS = {
    "v1": SchemaFile("request_schemas.json", "v1"),
    "v2": SchemaFile("request_schemas.json", "v2"),
    # a function tool without `name` is "tools[0].name", missing_required_parameter, as OpenAI's
    # Responses API answers (mozilla-ai/any-llm#1310)
    "responses": SchemaFile("responses_request_schemas.json", None),
}


@functools.cache
def _file(name: str) -> dict:
    return json.loads(resources.files("emulator").joinpath(name).read_text())


@functools.cache
def schemas_for(api: str) -> RequestSchemas:
    """The request schemas of `api`: an Assistants version ("v1", "v2") or "responses" (with Conversations)."""
    source = APIS[api]
    document = _file(source.file) if source.document is None else _file(source.file)[source.document]
    return RequestSchemas(api, document)


def operation_schemas(version: str, operation: str) -> RequestSchemas | None:
    """Whose schema validates the Assistants `operation` under `version`: its own, or v2's for an
    operation v1 never had (vector stores answer under either version)."""
    for candidate in (version, "v2"):
        if candidate in APIS and operation in schemas_for(candidate).operations:
            return schemas_for(candidate)
    return None


# -- which error to report ------------------------------------------------------------------------
def _matched_several(error: ValidationError) -> bool:
    # OpenAPI's oneOf branches overlap (an empty object fits several); the API takes such bodies.
    return error.validator == "oneOf" and not error.context


def _rank(error: ValidationError) -> tuple[bool, int]:
    """Concrete errors before "no branch fits" ones, shallow before deep, then in schema order."""
    return error.validator in _COMPOSITIONS, len(error.path)


def _kind_rejected(error: ValidationError) -> bool:
    """Whether a branch error says the value is not of the branch's kind at all (its JSON type, or
    the `type` tag that names the variant), rather than a flaw inside a variant it is."""
    if not error.relative_path:
        return error.validator in ("type", "enum", "const")
    return list(error.relative_path) == ["type"] and error.validator in ("enum", "const")


def _fitting(error: ValidationError) -> list[list[ValidationError]]:
    """The errors of each anyOf/oneOf branch whose kind the value is (its JSON type and `type` tag
    fit): the variants it was meant as, flawed inside."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return [errs for errs in branches.values() if not any(_kind_rejected(e) for e in errs)]


def _meant(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf, descend into the branch the value was meant for (its type and tag fit)."""
    while error.validator in _COMPOSITIONS and error.context:
        meant = _fitting(error)
        if not meant:
            return error
        errors = [e for e in meant[0] if not _matched_several(e)]
        if not errors:
            return error
        error = min(errors, key=_rank)
    return error


# -- how OpenAI words it --------------------------------------------------------------------------
def param_of(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    """The JSON Schema type of a parsed JSON value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), "null")


def _got(value: Any) -> str:
    return _NAMES[_kind(value)]


def _expected(kinds: Sequence[str]) -> str:
    names = list(dict.fromkeys(_NAMES.get(k, k) for k in kinds))
    if len(names) > 1 and "null" in names:
        names.remove("null")  # "expected a string" reads better than "one of a string or null"
    if len(names) == 1:
        return names[0]
    return "one of " + ", ".join(names[:-1]) + f" or {names[-1]}"


def _quoted(values: Sequence[Any]) -> str:
    shown = [f"'{v}'" for v in values if v is not None]
    if len(shown) <= 2:
        return " and ".join(shown)
    return ", ".join(shown[:-1]) + f", and {shown[-1]}"


def _branch_kinds(error: ValidationError) -> tuple[list[str], list[Any], list[Any]]:
    """JSON types, allowed values, and `type` tags the branches of an anyOf/oneOf accept."""
    kinds: list[str] = []
    values: list[Any] = []
    tags: list[Any] = []
    for sub in error.context or ():
        allowed = sub.validator_value if sub.validator == "enum" else [sub.validator_value]
        if not sub.relative_path and sub.validator == "type":
            kinds += [sub.validator_value] if isinstance(sub.validator_value, str) else list(sub.validator_value)
        elif not sub.relative_path and sub.validator in ("enum", "const"):
            values += allowed
            kinds += [_kind(v) for v in allowed]
        elif list(sub.relative_path) == ["type"] and sub.validator in ("enum", "const"):
            tags += allowed
            kinds.append("object")
    return kinds, values, tags


def _api_error(error: ValidationError) -> ApiError:
    param = param_of(list(error.absolute_path))
    value, limit, kind = error.instance, error.validator_value, error.validator
    if kind == "type":
        expected = _expected([limit] if isinstance(limit, str) else limit)
        return bad_request(f"Invalid type for '{param}': expected {expected}, but got {_got(value)} instead.",
                           param=param, code="invalid_type")
    if kind == "required":
        name = next(n for n in limit if n not in value)
        return missing(param_of([*error.absolute_path, name]))
    if kind in ("enum", "const"):
        allowed = limit if kind == "enum" else [limit]
        return bad_request(f"Invalid value: '{value}'. Supported values are: {_quoted(allowed)}.",
                           param=param, code="invalid_value")
    if kind in _COMPOSITIONS:
        if _fitting(error):  # a variant it is, but not one without flaws
            return bad_request(f"Invalid '{param}': does not match the schema.", param=param, code="invalid_value")
        kinds, values, tags = _branch_kinds(error)
        if tags and isinstance(value, dict):
            tag_param = param_of([*error.absolute_path, "type"])
            return bad_request(f"Invalid value: '{value.get('type')}'. Supported values are: {_quoted(tags)}.",
                               param=tag_param, code="invalid_value")
        if values and _kind(value) in kinds:
            return bad_request(f"Invalid value: '{value}'. Supported values are: {_quoted(values)}.",
                               param=param, code="invalid_value")
        return bad_request(f"Invalid type for '{param}': expected {_expected(kinds or ['object'])}, "
                           f"but got {_got(value)} instead.", param=param, code="invalid_type")
    if kind == "additionalProperties" and limit is False:
        declared = error.schema.get("properties", {})
        name = next((n for n in value if n not in declared), "")
        return unknown_parameter(param_of([*error.absolute_path, name]))
    return bad_request(f"Invalid '{param}': {_bound(kind, value, limit)}", param=param, code=_bound_code(kind, value))


_TOO = {"maxLength": ("string too long", "a string with maximum length {}"),
        "minLength": ("string too short", "a string with minimum length {}"),
        "maxItems": ("array too long", "an array with maximum length {}"),
        "minItems": ("array too short", "an array with minimum length {}"),
        "maxProperties": ("too many properties", "an object with at most {} properties"),
        "minProperties": ("too few properties", "an object with at least {} properties"),
        "maximum": ("above maximum value", "a value <= {}"),
        "exclusiveMaximum": ("above maximum value", "a value < {}"),
        "minimum": ("below minimum value", "a value >= {}"),
        "exclusiveMinimum": ("below minimum value", "a value > {}")}


def _bound(kind: str, value: Any, limit: Any) -> str:
    if kind not in _TOO:
        return "does not match the schema."
    what, expected = _TOO[kind]
    if kind.endswith(("Length", "Items")):
        got = f"{_got(value)} with length {len(value)}"
    elif kind.endswith("Properties"):
        got = f"an object with {len(value)} properties"
    else:
        what, got = f"{_NUMBER[_kind(value)]} {what}", str(value)
    return f"{what}. Expected {expected.format(limit)}, but got {got} instead."


def _bound_code(kind: str, value: Any) -> str:
    codes = {"maxLength": "string_above_max_length", "minLength": "string_below_min_length",
             "maxItems": "array_above_max_length", "minItems": "array_below_min_length",
             "maxProperties": "object_above_max_properties", "minProperties": "object_below_min_properties"}
    if kind in codes:
        return codes[kind]
    if kind in ("maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"):
        side = "above_max" if "max" in kind.lower() else "below_min"
        return f"{_NUMBER[_kind(value)]}_{side}_value"
    return "invalid_value"
