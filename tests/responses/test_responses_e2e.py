"""The Responses API end to end: the unmodified openai SDK -> the proxy -> the emulator, recorded
into a real store; every row checked against the objects the SDK returned."""

from __future__ import annotations

from datetime import datetime, timezone

import openai
import pytest

from tests.emulator.responses_support import upload_store
from tests.recording.recorded import rows
from tests.responses.conftest import AZURE_VERSION

TERMINAL = ("completed", "failed", "incomplete", "cancelled")


def when(seconds: int | float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def poll(client, response_id: str) -> tuple[object, int]:
    """Retrieve until finished, as a client of a background response does: (final, retrieves)."""
    for n in range(1, 200):
        got = client.responses.retrieve(response_id)
        if got.status in TERMINAL:
            return got, n
    raise AssertionError(f"{response_id} never finished")


def by_id(con, view: str, key: str = "id") -> dict[str, dict]:
    return {r[key]: r for r in rows(con, f"SELECT * FROM {view}")}


def assert_usage(row: dict, resp) -> None:
    usage = resp.usage
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"],
            row["total_tokens"]) == (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens,
                                     usage.output_tokens_details.reasoning_tokens, usage.total_tokens)
    assert row["usage_invalid"] is None


def test_responses_land_row_by_row(audit):
    proxy = audit.start()
    client = proxy.client()

    plain = client.responses.create(model="gpt-4o", input="Hello, what can you do?", instructions="Be brief.")
    again = client.responses.retrieve(plain.id)  # a finished response retrieved later: no poll
    chained = client.responses.create(model="gpt-4o", input="And again?", previous_response_id=plain.id)
    with client.responses.create(model="gpt-4o", input="Stream it please", stream=True) as stream:
        events = list(stream)
    streamed = events[-1].response
    background = client.responses.create(model="gpt-4o", input="Take your time", background=True)
    polled, retrieves = poll(client, background.id)
    unstored = client.responses.create(model="gpt-4o", input="Forget this", store=False)
    failed = client.responses.create(model="gpt-4o", input="Please answer [fail:server_error]")
    incomplete = client.responses.create(model="gpt-4o", input="Please [incomplete:max_output_tokens] go on")
    reasoning = client.responses.create(model="o4-mini", input="Think about capybaras")
    slow = client.responses.create(model="gpt-4o", input="[slow] a long essay", background=True)
    cancelled = client.responses.cancel(slow.id)
    counted = client.responses.input_tokens.count(model="gpt-4o", input="How many tokens?")
    items = client.responses.input_items.list(chained.id)
    client.responses.delete(plain.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(plain.id)
    con = proxy.finish()

    assert again.id == plain.id and events[0].type == "response.created" and streamed.status == "completed"
    assert retrieves >= 2 and polled.status == "completed" and cancelled.status == "cancelled"
    got = by_id(con, "responses")
    expected = [plain, chained, streamed, polled, unstored, failed, incomplete, reasoning, cancelled]
    assert set(got) == {r.id for r in expected}
    for resp in expected:
        row = got[resp.id]
        assert (row["response_id"], row["model"], row["status"]) == (resp.id, resp.model, resp.status), resp.id
        assert row["created_at"] == when(resp.created_at)
        assert row["completed_at"] == when(getattr(resp, "completed_at", None))
        assert row["previous_response_id"] == resp.previous_response_id
        assert (row["provider"], row["api_version"], row["sdk"]) == ("openai", "v1", f"python {openai.__version__}")
        assert row["key_fingerprint"].startswith("kfp_") and row["conversation_id"] is None
        assert row["instructions"] is None  # content is opt-in
        assert row["terminal"] and not row["truncated"]
        if resp.usage is not None:
            assert_usage(row, resp)
    assert got[plain.id]["instructions_chars"] == len("Be brief.")
    assert got[plain.id]["deleted"] and not got[chained.id]["deleted"]
    assert got[plain.id]["polls"] == 0 and got[plain.id]["retrieves"] == 1
    assert got[chained.id]["previous_response_id"] == plain.id and got[chained.id]["cached_input_tokens"] > 0
    assert got[streamed.id]["streamed"] and not got[plain.id]["streamed"]
    assert got[polled.id]["background"] and not got[plain.id]["background"]
    assert got[polled.id]["polls"] == retrieves
    assert got[unstored.id]["store"] is False and got[plain.id]["store"] is True
    assert (got[failed.id]["error_code"], got[failed.id]["error_message"]) == (failed.error.code, failed.error.message)
    assert got[incomplete.id]["incomplete_reason"] == incomplete.incomplete_details.reason == "max_output_tokens"
    assert got[reasoning.id]["reasoning_tokens"] == reasoning.usage.output_tokens_details.reasoning_tokens > 0
    assert got[cancelled.id]["status"] == "cancelled" and got[cancelled.id]["input_tokens"] is None

    exchanges = rows(con, "SELECT * FROM exchanges ORDER BY exchange_id")
    assert {e["api"] for e in exchanges} == {"responses"}
    assert [e["operation"] for e in exchanges] == [
        "responses.create", "responses.retrieve", "responses.create", "responses.create", "responses.create",
        *["responses.retrieve"] * retrieves, "responses.create", "responses.create", "responses.create",
        "responses.create", "responses.create", "responses.cancel", "responses.input_tokens.count",
        "responses.input_items.list", "responses.delete", "responses.retrieve"]
    assert [e["response_id"] for e in exchanges[:4]] == [plain.id, plain.id, chained.id, streamed.id]
    assert all(e["api_version"] is None and e["error_type"] is None for e in exchanges[:-1])
    assert exchanges[-1]["status_code"] == 404 and exchanges[-1]["error_type"] == "invalid_request_error"
    assert exchanges[3]["stream"] and exchanges[0]["model"] == "gpt-4o"
    assert counted.input_tokens > 0 and [i.type for i in items.data] == ["message"]


WEATHER = {"type": "function", "name": "get_current_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}


@pytest.mark.parametrize("capture", [True, False], ids=["capture_content", "no_content"])
def test_tool_calls_land_with_what_the_client_saw(audit, capture):
    proxy = audit.start(capture_content=capture)
    client = proxy.client()
    asked = client.responses.create(model="gpt-4o", input="What is the weather like in the Peak District?",
                                    tools=[WEATHER])
    (call,) = asked.output
    answered = client.responses.create(model="gpt-4o", previous_response_id=asked.id, tools=[WEATHER],
                                       input=[{"type": "function_call_output", "call_id": call.call_id,
                                               "output": "12 degrees and raining"}])
    vs_id = upload_store(client)
    searched = client.responses.create(model="gpt-4o", input="Where do capybaras live?",
                                       tools=[{"type": "file_search", "vector_store_ids": [vs_id]}],
                                       include=["file_search_call.results"])
    web = client.responses.create(model="gpt-4o", input="Latest capybara news", tools=[{"type": "web_search"}],
                                  include=["web_search_call.action.sources"])
    code = client.responses.create(model="gpt-4o", input="Sum the numbers below ten",
                                   tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                                   include=["code_interpreter_call.outputs"])
    code_call = code.output[0]
    reused = client.responses.create(model="gpt-4o", input="again",
                                     tools=[{"type": "code_interpreter", "container": code_call.container_id}])
    with client.responses.create(model="gpt-4o", input="Where do capybaras live, streamed?", stream=True,
                                 tools=[{"type": "file_search", "vector_store_ids": [vs_id]}],
                                 include=["file_search_call.results"]) as stream:
        streamed = [e for e in stream][-1].response
    con = proxy.finish()

    calls = by_id(con, "response_tool_calls", "call_id")
    fs_call, ws_call = searched.output[0], web.output[0]
    streamed_call = streamed.output[0]
    assert set(calls) == {call.call_id, fs_call.id, ws_call.id, code_call.id, reused.output[0].id, streamed_call.id}

    fn = calls[call.call_id]
    assert (fn["response_id"], fn["item_id"], fn["type"], fn["status"], fn["name"]) == (
        asked.id, call.id, "function", call.status, "get_current_weather")
    assert fn["output_submitted"] and fn["output_response_id"] == answered.id
    assert (fn["arguments_chars"], fn["output_chars"]) == (len(call.arguments), len("12 degrees and raining"))
    assert (fn["arguments"], fn["output"]) == ((call.arguments, "12 degrees and raining") if capture else (None, None))

    for resp, item in ((searched, fs_call), (streamed, streamed_call)):
        fs = calls[item.id]
        assert (fs["response_id"], fs["type"], fs["status"], fs["vector_store_ids"]) == (
            resp.id, "file_search", item.status, [vs_id])
        assert fs["results_count"] == len(item.results) == 1 and fs["queries_count"] == len(item.queries)
        assert fs["queries"] == (list(item.queries) if capture else None)
        results = rows(con, "SELECT * FROM response_file_search_results WHERE call_id = ? ORDER BY rank", item.id)
        assert [(r["response_id"], r["rank"], r["file_id"], r["filename"], r["score"], r["text_chars"])
                for r in results] == [(resp.id, i, hit.file_id, hit.filename, hit.score, len(hit.text))
                                      for i, hit in enumerate(item.results, 1)]
        assert [r["text"] for r in results] == [hit.text if capture else None for hit in item.results]
    assert calls[streamed_call.id]["output_submitted"] is False

    ws = calls[ws_call.id]
    assert (ws["response_id"], ws["type"], ws["status"], ws["results_count"]) == (
        web.id, "web_search", ws_call.status, len(ws_call.action.sources))
    assert ws["queries"] == ([ws_call.action.query] if capture else None)

    ci = calls[code_call.id]
    assert (ci["response_id"], ci["type"], ci["container_id"]) == (code.id, "code_interpreter", code_call.container_id)
    assert calls[reused.output[0].id]["container_id"] == code_call.container_id
    assert ci["arguments_chars"] == len(code_call.code)
    assert (ci["arguments"], ci["output"]) == ((code_call.code, code_call.outputs[0].logs) if capture else (None, None))

    tools = by_id(con, "responses")
    assert list(tools[searched.id]["tools"]) == ["file_search"] and tools[searched.id]["output_types"] == [
        o.type for o in searched.output]
    assert_usage(tools[streamed.id], streamed)


def test_conversations_and_their_responses(audit):
    proxy = audit.start()
    client = proxy.client()
    conv = client.conversations.create(metadata={"topic": "capybaras", "team": "a"},
                                       items=[{"type": "message", "role": "user", "content": "My name is Szymon."}])
    added = client.conversations.items.create(conv.id, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]}])
    first = client.responses.create(model="gpt-4o", input="Hello!", conversation=conv.id)
    second = client.responses.create(model="gpt-4o", input="Remind me of my name", conversation={"id": conv.id},
                                     background=True)
    final, _ = poll(client, second.id)
    listed = list(client.conversations.items.list(conv.id, order="asc"))
    got_item = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    client.conversations.update(conv.id, metadata={"topic": "rodents"})
    other = client.conversations.create()
    client.conversations.delete(conv.id)
    con = proxy.finish()

    convs = by_id(con, "conversations")
    assert set(convs) == {conv.id, other.id}
    row = convs[conv.id]
    assert (row["created_at"], row["deleted"], row["items_created"], row["metadata_keys"], row["responses"]) == (
        when(conv.created_at), True, 1 + len(added.data), 1, 2)
    assert row["key_fingerprint"].startswith("kfp_") and row["provider"] == "openai"
    assert (convs[other.id]["deleted"], convs[other.id]["items_created"], convs[other.id]["responses"]) == (False, 0, 0)

    responses = by_id(con, "responses")
    assert {responses[first.id]["conversation_id"], responses[final.id]["conversation_id"]} == {conv.id}
    assert responses[final.id]["polls"] >= 1 and responses[final.id]["status"] == "completed"
    assert_usage(responses[final.id], final)

    items = {r["item_id"]: r for r in rows(con, "SELECT * FROM conversation_items WHERE conversation_id = ?", conv.id)}
    assert set(items) == {i.id for i in listed}
    assert items[got_item.id]["deleted"] and sum(r["deleted"] for r in items.values()) == 1
    assert [(items[i.id]["type"], items[i.id]["role"]) for i in listed] == [(i.type, i.role) for i in listed]

    ops = [e["operation"] for e in rows(con, "SELECT operation FROM exchanges WHERE api = 'conversations' "
                                             "ORDER BY exchange_id")]
    assert ops == ["conversations.create", "conversations.items.create", "conversations.items.list",
                   "conversations.items.retrieve", "conversations.items.delete", "conversations.update",
                   "conversations.create", "conversations.delete"]
    assert rows(con, "SELECT DISTINCT conversation_id FROM exchanges WHERE api = 'conversations' "
                     "AND operation <> 'conversations.create'") == [{"conversation_id": conv.id}]


