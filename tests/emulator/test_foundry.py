"""Azure AI Foundry Agent Service (classic agents): the emulator serves the Assistants protocol
under a project endpoint, with `api-version=v1` and a bearer token, to the real azure-ai-agents SDK."""

from __future__ import annotations

import json

import pytest
from azure.ai.agents import models as m
from azure.core.exceptions import HttpResponseError

from tests.emulator.rawhttp import raw
from tests.foundry import PROJECT, TOKEN, StaticTokenCredential, agents_client

BASE = f"/api/projects/{PROJECT}"
BEARER = {"Authorization": f"Bearer {TOKEN}", "OpenAI-Beta": ""}


def test_sdk_agent_thread_run_and_steps(emulator, tmp_path):
    credential = StaticTokenCredential()
    client = agents_client(emulator.url, credential=credential)
    doc = tmp_path / "contract.md"
    doc.write_text("The aurora contract renews every March.\n")
    uploaded = client.files.upload_and_poll(file_path=str(doc), purpose=m.FilePurpose.AGENTS)
    store = client.vector_stores.create_and_poll(file_ids=[uploaded.id], name="contracts")
    agent = client.create_agent(model="gpt-4o", name="helper", instructions="Answer briefly.",
                                tools=m.FileSearchTool(vector_store_ids=[store.id]).definitions,
                                tool_resources=m.FileSearchTool(vector_store_ids=[store.id]).resources)
    thread = client.threads.create()
    client.messages.create(thread_id=thread.id, role="user", content="When does the aurora contract renew?")
    run = client.runs.create_and_process(thread_id=thread.id, agent_id=agent.id, polling_interval=0)

    assert credential.scopes and set(credential.scopes) == {("https://ai.azure.com/.default",)}
    assert agent.as_dict()["object"] == "assistant" and agent.id.startswith("asst_")
    assert store.status == "completed" and store.file_counts.completed == 1
    assert run.status == "completed" and run.agent_id == agent.id and run.usage.total_tokens > 0
    steps = list(client.run_steps.list(thread_id=thread.id, run_id=run.id,
                                       include=[m.RunAdditionalFieldList.FILE_SEARCH_CONTENTS]))
    calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    assert [c.type for c in calls] == ["file_search"]
    result = calls[0].file_search.results[0]
    assert result.file_id == uploaded.id and result.content[0].text.startswith("The aurora contract")
    reply = client.messages.get_last_message_text_by_role(thread_id=thread.id, role=m.MessageRole.AGENT)
    assert "aurora contract" in reply.text.value


def test_missing_api_version_is_a_400_naming_it(emulator):
    status, _, body = raw(emulator.url, "GET", f"{BASE}/assistants", headers=BEARER)
    error = json.loads(body)["error"]
    assert status == 400
    assert (error["param"], error["code"]) == ("api-version", "MissingApiVersionParameter")


def test_unsupported_api_version_is_a_400_listing_the_supported_one(emulator):
    status, _, body = raw(emulator.url, "GET", f"{BASE}/assistants?api-version=2024-05-01-preview", headers=BEARER)
    error = json.loads(body)["error"]
    assert status == 400 and error["code"] == "UnsupportedApiVersion"
    assert "'2024-05-01-preview'" in error["message"] and "v1" in error["message"]


@pytest.mark.parametrize("headers", [{"Authorization": ""}, {"Authorization": "", "api-key": TOKEN}],
                         ids=["none", "api-key"])
def test_a_project_takes_a_bearer_token_only(emulator, headers):
    status, _, body = raw(emulator.url, "GET", f"{BASE}/assistants?api-version=v1", headers=dict(BEARER, **headers))
    assert status == 401 and json.loads(body)["error"]["code"] == "Unauthorized"


def test_the_project_serves_v2_whatever_openai_beta_says(emulator):
    headers = dict(BEARER, **{"OpenAI-Beta": "assistants=v1"})
    status, _, body = raw(emulator.url, "GET", f"{BASE}/assistants/asst_x/files?api-version=v1", headers=headers)
    assert status == 400 and "only available in v1" in json.loads(body)["error"]["message"]


def test_sdk_sees_the_emulators_error_as_an_http_error(emulator):
    client = agents_client(emulator.url)
    with pytest.raises(HttpResponseError) as raised:
        client.get_agent("asst_missing")
    assert raised.value.status_code == 404


def test_organization_endpoints_are_not_under_a_project(emulator):
    status, _, _ = raw(emulator.url, "GET", f"{BASE}/organization/usage/vector_stores?api-version=v1",
                       headers=BEARER)
    assert status == 404
