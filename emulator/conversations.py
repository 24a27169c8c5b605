"""HTTP handlers of the Conversations API: conversations (create, retrieve, update, delete) and
their items (create, list, retrieve, delete). Responses made with `conversation` append to them."""

from __future__ import annotations

from aiohttp import web

from emulator import models
from emulator.app import send_json
from emulator.errors import ApiError
from emulator.http_helpers import check_metadata, list_response, read_json, store_of
from emulator.request_schema import schemas_for
from emulator.responses import RESPONSES, ResponsesState, conversation_item, input_resources, new_id


def state_of(request: web.Request) -> ResponsesState:
    state = request.app[RESPONSES]
    state.settle(store_of(request).clock.now())
    return state


async def checked_body(request: web.Request, operation: str) -> dict:
    body = await read_json(request)
    schemas_for("responses").check(operation, body)
    return body


def conversation_of(request: web.Request) -> tuple[ResponsesState, dict]:
    state = state_of(request)
    conv_id = request.match_info["conversation_id"]
    conv = state.conversations.get(conv_id)
    if conv is None:
        raise ApiError(404, f"Conversation with id '{conv_id}' not found.")
    return state, conv


def item_of(request: web.Request) -> tuple[ResponsesState, dict, int]:
    state, conv = conversation_of(request)
    item_id = request.match_info["item_id"]
    for index, item in enumerate(state.conversation_items[conv["id"]]):
        if item["id"] == item_id:
            return state, conv, index
    raise ApiError(404, f"Item with id '{item_id}' not found.")


def add_items(request: web.Request, state: ResponsesState, conv_id: str, raw: list[dict]) -> list[dict]:
    store = store_of(request)
    added = [conversation_item(i, conv_id, store.now()) for i in input_resources(store, raw)]
    state.conversation_items[conv_id].extend(added)
    return added


async def create_conversation(request: web.Request) -> web.StreamResponse:
    body = await checked_body(request, "POST /conversations")
    state, store = state_of(request), store_of(request)
    conv = {"id": new_id(store, "conv"), "object": "conversation", "created_at": store.now(),
            "metadata": check_metadata(body.get("metadata"))}
    state.conversations[conv["id"]] = conv
    state.conversation_items[conv["id"]] = []
    add_items(request, state, conv["id"], body.get("items") or [])
    return await send_json(request, conv)


async def get_conversation(request: web.Request) -> web.StreamResponse:
    return await send_json(request, conversation_of(request)[1])


async def update_conversation(request: web.Request) -> web.StreamResponse:
    body = await checked_body(request, "POST /conversations/{conversation_id}")
    _, conv = conversation_of(request)
    conv["metadata"] = check_metadata(body.get("metadata"))
    return await send_json(request, conv)


async def delete_conversation(request: web.Request) -> web.StreamResponse:
    state, conv = conversation_of(request)
    del state.conversations[conv["id"]]
    del state.conversation_items[conv["id"]]
    return await send_json(request, models.deleted(conv["id"], "conversation"))


async def create_items(request: web.Request) -> web.StreamResponse:
    body = await checked_body(request, "POST /conversations/{conversation_id}/items")
    state, conv = conversation_of(request)
    added = add_items(request, state, conv["id"], body["items"])
    return await send_json(request, models.page(added, False))


async def list_items(request: web.Request) -> web.StreamResponse:
    state, conv = conversation_of(request)
    return await send_json(request, list_response(request, state.conversation_items[conv["id"]], dict))


async def get_item(request: web.Request) -> web.StreamResponse:
    state, conv, index = item_of(request)
    return await send_json(request, state.conversation_items[conv["id"]][index])


async def delete_item(request: web.Request) -> web.StreamResponse:
    """Answers with the conversation, as the spec and the SDK have it (the older ruby-openai
    recording shows a `conversation.item.deleted` object instead)."""
    state, conv, index = item_of(request)
    del state.conversation_items[conv["id"]][index]
    return await send_json(request, conv)
