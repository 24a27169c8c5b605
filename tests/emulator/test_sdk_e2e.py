"""The current openai SDK against the emulator, end to end, on loopback."""

from __future__ import annotations

import io
import warnings

import openai
import pytest
from openai import AssistantEventHandler

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}

DOC = ("The emulator keeps vector stores in memory. Penguins live in Antarctica and eat krill. "
       "Usage bytes grow as files finish processing.")


def test_create_and_poll_completes_with_usage_and_steps(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.",
                                         tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the sum of 0..9?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)

    assert run.status == "completed"
    assert run.started_at and run.completed_at and run.completed_at >= run.started_at >= run.created_at
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens > 0
    steps = list(client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "code_interpreter"
    assert [o.type for o in call.code_interpreter.outputs] == ["logs", "image"]
    image = client.files.retrieve(call.code_interpreter.outputs[1].image.file_id)
    assert image.purpose == "assistants_output"
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    assert messages.data[0].role == "assistant"
    assert "sum of 0..9" in messages.data[0].content[0].text.value
    assert sum(s.usage.total_tokens for s in steps) == run.usage.total_tokens


def test_stream_with_event_handler_sees_openai_event_sequence(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me about streams"}])

    class Recorder(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []
            self.text = ""

        def on_event(self, event) -> None:
            self.names.append(event.event)

        def on_text_delta(self, delta, snapshot) -> None:
            self.text += delta.value

    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id, event_handler=handler) as s:
        s.until_done()
        final = s.get_final_run()
    assert handler.names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert handler.names[-3:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    assert handler.names.count("thread.message.delta") > 3
    assert final.status == "completed" and final.usage is not None
    stored = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert stored.content[0].text.value == handler.text
    assert client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=final.id).status == "completed"


def test_function_tool_requires_action_then_submit_and_poll(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)

    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather"]
    assert calls[0].function.arguments == '{"city":"emulated city","days":42}'
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "sunny, 21C"}])
    assert run.status == "completed"
    steps = list(client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc"))
    assert steps[0].step_details.tool_calls[0].function.output == "sunny, 21C"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text.value
    assert "sunny, 21C" in reply


def test_submit_tool_outputs_stream(emulator):
    client = emulator.client()
    asst = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather?"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as s:
        names = [e.event for e in s]
        run = s.current_run
    assert names[-1] == "thread.run.requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "rain"}]) as s:
        names = [e.event for e in s]
    assert names[:2] == ["thread.run.queued", "thread.run.step.completed"]
    assert names[-1] == "thread.run.completed"


def test_file_search_with_vector_store_and_include_content(emulator):
    client = emulator.client()
    vs = client.vector_stores.create(name="docs", expires_after={"anchor": "last_active_at", "days": 2})
    assert vs.expires_at == vs.last_active_at + 2 * 86400
    vs_file = client.vector_stores.files.upload_and_poll(
        vector_store_id=vs.id, file=("penguins.txt", io.BytesIO(DOC.encode())))
    assert vs_file.status == "completed" and vs_file.usage_bytes == len(DOC)
    vs = client.vector_stores.retrieve(vs.id)
    assert vs.usage_bytes == len(DOC) and vs.file_counts.completed == 1

    asst = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}],
                                         tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Where do penguins live?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    assert run.status == "completed"
    include = ["step_details.tool_calls[*].file_search.results[*].content"]
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc", include=include)
    fs = steps.data[0].step_details.tool_calls[0].file_search
    assert fs.results[0].file_id == vs_file.id and fs.results[0].file_name == "penguins.txt"
    assert 0 < fs.results[0].score <= 1
    assert "Antarctica" in fs.results[0].content[0].text
    plain = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    assert plain.data[0].step_details.tool_calls[0].file_search.results[0].content is None
    message = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert message.content[0].text.annotations[0].file_citation.file_id == vs_file.id


