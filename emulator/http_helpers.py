"""Request helpers shared by the handler modules: JSON bodies, lookups, validation, pagination."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from emulator import models
from emulator.app import STORE, base_headers
from emulator.errors import bad_request, not_found, unknown_parameter
from emulator.request_fields import FIELDS
from emulator.state import Store, paginate


# -- request helpers -------------------------------------------------------------------------------
async def read_json(request: web.Request) -> dict:
    raw = await request.read()
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
    allowed = accepted_fields(request)
    if allowed is not None:
        for name in body:
            if name not in allowed:
                raise unknown_parameter(name)
    return body


def accepted_fields(request: web.Request) -> frozenset[str] | None:
    """The body fields the spec defines for this operation and version (None: not checked)."""
    canonical = request.match_info.route.resource.canonical if request.match_info.route.resource else ""
    template = canonical.removeprefix("/v1").removeprefix("/openai")
    operation = f"{request.method} {template}"
    fields = FIELDS.get(request.get("version", "v2"), {}).get(operation) or FIELDS["v2"].get(operation)
    return frozenset(fields) if fields is not None else None


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def version_of(request: web.Request) -> str:
    return request["version"]


def check_metadata(metadata: Any, param: str = "metadata") -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise bad_request(f"Invalid type for '{param}': expected an object, but got "
                          f"{type(metadata).__name__} instead.", param=param, code="invalid_type")
    if len(metadata) > 16:
        raise bad_request(f"Invalid '{param}': too many properties. Expected an object with at most 16 "
                          f"properties, but got an object with {len(metadata)} properties instead.",
                          param=param, code="object_above_max_properties")
    for key, value in metadata.items():
        if not isinstance(value, str):
            kind = {bool: "a boolean", int: "an integer", float: "a decimal"}.get(type(value), "an object")
            raise bad_request(f"Invalid type for '{param}.{key}': expected a string, but got {kind} instead.",
                              param=f"{param}.{key}", code="invalid_type")
    return dict(metadata)


def lookup(table: dict, kind: str, object_id: str) -> Any:
    try:
        return table[object_id]
    except KeyError:
        raise not_found(kind, object_id) from None


def list_response(request: web.Request, items: list[dict], render) -> dict:
    data, has_more = paginate(items, dict(request.query))
    return models.page([render(item) for item in data], has_more)


async def open_event_stream(request: web.Request) -> web.StreamResponse:
    """A prepared `text/event-stream` response with the API's usual headers."""
    headers = base_headers(request)
    headers["Content-Type"] = "text/event-stream; charset=utf-8"
    headers["Cache-Control"] = "no-cache"
    resp = web.StreamResponse(status=200, headers=headers)
    await resp.prepare(request)
    return resp