def test_azure_forms(audit):
    proxy = audit.start()
    classic = proxy.azure().responses.create(model="gpt-4o", input="Hi Azure")
    v1 = proxy.azure_v1().responses.create(model="gpt-4o", input="Hi Azure v1")
    conv = proxy.azure().conversations.create()
    con = proxy.finish()

    got = by_id(con, "responses")
    assert (got[classic.id]["provider"], got[classic.id]["api_version"]) == ("azure.ai.openai", AZURE_VERSION)
    assert (got[v1.id]["provider"], got[v1.id]["api_version"]) == ("azure.ai.openai", "v1")
    for resp in (classic, v1):
        assert got[resp.id]["status"] == resp.status and got[resp.id]["sdk"] == f"python {openai.__version__}"
        assert_usage(got[resp.id], resp)
    assert by_id(con, "conversations")[conv.id]["provider"] == "azure.ai.openai"
    exchanges = rows(con, "SELECT path, azure_api_version, operation, api, api_version FROM exchanges "
                          "ORDER BY exchange_id")
    assert exchanges == [
        {"path": "/openai/responses", "azure_api_version": AZURE_VERSION, "operation": "responses.create",
         "api": "responses", "api_version": None},
        {"path": "/openai/v1/responses", "azure_api_version": None, "operation": "responses.create",
         "api": "responses", "api_version": None},
        {"path": "/openai/conversations", "azure_api_version": AZURE_VERSION, "operation": "conversations.create",
         "api": "conversations", "api_version": None}]
