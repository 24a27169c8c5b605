"""The Responses API through the unmodified `openai` SDK against a real emulator on loopback; every
raw answer is validated against the spec's schema (tests/fixtures/spec/responses_spec.json)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.emulator.rawhttp import raw
from tests.emulator.responses_support import DOC, check_body, poll, raw_call, upload_store

CREATE = "POST /responses"
GET = "GET /responses/{response_id}"
WEATHER = {"type": "function", "name": "get_current_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                          "required": ["location"]}}


def create(client, **kwargs):
    return raw_call(client.responses.with_raw_response.create, CREATE, **kwargs)


def test_plain_response_retrieve_input_items_delete(emulator):
    client = emulator.client()
    resp, body = create(client, model="gpt-4o", input="Hello, what can you do?")
    assert body["status"] == "completed" and body["object"] == "response"
    assert resp.output_text == "This is the emulated assistant answering: Hello, what can you do?."
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0

    again, _ = raw_call(client.responses.with_raw_response.retrieve, GET, resp.id)
    assert again.model_dump() == resp.model_dump()
    items, _ = raw_call(client.responses.input_items.with_raw_response.list,
                        "GET /responses/{response_id}/input_items", resp.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [
        ("message", "user", "Hello, what can you do?")]
    count, _ = raw_call(client.responses.input_tokens.with_raw_response.count, "POST /responses/input_tokens",
                        model="gpt-4o", input="Hello, what can you do?")
    assert count.input_tokens == usage["input_tokens"]

    deleted = client.responses.delete(resp.id)
    assert deleted is None  # the SDK drops the body; the wire shape is checked below
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(resp.id)
    assert err.value.body["message"] == f"Response with id '{resp.id}' not found."


def test_delete_answers_the_recorded_shape(emulator):
    resp, _ = create(emulator.client(), model="gpt-4o", input="delete me")
    status, _, data = raw(emulator.url, "DELETE", f"/v1/responses/{resp.id}")
    assert status == 200 and json.loads(data) == {"id": resp.id, "object": "response.deleted", "deleted": True}


def test_store_false_is_not_retrievable(emulator):
    client = emulator.client()
    resp, body = create(client, model="gpt-4o", input="Forget this", store=False)
    assert body["store"] is False and body["status"] == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="and?", previous_response_id=resp.id)


def test_background_response_is_polled_to_completion(emulator):
    client = emulator.client()
    resp, body = create(client, model="gpt-4o", input="Take your time", background=True)
    assert body["status"] == "queued" and body["output"] == [] and body["usage"] is None
    seen, final = poll(client, resp.id)
    assert "in_progress" in seen and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"].startswith("This is the emulated assistant answering")
    assert final["completed_at"] >= final["created_at"]


def test_background_response_can_be_cancelled(emulator):
    client = emulator.client()
    resp, _ = create(client, model="gpt-4o", input="[slow] a long essay", background=True)
    cancelled, body = raw_call(client.responses.with_raw_response.cancel, "POST /responses/{response_id}/cancel",
                               resp.id)
    assert cancelled.status == "cancelled" and body["output"] == []
    _, final = poll(client, resp.id)
    assert final["status"] == "cancelled"
    plain, _ = create(client, model="gpt-4o", input="not in the background")
    with pytest.raises(openai.BadRequestError, match="background=true"):
        client.responses.cancel(plain.id)


def test_function_tool_round_trip(emulator):
    client = emulator.client()
    first, body = create(client, model="gpt-4o", input="What is the weather like in the Peak District?",
                         tools=[WEATHER])
    (call,) = body["output"]
    assert call["type"] == "function_call" and call["name"] == "get_current_weather"
    assert json.loads(call["arguments"]) == {"location": "emulated location"}
    assert body["tools"][0]["strict"] is True
    second, body2 = create(client, model="gpt-4o", previous_response_id=first.id, tools=[WEATHER],
                           input=[{"type": "function_call_output", "call_id": call["call_id"],
                                   "output": "12 degrees and raining"}])
    assert body2["previous_response_id"] == first.id
    assert [o["type"] for o in body2["output"]] == ["message"]
    assert "12 degrees and raining" in second.output_text
    # the whole chain was seen again: the earlier turn counts as cached input
    assert body2["usage"]["input_tokens_details"]["cached_tokens"] > 0


def test_chained_by_previous_response_id(emulator):
    client = emulator.client()
    first, body1 = create(client, model="gpt-4o", input="Hello! My name is Szymon.")
    second, body2 = create(client, model="gpt-4o", input="Remind me, what is my name?",
                           previous_response_id=first.id)
    assert body2["previous_response_id"] == first.id
    cached = body2["usage"]["input_tokens_details"]["cached_tokens"]
    assert 0 < cached < body2["usage"]["input_tokens"]
    assert body2["usage"]["input_tokens"] > body1["usage"]["input_tokens"]
    items = client.responses.input_items.list(second.id)
    assert [i.content[0].text for i in items.data] == ["Remind me, what is my name?"]


@pytest.mark.parametrize("include", [True, False])
def test_file_search_over_a_vector_store(emulator, include):
    client = emulator.client()
    vs_id = upload_store(client)
    kwargs = {"include": ["file_search_call.results"]} if include else {}
    resp, body = create(client, model="gpt-4o", input="Where do capybaras live?",
                        tools=[{"type": "file_search", "vector_store_ids": [vs_id]}], **kwargs)
    call, message = body["output"]
    assert call["type"] == "file_search_call" and call["queries"] == ["Where do capybaras live?"]
    if include:
        (hit,) = call["results"]
        assert hit["filename"] == "capybara.txt" and hit["text"] == DOC.decode() and 0 < hit["score"] <= 1
    else:
        assert call["results"] is None
    annotation = message["content"][0]["annotations"][0]
    assert annotation["type"] == "file_citation" and annotation["filename"] == "capybara.txt"
    assert client.vector_stores.retrieve(vs_id).last_active_at == body["created_at"]


def test_web_search_gives_canned_results(emulator):
    client = emulator.client()
    resp, body = create(client, model="gpt-4o", input="Latest capybara news",
                        tools=[{"type": "web_search"}], include=["web_search_call.action.sources"])
    call, message = body["output"]
    assert call["type"] == "web_search_call" and call["action"]["query"] == "Latest capybara news"
    assert call["action"]["sources"][0]["type"] == "url"
    citation = message["content"][0]["annotations"][0]
    text = message["content"][0]["text"]
    assert citation["type"] == "url_citation"
    assert text[citation["start_index"]:citation["end_index"]] == citation["title"]


def test_code_interpreter_runs_in_a_container(emulator):
    client = emulator.client()
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    resp, body = create(client, model="gpt-4o", input="Sum the numbers below ten", tools=tools,
                        include=["code_interpreter_call.outputs"])
    call = body["output"][0]
    assert call["type"] == "code_interpreter_call" and call["container_id"].startswith("cntr_")
    assert call["outputs"] == [{"type": "logs", "logs": "45\n"}]
    assert "The code printed 45." in resp.output_text
    # the container can be named again; an unknown one is a 404
    reuse, body2 = create(client, model="gpt-4o", input="again",
                          tools=[{"type": "code_interpreter", "container": call["container_id"]}])
    assert body2["output"][0]["container_id"] == call["container_id"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="x", tools=[{"type": "code_interpreter",
                                                                   "container": "cntr_missing"}])


def test_reasoning_model_reports_reasoning_tokens(emulator):
    resp, body = create(emulator.client(), model="o4-mini", input="Think about capybaras")
    assert body["output"][0]["type"] == "reasoning"
    details = body["usage"]["output_tokens_details"]
    assert 0 < details["reasoning_tokens"] < body["usage"]["output_tokens"]


@pytest.mark.parametrize("trigger, status, detail", [
    ("[fail:rate_limit_exceeded]", "failed", {"code": "rate_limit_exceeded"}),
    ("[fail:server_error]", "failed", {"code": "server_error"}),
    ("[incomplete:max_output_tokens]", "incomplete", {"reason": "max_output_tokens"}),
    ("[incomplete:content_filter]", "incomplete", {"reason": "content_filter"}),
])
@pytest.mark.parametrize("background", [False, True])
def test_failure_triggers(emulator, trigger, status, detail, background):
    client = emulator.client()
    resp, body = create(client, model="gpt-4o", input=f"Please answer {trigger} at length", background=background)
    if background:
        _, body = poll(client, resp.id)
    assert body["status"] == status
    if status == "failed":
        assert body["error"]["code"] == detail["code"] and body["error"]["message"]
        assert body["incomplete_details"] is None and not any(o["type"] == "message" for o in body["output"])
    else:
        assert body["incomplete_details"] == detail and body["error"] is None
        assert body["output"][-1]["status"] == "incomplete"


def test_max_output_tokens_cuts_the_reply(emulator):
    _, body = create(emulator.client(), model="gpt-4o", max_output_tokens=16,
                     input="one two three four five six seven eight nine ten eleven twelve thirteen")
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("base, query", [
    ("/openai/v1", ""),
    ("/openai", "?api-version=2025-04-01-preview"),
])
def test_azure_paths(emulator, base, query):
    headers = {"api-key": "azure-key", "Authorization": ""}
    status, _, data = raw(emulator.url, "POST", f"{base}/responses{query}", {"model": "gpt-4o", "input": "Hi Azure"},
                          headers)
    assert status == 200, data[:300]
    body = check_body(CREATE, json.loads(data))
    status, _, data = raw(emulator.url, "GET", f"{base}/responses/{body['id']}{query}", None, headers)
    assert status == 200 and json.loads(data)["id"] == body["id"]
    client = openai.AzureOpenAI(api_key="azure-key", azure_endpoint=emulator.url, api_version="2025-04-01-preview",
                                max_retries=0)
    assert client.responses.create(model="gpt-4o", input="Hi SDK").status == "completed"


@pytest.mark.parametrize("body, param, code", [
    ({"model": "gpt-4o", "input": 5}, "input", "invalid_type"),
    ({"model": "gpt-4o", "input": "hi", "frobnicate": True}, "frobnicate", "unknown_parameter"),
    ({"model": "gpt-4o", "input": "hi", "background": "yes"}, "background", "invalid_type"),
    ({"model": "gpt-4o", "input": "hi", "include": ["everything"]}, "include[0]", "invalid_value"),
    ({"model": "gpt-4o", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
    ({"input": "hi"}, "model", "missing_required_parameter"),
])
def test_malformed_create_is_an_openai_400(emulator, body, param, code):
    status, _, data = raw(emulator.url, "POST", "/v1/responses", body)
    assert status == 400
    error = check_body(CREATE, json.loads(data), 400)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert error["message"]


def test_malformed_json_and_conflicting_chains_are_400(emulator):
    status, _, data = raw(emulator.url, "POST", "/v1/responses", b"{not json",
                          {"Content-Type": "application/json"})
    assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"
    client = emulator.client()
    conv = client.conversations.create()
    first = client.responses.create(model="gpt-4o", input="hi")
    with pytest.raises(openai.BadRequestError, match="Mutually exclusive"):
        client.responses.create(model="gpt-4o", input="x", previous_response_id=first.id, conversation=conv.id)
