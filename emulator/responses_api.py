"""HTTP handlers of the Responses API and the route table of both new APIs, served under /v1,
Azure's /openai/v1 (no api-version) and /openai with ?api-version=..."""

from __future__ import annotations

import asyncio

from aiohttp import web

from emulator import conversations as c
from emulator import models, responses, responses_stream, sse
from emulator.app import SETTINGS, send_json
from emulator.errors import ApiError
from emulator.http_helpers import list_response, open_event_stream, store_of
from emulator.responses import RESPONSES, ResponsesState, StoredResponse

PREFIXES = ("/v1", "/openai/v1", "/openai")


def included(request: web.Request, body: dict | None = None) -> list[str]:
    return list((body or {}).get("include") or []) + request.query.getall("include[]", []) \
        + request.query.getall("include", [])


def stored_response(request: web.Request) -> tuple[ResponsesState, StoredResponse]:
    state = c.state_of(request)
    response_id = request.match_info["response_id"]
    resp = state.responses.get(response_id)
    if resp is None or not resp.stored:
        raise ApiError(404, f"Response with id '{response_id}' not found.")
    return state, resp


def poll_headers(request: web.Request) -> dict[str, str]:
    return {"openai-poll-after-ms": str(request.app[SETTINGS].poll_after_ms)}


async def create_response(request: web.Request) -> web.StreamResponse:
    body = await c.checked_body(request, "POST /responses")
    state, store = c.state_of(request), store_of(request)
    resp = responses.create(state, store, body, included(request, body), request.app[SETTINGS].phase_seconds)
    if not resp.stored:
        del state.responses[resp.id]
    if body.get("stream"):
        return await stream_response(request, resp)
    return await send_json(request, resp.obj(store.clock.now()), extra_headers=poll_headers(request))


async def get_response(request: web.Request) -> web.StreamResponse:
    _, resp = stored_response(request)
    return await send_json(request, resp.obj(store_of(request).clock.now()), extra_headers=poll_headers(request))


async def delete_response(request: web.Request) -> web.StreamResponse:
    state, resp = stored_response(request)
    del state.responses[resp.id]
    return await send_json(request, models.deleted(resp.id, "response"))


async def cancel_response(request: web.Request) -> web.StreamResponse:
    _, resp = stored_response(request)
    now = store_of(request).clock.now()
    responses.cancel(resp, now)
    return await send_json(request, resp.obj(now))


async def list_input_items(request: web.Request) -> web.StreamResponse:
    _, resp = stored_response(request)
    return await send_json(request, list_response(request, resp.input_items, dict))


async def count_input_tokens(request: web.Request) -> web.StreamResponse:
    body = await c.checked_body(request, "POST /responses/input_tokens")
    state, store = c.state_of(request), store_of(request)
    context, _ = responses.context_for(state, body)
    count, _ = responses.input_token_count(body, context, responses.input_resources(store, body.get("input")))
    return await send_json(request, {"object": "response.input_tokens", "input_tokens": count})


async def stream_response(request: web.Request, resp: StoredResponse) -> web.StreamResponse:
    """One write per event, each when the emulated clock reaches it; a cancelled response's
    stream ends where the cancel found it."""
    clock = store_of(request).clock
    fault = request.get("fault")
    out = await open_event_stream(request)
    for written, (at, event) in enumerate(responses_stream.events(resp)):
        if fault is not None and fault.reset_after_events is not None and written >= fault.reset_after_events:
            if request.transport is not None:
                request.transport.abort()
            return out
        wait = clock.wall_seconds(at - clock.now())
        if wait > 0:
            await asyncio.sleep(wait)
        clock.advance_to(at)
        if resp.cancelled_at is not None:
            break
        await out.write(sse.encode(event["type"], event))
        if fault is not None and fault.slow_body_ms:
            await asyncio.sleep(fault.slow_body_ms / 1000)
    await out.write_eof()
    return out


ROUTES = [
    ("POST", "/responses", create_response),
    ("POST", "/responses/input_tokens", count_input_tokens),
    ("GET", "/responses/{response_id}", get_response),
    ("DELETE", "/responses/{response_id}", delete_response),
    ("POST", "/responses/{response_id}/cancel", cancel_response),
    ("GET", "/responses/{response_id}/input_items", list_input_items),
    ("POST", "/conversations", c.create_conversation),
    ("GET", "/conversations/{conversation_id}", c.get_conversation),
    ("POST", "/conversations/{conversation_id}", c.update_conversation),
    ("DELETE", "/conversations/{conversation_id}", c.delete_conversation),
    ("POST", "/conversations/{conversation_id}/items", c.create_items),
    ("GET", "/conversations/{conversation_id}/items", c.list_items),
    ("GET", "/conversations/{conversation_id}/items/{item_id}", c.get_item),
    ("DELETE", "/conversations/{conversation_id}/items/{item_id}", c.delete_item),
]


def add_routes(app: web.Application) -> None:
    app[RESPONSES] = ResponsesState()
    for prefix in PREFIXES:
        for method, path, handler in ROUTES:
            app.router.add_route(method, prefix + path, handler)
