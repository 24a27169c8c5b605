"""Route classification: templates, operations, ids and prefixes (OpenAI, gateway, Azure)."""

from __future__ import annotations

import pytest

from proxy.assistants.routes import APIS, AZURE, AZURE_AGENTS, OPENAI, OPERATIONS, classify


@pytest.mark.parametrize(
    "method,path,route,operation,ids",
    [
        ("GET", "/v1/threads/thread_a/runs/run_b", "/threads/{thread_id}/runs/{run_id}", "runs.retrieve", {"thread_id": "thread_a", "run_id": "run_b"}),
        ("POST", "/v1/threads/thread_a/runs", "/threads/{thread_id}/runs", "runs.create", {"thread_id": "thread_a"}),
        ("POST", "/v1/threads/runs", "/threads/runs", "threads.create_and_run", {}),
        ("POST", "/v1/threads/t/runs/r/submit_tool_outputs", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", "runs.submit_tool_outputs", {"thread_id": "t", "run_id": "r"}),
        ("POST", "/v1/threads/t/runs/r/cancel", "/threads/{thread_id}/runs/{run_id}/cancel", "runs.cancel", {"thread_id": "t", "run_id": "r"}),
        ("GET", "/v1/threads/t/runs/r/steps", "/threads/{thread_id}/runs/{run_id}/steps", "runs.steps.list", {"thread_id": "t", "run_id": "r"}),
        ("GET", "/v1/threads/t/runs/r/steps/s", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "runs.steps.retrieve", {"thread_id": "t", "run_id": "r", "step_id": "s"}),
        ("POST", "/v1/vector_stores/vs_1/files", "/vector_stores/{vector_store_id}/files", "vector_stores.files.create", {"vector_store_id": "vs_1"}),
        ("POST", "/v1/vector_stores/vs_1/file_batches", "/vector_stores/{vector_store_id}/file_batches", "vector_stores.file_batches.create", {"vector_store_id": "vs_1"}),
        ("POST", "/v1/vector_stores/vs_1/search", "/vector_stores/{vector_store_id}/search", "vector_stores.search", {"vector_store_id": "vs_1"}),
        ("DELETE", "/v1/vector_stores/vs_1", "/vector_stores/{vector_store_id}", "vector_stores.delete", {"vector_store_id": "vs_1"}),
        ("POST", "/v1/files", "/files", "files.create", {}),
        ("GET", "/v1/files/file-1/content", "/files/{file_id}/content", "files.content", {"file_id": "file-1"}),
        ("POST", "/v1/assistants/asst_1/files", "/assistants/{assistant_id}/files", "assistants.files.create", {"assistant_id": "asst_1"}),
        ("GET", "/v1/threads/t/messages/m/files", "/threads/{thread_id}/messages/{message_id}/files", "messages.files.list", {"thread_id": "t", "message_id": "m"}),
    ],
)
def test_openai_routes(method, path, route, operation, ids):
    info = classify(method, path, "")
    assert (info.route, info.operation, info.ids, info.provider, info.prefix) == (route, operation, ids, OPENAI, "/v1")


def test_v1_only_routes_are_flagged():
    assert classify("POST", "/v1/assistants/a/files", "").v1_only
    assert classify("GET", "/v1/threads/t/messages/m/files/f", "").v1_only
    assert not classify("POST", "/v1/assistants", "").v1_only


def test_any_base_prefix_and_method_case():
    info = classify("get", "/gateway/team-a/v1/assistants/asst_9", "")
    assert (info.route, info.operation, info.prefix, info.ids) == ("/assistants/{assistant_id}", "assistants.retrieve", "/gateway/team-a/v1", {"assistant_id": "asst_9"})
    assert classify("GET", "/threads/t", "").operation == "threads.retrieve"


def test_azure():
    info = classify("POST", "/openai/threads/t1/runs", "api-version=2024-05-01-preview&x=1")
    assert (info.route, info.operation, info.provider, info.azure_api_version) == ("/threads/{thread_id}/runs", "runs.create", AZURE, "2024-05-01-preview")
    assert info.implied_azure_assistants_version == "v2"
    assert classify("GET", "/openai/assistants", "api-version=2024-02-15-preview").implied_azure_assistants_version == "v1"
    assert classify("GET", "/openai/assistants", "").provider == AZURE


def test_unknown_paths_are_other_with_low_cardinality_route():
    info = classify("GET", "/v1/organization/usage/vector_stores", "start_time=1")
    assert (info.operation, info.route) == ("other", "/v1/organization/usage/vector_stores")
    assert classify("GET", "/v1/chat/completions/chatcmpl_123abc", "").route == "/v1/chat/completions/{id}"
    # known resource, unknown sub-path or method
    assert classify("GET", "/v1/threads/t/unknown", "").operation == "other"
    assert classify("PATCH", "/v1/assistants/a", "").operation == "other"
    assert classify("PATCH", "/v1/assistants/a", "").route == "/assistants/{assistant_id}"


@pytest.mark.parametrize(
    "method,path,route,operation,ids",
    [
        ("POST", "/responses", "/responses", "responses.create", {}),
        ("POST", "/responses/input_tokens", "/responses/input_tokens", "responses.input_tokens.count", {}),
        ("GET", "/responses/resp_1", "/responses/{response_id}", "responses.retrieve", {"response_id": "resp_1"}),
        ("DELETE", "/responses/resp_1", "/responses/{response_id}", "responses.delete", {"response_id": "resp_1"}),
        ("POST", "/responses/resp_1/cancel", "/responses/{response_id}/cancel", "responses.cancel",
         {"response_id": "resp_1"}),
        ("GET", "/responses/resp_1/input_items", "/responses/{response_id}/input_items", "responses.input_items.list",
         {"response_id": "resp_1"}),
        ("POST", "/conversations", "/conversations", "conversations.create", {}),
        ("GET", "/conversations/conv_1", "/conversations/{conversation_id}", "conversations.retrieve",
         {"conversation_id": "conv_1"}),
        ("POST", "/conversations/conv_1", "/conversations/{conversation_id}", "conversations.update",
         {"conversation_id": "conv_1"}),
        ("DELETE", "/conversations/conv_1", "/conversations/{conversation_id}", "conversations.delete",
         {"conversation_id": "conv_1"}),
        ("GET", "/conversations/conv_1/items", "/conversations/{conversation_id}/items", "conversations.items.list",
         {"conversation_id": "conv_1"}),
        ("POST", "/conversations/conv_1/items", "/conversations/{conversation_id}/items", "conversations.items.create",
         {"conversation_id": "conv_1"}),
        ("GET", "/conversations/conv_1/items/msg_2", "/conversations/{conversation_id}/items/{item_id}",
         "conversations.items.retrieve", {"conversation_id": "conv_1", "item_id": "msg_2"}),
        ("DELETE", "/conversations/conv_1/items/msg_2", "/conversations/{conversation_id}/items/{item_id}",
         "conversations.items.delete", {"conversation_id": "conv_1", "item_id": "msg_2"}),
    ],
)
@pytest.mark.parametrize("prefix,query,provider,version", [
    ("/v1", "", OPENAI, "v1"),
    ("/openai/v1", "", AZURE, "v1"),
    ("/openai", "api-version=2025-04-01-preview", AZURE, "2025-04-01-preview"),
    ("/gateway/team-a", "", OPENAI, None),
])
def test_responses_and_conversations_routes(method, path, route, operation, ids, prefix, query, provider, version):
    info = classify(method, prefix + path, query)
    assert (info.route, info.operation, info.ids, info.provider, info.prefix) == (route, operation, ids, provider, prefix)
    assert info.api == operation.split(".")[0] and info.path_api_version == version
    assert info.operation in OPERATIONS and info.api in APIS


def test_api_families():
    assert classify("GET", "/v1/threads/t/runs/r", "").api == "assistants"
    assert classify("POST", "/v1/vector_stores", "").api == "assistants"  # the stores file_search reads too
    assert classify("PATCH", "/v1/responses/resp_1", "").api == "responses"  # known family, unknown operation
    assert classify("PATCH", "/v1/responses/resp_1", "").operation == "other"
    assert classify("POST", "/v1/chat/completions", "").api == "other"
    assert classify("GET", "/v1/organization/usage/vector_stores", "").api == "other"
    assert classify("GET", "/v1/containers/cntr_1/files", "").api == "other"


def _sdk_requests():
    """Every request the azure-ai-agents SDK can build: its generated `build_*_request`
    functions, called with placeholder ids (`thread_id_x1`, ...)."""
    import inspect

    from azure.ai.agents.operations import _operations as sdk_operations

    for name, build in sorted(vars(sdk_operations).items()):
        if name.startswith("build_") and name.endswith("_request"):
            required = {p.name: f"{p.name}_x1" for p in inspect.signature(build).parameters.values()
                        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            yield name, build(**required)


def test_every_route_the_foundry_agents_sdk_calls_resolves():
    seen = set()
    for name, request in _sdk_requests():
        path, _, query = request.url.partition("?")
        info = classify(request.method, "/api/projects/team-proj" + path, query)
        assert info.operation != "other", (name, request.method, path)
        assert (info.provider, info.project, info.prefix, info.api) == (
            AZURE_AGENTS, "team-proj", "/api/projects/team-proj", "foundry_agents")
        assert info.implied_azure_assistants_version == "v2" and info.azure_api_version == "v1"
        # the placeholders land in the ids, never in the template
        assert "_x1" not in info.route and all(v.endswith("_x1") for v in info.ids.values()), (name, info)
        seen.add(info.operation)
    assert {"runs.submit_tool_outputs", "runs.steps.list", "vector_stores.file_batches.create", "files.create",
            "threads.list"} <= seen and len(seen) >= 40


def test_foundry_project_paths():
    info = classify("GET", "/gw/api/projects/chat/threads/t1/runs/r1", "api-version=v1")
    assert (info.operation, info.provider, info.project, info.prefix) == (
        "runs.retrieve", AZURE_AGENTS, "chat", "/gw/api/projects/chat")
    # a project named like a resource is a name, not the resource
    info = classify("POST", "/api/projects/threads/threads", "api-version=v1")
    assert (info.operation, info.project, info.ids) == ("threads.create", "threads", {})
    # unknown project paths keep the name out of the template
    info = classify("GET", "/api/projects/sales-2024/connections/conn", "api-version=v1")
    assert (info.operation, info.route, info.provider, info.api) == (
        "other", "/api/projects/{project}/connections/conn", AZURE_AGENTS, "other")
    # Azure OpenAI reached through a project is Azure OpenAI
    info = classify("GET", "/api/projects/p/openai/assistants", "api-version=2024-05-01-preview")
    assert (info.operation, info.provider, info.project, info.api) == ("assistants.list", AZURE, "p", "assistants")
    info = classify("POST", "/api/projects/p/openai/responses", "api-version=2025-04-01-preview")
    assert (info.operation, info.provider, info.project, info.api) == ("responses.create", AZURE, "p", "responses")
    # without /api/projects/{project} there is no project, whatever the api-version
    assert classify("GET", "/v1/threads/t", "").project is None
    info = classify("GET", "/openai/assistants", "api-version=v1")
    assert (info.provider, info.project) == (AZURE, None)
