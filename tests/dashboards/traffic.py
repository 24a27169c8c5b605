"""Drive the proxy with every kind of traffic the dashboards show, through the real openai SDK:
vector stores with files and an expiry, assistants with all three tool types, polled and
streamed runs, a function call, failed and incomplete runs, the Responses API (plain, streamed,
background, failed, incomplete and cancelled responses, every tool, a conversation), a 404, a 429,
a 500, and v1 requests (OpenAI and Azure)."""

from __future__ import annotations

import io

import urllib.request

import openai

from tests.responses.workload import run_responses_workload

MODEL = "gpt-4o"  # priced, so the cost metrics move
FAULT = "X-Emulator-Fault"
AZURE_V1_API_VERSION = "2024-02-15-preview"


def drive(base_url: str) -> dict[str, int]:
    """Run the workload against `base_url` (the proxy's .../v1); returns counts of what it did."""
    client = openai.OpenAI(api_key="sk-dashboards-test", base_url=base_url, max_retries=0)
    done = {"runs": 0, "errors": 0}

    file = client.files.create(file=("handbook.txt", io.BytesIO(b"Refunds take 5 days.\n" * 200)), purpose="assistants")
    store = client.vector_stores.create(
        name="handbook", file_ids=[file.id], expires_after={"anchor": "last_active_at", "days": 7}
    )
    client.vector_stores.retrieve(store.id)
    client.vector_stores.files.list(store.id)
    client.vector_stores.list()

    assistant = client.beta.assistants.create(
        model=MODEL,
        name="support",
        instructions="Answer from the handbook.",
        tools=[
            {"type": "code_interpreter"},
            {"type": "file_search"},
            {
                "type": "function",
                "function": {
                    "name": "lookup_order",
                    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
                },
            },
        ],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )

    # Polled run: code_interpreter + file_search steps, then a function call to answer.
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "How long do refunds take?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=1)
    if run.status == "requires_action":
        outputs = [
            {"tool_call_id": call.id, "output": '{"status": "shipped"}'}
            for call in run.required_action.submit_tool_outputs.tool_calls
        ]
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            thread_id=thread.id, run_id=run.id, tool_outputs=outputs, poll_interval_ms=1
        )
    done["runs"] += 1
    client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id)
    client.beta.threads.messages.list(thread_id=thread.id)

    # Streamed run (no tools, so it completes in one stream).
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, additional_instructions="[no_tools]"
    ) as stream:
        stream.until_done()
    done["runs"] += 1

    # Runs that end badly: failed with an error code, and incomplete.
    for trigger in ("[fail:server_error]", "[fail:rate_limit_exceeded]", "[incomplete:max_completion_tokens]"):
        bad = client.beta.threads.create(messages=[{"role": "user", "content": f"Please fail {trigger}"}])
        client.beta.threads.runs.create_and_poll(
            thread_id=bad.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=1
        )
        done["runs"] += 1

    # The Responses API, for the Responses & migration dashboard.
    run_responses_workload(client)

    # HTTP errors: a 404, a 429 and a 500 from the upstream.
    for call, headers in (
        (lambda h: client.beta.assistants.retrieve("asst_does_not_exist", extra_headers=h), {}),
        (lambda h: client.beta.assistants.list(extra_headers=h), {FAULT: "status=429"}),
        (lambda h: client.beta.threads.create(extra_headers=h), {FAULT: "status=500"}),
    ):
        try:
            call(headers)
        except openai.APIStatusError:
            done["errors"] += 1

    # v1 traffic: the retired beta header, and an Azure client on an api-version before 2024-05-01
    # (Assistants v1 there), which sends no beta header at all.
    v1 = {"OpenAI-Beta": "assistants=v1"}
    client.beta.assistants.list(extra_headers=v1)
    client.beta.threads.create(extra_headers=v1)
    root = base_url.removesuffix("/v1")
    azure = urllib.request.Request(f"{root}/openai/assistants?api-version={AZURE_V1_API_VERSION}",
                                   headers={"api-key": "azure-dashboards-test"})
    with urllib.request.urlopen(azure, timeout=30) as response:
        assert response.status == 200
    return done
