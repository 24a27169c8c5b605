"""Request helpers shared by the handler modules: JSON bodies, lookups, validation, pagination."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator import models
from emulator.app import BODY, STORE, base_headers
from emulator.errors import bad_request, not_found
from emulator.request_schema import parse_body
from emulator.state import Store, paginate


# -- request helpers -------------------------------------------------------------------------------
async def read_json(request: web.Request) -> dict:
    """The JSON body; for an operation the spec gives a body schema, the one already checked against it."""
    if BODY in request:
        return request[BODY]
    return parse_body(await request.read())


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
