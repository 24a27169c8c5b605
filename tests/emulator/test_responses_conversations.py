"""The Conversations API through the unmodified `openai` SDK, responses chained through a
conversation, and the emulator's JSON against the recorded shapes (tests/fixtures/spec/responses_recorded.json)."""

from __future__ import annotations

import openai
import pytest

from tests.emulator.rawhttp import call_json
from tests.emulator.responses_support import RECORDED, poll, raw_call

ITEM = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello, this is a test item"}]}


def test_conversation_crud_and_items(emulator):
    client = emulator.client()
    conv, body = raw_call(client.conversations.with_raw_response.create, "POST /conversations",
                          metadata={"topic": "capybaras"})
    assert conv.id.startswith("conv_") and body["metadata"] == {"topic": "capybaras"}
    got, _ = raw_call(client.conversations.with_raw_response.retrieve, "GET /conversations/{conversation_id}",
                      conv.id)
    assert got == conv
    updated, _ = raw_call(client.conversations.with_raw_response.update, "POST /conversations/{conversation_id}",
                          conv.id, metadata={"modified": "true"})
    assert updated.metadata == {"modified": "true"}

    added, _ = raw_call(client.conversations.items.with_raw_response.create,
                        "POST /conversations/{conversation_id}/items", conv.id, items=[ITEM, ITEM])
    assert [i.content[0].text for i in added.data] == ["Hello, this is a test item"] * 2
    first = added.data[0].id
    page, _ = raw_call(client.conversations.items.with_raw_response.list,
                       "GET /conversations/{conversation_id}/items", conv.id, order="asc", limit=1)
    assert [i.id for i in page.data] == [first] and page.has_more
    item, _ = raw_call(client.conversations.items.with_raw_response.retrieve,
                       "GET /conversations/{conversation_id}/items/{item_id}", first, conversation_id=conv.id)
    assert item.id == first
    after, _ = raw_call(client.conversations.items.with_raw_response.delete,
                        "DELETE /conversations/{conversation_id}/items/{item_id}", first, conversation_id=conv.id)
    assert after.id == conv.id
    assert [i.id for i in client.conversations.items.list(conv.id)] == [added.data[1].id]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(first, conversation_id=conv.id)

    deleted, body = raw_call(client.conversations.with_raw_response.delete,
                             "DELETE /conversations/{conversation_id}", conv.id)
    assert deleted.deleted and body == {"id": conv.id, "object": "conversation.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_responses_chained_through_a_conversation(emulator):
    client = emulator.client()
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "My name is Szymon."}])
    first = client.responses.create(model="gpt-4o", input="Hello!", conversation=conv.id)
    second = client.responses.create(model="gpt-4o", input="Remind me of my name", conversation={"id": conv.id},
                                     background=True)
    assert first.conversation.id == conv.id
    _, final = poll(client, second.id)
    assert final["status"] == "completed" and final["conversation"] == {"id": conv.id}
    assert final["usage"]["input_tokens_details"]["cached_tokens"] > 0
    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "user"), ("message", "assistant"), ("message", "user"),
        ("message", "assistant")]
    assert items[2].content[0].text == first.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="x", conversation="conv_missing")


@pytest.mark.parametrize("name, operation", [
    ("conversation", "POST /conversations"),
    ("conversation_updated", "POST /conversations/{conversation_id}"),
])
def test_conversation_shapes_follow_the_recording(emulator, name, operation):
    recorded = RECORDED[name]
    conv = call_json(emulator.url, "POST", "/v1/conversations", {})
    path = "/v1/conversations" if name == "conversation" else f"/v1/conversations/{conv['id']}"
    body = call_json(emulator.url, "POST", path, recorded["request"] or {})
    assert list(body) == list(recorded["body"])
    assert body["metadata"] == recorded["body"]["metadata"]


def assert_keys_in_order(recorded: dict, emulated: dict, what: str) -> None:
    positions = []
    for key in recorded:
        assert key in emulated, f"{what}: {key!r} missing; emulator sent {list(emulated)}"
        positions.append(list(emulated).index(key))
    assert positions == sorted(positions), f"{what}: recorded order {list(recorded)} vs {list(emulated)}"


@pytest.mark.parametrize("name", ["response", "response_function_call", "response_followup"])
def test_response_shapes_follow_the_recording(emulator, name):
    recorded = RECORDED[name]
    request = dict(recorded["request"])
    if request.get("previous_response_id"):
        first = call_json(emulator.url, "POST", "/v1/responses", RECORDED["response"]["request"])
        request["previous_response_id"] = first["id"]
    body = call_json(emulator.url, "POST", "/v1/responses", request)
    assert_keys_in_order(recorded["body"], body, name)
    assert_keys_in_order(recorded["body"]["usage"], body["usage"], f"{name}.usage")
    for rec_item, item in zip(recorded["body"]["output"], body["output"], strict=True):
        assert_keys_in_order(rec_item, item, f"{name}.output")
    for rec_tool, tool in zip(recorded["body"]["tools"], body["tools"], strict=True):
        assert_keys_in_order(rec_tool, tool, f"{name}.tools")


def test_conversation_item_and_input_item_shapes_follow_the_recording(emulator):
    conv = call_json(emulator.url, "POST", "/v1/conversations", {})
    page = call_json(emulator.url, "POST", f"/v1/conversations/{conv['id']}/items",
                     RECORDED["conversation_item"]["request"])
    assert_keys_in_order(RECORDED["conversation_item"]["body"], page["data"][0], "conversation item")
    listed = call_json(emulator.url, "GET", f"/v1/conversations/{conv['id']}/items")
    assert_keys_in_order(RECORDED["conversation_items"]["body"], listed, "items page")
    resp = call_json(emulator.url, "POST", "/v1/responses", {"model": "gpt-4o", "input": "list my input"})
    items = call_json(emulator.url, "GET", f"/v1/responses/{resp['id']}/input_items")
    assert_keys_in_order(RECORDED["input_items"]["body"], items, "input items page")
    assert_keys_in_order(RECORDED["input_items"]["body"]["data"][0], items["data"][0], "input item")