def test_file_batches_upload_and_poll_and_search(emulator):
    client = emulator.client()
    vs = client.vector_stores.create(name="batch")
    files = [("a.md", io.BytesIO(b"alpha krill notes")), ("b.txt", io.BytesIO(b"beta penguin notes"))]
    batch = client.vector_stores.file_batches.upload_and_poll(vector_store_id=vs.id, files=files)
    assert batch.status == "completed"
    assert batch.file_counts.completed == 2 and batch.file_counts.total == 2
    listed = client.vector_stores.file_batches.list_files(vector_store_id=vs.id, batch_id=batch.id)
    assert {f.status for f in listed.data} == {"completed"}
    results = client.vector_stores.search(vector_store_id=vs.id, query="penguin")
    assert [r.filename for r in results.data] == ["b.txt"]
    assert client.vector_stores.retrieve(vs.id).usage_bytes == len(b"alpha krill notes") + len(b"beta penguin notes")


def test_v1_retrieval_and_file_ids(emulator):
    client = emulator.client(default_headers={"OpenAI-Beta": "assistants=v1"})
    v1 = {"OpenAI-Beta": "assistants=v1"}
    f = client.files.create(file=("notes.txt", io.BytesIO(b"The launch code is swordfish.")), purpose="assistants")
    asst = client.post("/assistants", cast_to=object, options={"headers": v1}, body={
        "model": "gpt-4-turbo", "tools": [{"type": "retrieval"}], "file_ids": [f.id]})
    assert asst["file_ids"] == [f.id] and "tool_resources" not in asst
    files = client.get(f"/assistants/{asst['id']}/files", cast_to=object, options={"headers": v1})
    assert [x["id"] for x in files["data"]] == [f.id]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is the launch code?"}],
                                        extra_headers=v1)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst["id"], extra_headers=v1)
    assert run.status == "completed"
    raw = client.get(f"/threads/{thread.id}/runs/{run.id}/steps", cast_to=object,
                     options={"headers": v1, "params": {"order": "asc"}})
    assert raw["data"][0]["step_details"]["tool_calls"][0] == {
        "id": raw["data"][0]["step_details"]["tool_calls"][0]["id"], "type": "retrieval", "retrieval": {}}
    run_raw = client.get(f"/threads/{thread.id}/runs/{run.id}", cast_to=object, options={"headers": v1})
    assert run_raw["file_ids"] == [f.id] and "tool_resources" not in run_raw


def test_version_rules(emulator):
    client = emulator.client()
    with pytest.raises(openai.BadRequestError) as exc:
        client.get("/assistants", cast_to=object, options={"headers": {"OpenAI-Beta": ""}})
    assert exc.value.code == "invalid_beta"
    assert "You must provide the 'OpenAI-Beta' header" in exc.value.message
    # files and vector stores answer without the header
    assert client.get("/vector_stores", cast_to=object, options={"headers": {"OpenAI-Beta": ""}})["object"] == "list"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "retrieval"}])
    assert exc.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", extra_body={"file_ids": []})
    assert exc.value.code == "unknown_parameter"
    v1 = {"OpenAI-Beta": "assistants=v1"}
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}], extra_headers=v1)
    asst = client.beta.assistants.create(model="gpt-4o")
    with pytest.raises(openai.BadRequestError):
        client.get(f"/assistants/{asst.id}/files", cast_to=object, options={"headers": {"OpenAI-Beta": "assistants=v2"}})


def test_errors_are_openai_shaped(emulator):
    client = emulator.client()
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.retrieve("asst_missing")
    assert exc.value.body == {"message": "No assistant found with id 'asst_missing'.",
                              "type": "invalid_request_error", "param": None, "code": None}
    bad = openai.OpenAI(api_key="sk-invalid-key-123456", base_url=emulator.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.beta.assistants.list()
    assert exc.value.code == "invalid_api_key"
    asst = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    assert exc.value.code == "invalid_thread"
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.update(thread.id, metadata={"modified": True})
    assert exc.value.param == "metadata.modified"


def test_parallel_tool_calls_false_calls_one_function(emulator):
    client = emulator.client()
    second = {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}}}}
    asst = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER_TOOL, second])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather and time?"}])
    both = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    calls = both.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"emulated city","days":42}'), ("get_time", '{"zone":"UTC"}')]
    client.beta.threads.runs.cancel(thread_id=thread.id, run_id=both.id)
    client.beta.threads.runs.poll(both.id, thread_id=thread.id, poll_interval_ms=1)
    one = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                                   parallel_tool_calls=False)
    assert [c.function.name for c in one.required_action.submit_tool_outputs.tool_calls] == ["get_weather"]
    assert client.beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=one.id)
