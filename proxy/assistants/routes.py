"""Request line -> templated route, operation name, API family and path ids.

Runs once per exchange on the recorder thread, so it is a walk over a trie of path segments built
at import time: no regex per call. The API prefix is whatever precedes the first known resource
segment (`/v1`, a gateway base path, Azure's `/openai`, an Azure AI Foundry project's
`/api/projects/{project}`), so any base URL works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# `gen_ai.provider.name` values (OTel GenAI semantic conventions). The conventions list
# `azure.ai.openai` but nothing yet for the Foundry Agent Service; azure-ai-agents' own tracing
# says `gen_ai.system = "az.ai.agents"`, and the conventions renamed every `az.ai.*` system to
# `azure.ai.*` (az.ai.inference -> azure.ai.inference, az.ai.openai -> azure.ai.openai), so
# Foundry agents are `azure.ai.agents`, spelled like their neighbours and their SDK's package.
OPENAI = "openai"
AZURE = "azure.ai.openai"
AZURE_AGENTS = "azure.ai.agents"
PROVIDERS = frozenset({OPENAI, AZURE, AZURE_AGENTS})

# (method, template, operation). Templates use the path parameter names of the OpenAPI specs;
# operations are named like the official SDK's resources (client.beta.threads.runs.steps.list
# -> runs.steps.list). The v1-only routes are marked in V1_ONLY_OPERATIONS.
_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/assistants", "assistants.list"),
    ("POST", "/assistants", "assistants.create"),
    ("GET", "/assistants/{assistant_id}", "assistants.retrieve"),
    ("POST", "/assistants/{assistant_id}", "assistants.update"),
    ("DELETE", "/assistants/{assistant_id}", "assistants.delete"),
    ("GET", "/assistants/{assistant_id}/files", "assistants.files.list"),
    ("POST", "/assistants/{assistant_id}/files", "assistants.files.create"),
    ("GET", "/assistants/{assistant_id}/files/{file_id}", "assistants.files.retrieve"),
    ("DELETE", "/assistants/{assistant_id}/files/{file_id}", "assistants.files.delete"),
    ("POST", "/threads", "threads.create"),
    ("GET", "/threads", "threads.list"),  # Azure AI Foundry projects only
    ("POST", "/threads/runs", "threads.create_and_run"),
    ("GET", "/threads/{thread_id}", "threads.retrieve"),
    ("POST", "/threads/{thread_id}", "threads.update"),
    ("DELETE", "/threads/{thread_id}", "threads.delete"),
    ("GET", "/threads/{thread_id}/messages", "messages.list"),
    ("POST", "/threads/{thread_id}/messages", "messages.create"),
    ("GET", "/threads/{thread_id}/messages/{message_id}", "messages.retrieve"),
    ("POST", "/threads/{thread_id}/messages/{message_id}", "messages.update"),
    ("DELETE", "/threads/{thread_id}/messages/{message_id}", "messages.delete"),
    ("GET", "/threads/{thread_id}/messages/{message_id}/files", "messages.files.list"),
    ("GET", "/threads/{thread_id}/messages/{message_id}/files/{file_id}", "messages.files.retrieve"),
    ("GET", "/threads/{thread_id}/runs", "runs.list"),
    ("POST", "/threads/{thread_id}/runs", "runs.create"),
    ("GET", "/threads/{thread_id}/runs/{run_id}", "runs.retrieve"),
    ("POST", "/threads/{thread_id}/runs/{run_id}", "runs.update"),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", "runs.cancel"),
    ("POST", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", "runs.submit_tool_outputs"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps", "runs.steps.list"),
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "runs.steps.retrieve"),
    ("GET", "/vector_stores", "vector_stores.list"),
    ("POST", "/vector_stores", "vector_stores.create"),
    ("GET", "/vector_stores/{vector_store_id}", "vector_stores.retrieve"),
    ("POST", "/vector_stores/{vector_store_id}", "vector_stores.update"),
    ("DELETE", "/vector_stores/{vector_store_id}", "vector_stores.delete"),
    ("POST", "/vector_stores/{vector_store_id}/search", "vector_stores.search"),
    ("GET", "/vector_stores/{vector_store_id}/files", "vector_stores.files.list"),
    ("POST", "/vector_stores/{vector_store_id}/files", "vector_stores.files.create"),
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}", "vector_stores.files.retrieve"),
    ("POST", "/vector_stores/{vector_store_id}/files/{file_id}", "vector_stores.files.update"),
    ("DELETE", "/vector_stores/{vector_store_id}/files/{file_id}", "vector_stores.files.delete"),
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}/content", "vector_stores.files.content"),
    ("POST", "/vector_stores/{vector_store_id}/file_batches", "vector_stores.file_batches.create"),
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}", "vector_stores.file_batches.retrieve"),
    ("POST", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", "vector_stores.file_batches.cancel"),
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", "vector_stores.file_batches.list_files"),
    ("GET", "/files", "files.list"),
    ("POST", "/files", "files.create"),
    ("GET", "/files/{file_id}", "files.retrieve"),
    ("DELETE", "/files/{file_id}", "files.delete"),
    ("GET", "/files/{file_id}/content", "files.content"),
    ("POST", "/uploads", "uploads.create"),
    ("POST", "/uploads/{upload_id}/parts", "uploads.parts.create"),
    ("POST", "/uploads/{upload_id}/complete", "uploads.complete"),
    ("POST", "/uploads/{upload_id}/cancel", "uploads.cancel"),
    ("POST", "/responses", "responses.create"),
    ("POST", "/responses/input_tokens", "responses.input_tokens.count"),
    ("GET", "/responses/{response_id}", "responses.retrieve"),
    ("DELETE", "/responses/{response_id}", "responses.delete"),
    ("POST", "/responses/{response_id}/cancel", "responses.cancel"),
    ("GET", "/responses/{response_id}/input_items", "responses.input_items.list"),
    ("POST", "/conversations", "conversations.create"),
    ("GET", "/conversations/{conversation_id}", "conversations.retrieve"),
    ("POST", "/conversations/{conversation_id}", "conversations.update"),
    ("DELETE", "/conversations/{conversation_id}", "conversations.delete"),
    ("GET", "/conversations/{conversation_id}/items", "conversations.items.list"),
    ("POST", "/conversations/{conversation_id}/items", "conversations.items.create"),
    ("GET", "/conversations/{conversation_id}/items/{item_id}", "conversations.items.retrieve"),
    ("DELETE", "/conversations/{conversation_id}/items/{item_id}", "conversations.items.delete"),
)

# The API family of an exchange (`exchange_log.api`, and the label other sinks may use): fixed.
# Vector stores, files and uploads are the Assistants API's resources (the Responses API's
# file_search reads the same vector stores), so they count as `assistants`.
# An Azure AI Foundry project's Agent Service speaks the Assistants protocol but is an API
# generation of its own (`foundry_agents`): parsed like `assistants`, counted apart.
ASSISTANTS = "assistants"
RESPONSES = "responses"
CONVERSATIONS = "conversations"
FOUNDRY_AGENTS = "foundry_agents"
OTHER_API = "other"
APIS = (ASSISTANTS, RESPONSES, CONVERSATIONS, FOUNDRY_AGENTS, OTHER_API)
ASSISTANTS_PROTOCOL = frozenset({ASSISTANTS, FOUNDRY_AGENTS})
_API_OF_ROOT = {"responses": RESPONSES, "conversations": CONVERSATIONS}

# Every operation `classify` can answer: the metrics sink's fixed `operation` vocabulary.
OPERATIONS = frozenset(op for _, _, op in _ROUTES) | {"other"}

V1_ONLY_OPERATIONS = frozenset(
    {
        "assistants.files.list",
        "assistants.files.create",
        "assistants.files.retrieve",
        "assistants.files.delete",
        "messages.files.list",
        "messages.files.retrieve",
    }
)

# Azure OpenAI has no OpenAI-Beta header: Assistants v2 starts with api-version 2024-05-01-preview.
_AZURE_V2_FROM = "2024-05-01"


@dataclass(frozen=True, slots=True)
class RouteInfo:
    route: str  # templated, prefix stripped: /threads/{thread_id}/runs/{run_id}
    operation: str  # runs.retrieve, ..., or "other"
    provider: str  # openai | azure.ai.openai | azure.ai.agents
    ids: dict[str, str] = field(default_factory=dict)  # path parameters: {"thread_id": ..., ...}
    prefix: str = ""  # what preceded the API path: /v1, /openai, /gateway/v1, /api/projects/p
    azure_api_version: str | None = None  # the api-version query parameter
    v1_only: bool = False  # an Assistants-v1-only route (assistant files, message files)
    api: str = OTHER_API  # one of APIS: the family of the first known resource segment
    project: str | None = None  # the Azure AI Foundry project named in /api/projects/{project}/

    @property
    def implied_azure_assistants_version(self) -> str | None:
        """Assistants API version an Azure api-version selects (Azure sends no OpenAI-Beta).
        A Foundry project serves Assistants v2 under api-versions of its own (`v1`, and any
        later one), which say nothing about the Assistants version."""
        if self.provider == AZURE_AGENTS:
            return "v2"
        v = self.azure_api_version
        if not v:
            return None
        return "v2" if v[:10] >= _AZURE_V2_FROM else "v1"

    @property
    def path_api_version(self) -> str | None:
        """The version a Responses/Conversations call names: Azure's api-version, else the `v1` the
        prefix ends with (`/v1`, Azure's `/openai/v1`), else None (a bare gateway path)."""
        if self.azure_api_version:
            return self.azure_api_version
        last = self.prefix.rsplit("/", 1)[-1]
        return last if last[:1] == "v" and last[1:].isdigit() else None


class _Node:
    __slots__ = ("literals", "param", "param_name", "template", "methods")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.param_name: str | None = None
        self.template: str | None = None
        self.methods: dict[str, str] = {}


def _build() -> tuple[_Node, frozenset[str]]:
    root = _Node()
    for method, template, operation in _ROUTES:
        node = root
        for seg in template.strip("/").split("/"):
            if seg.startswith("{"):
                name = seg[1:-1]
                if node.param is None:
                    node.param = _Node()
                    node.param_name = name
                assert node.param_name == name, template  # one parameter name per position
                node = node.param
            else:
                node = node.literals.setdefault(seg, _Node())
        node.template = template
        node.methods[method] = operation
    return root, frozenset(root.literals)


_TRIE, _ROOTS = _build()

# Other OpenAI API families whose paths contain our resource names (e.g.
# /v1/organization/usage/vector_stores): a prefix holding one of these is not a base path.
_FOREIGN_SEGMENTS = frozenset(
    {"organization", "chat", "batches", "fine_tuning", "audio", "images", "realtime", "usage", "containers"}
)


def _azure_api_version(query: str) -> str | None:
    if "api-version=" not in query:
        return None
    for part in query.split("&"):
        if part.startswith("api-version="):
            return part[12:] or None
    return None


def _generic_template(segments: list[str], project_at: int | None = None) -> str:
    # Unknown paths still get a low-cardinality route: id-like segments become {id}, a Foundry
    # project's name {project}.
    out = []
    for i, seg in enumerate(segments):
        has_digit = any(c.isdigit() for c in seg)
        looks_like_id = has_digit and (len(seg) >= 12 or "_" in seg or "-" in seg)
        out.append("{project}" if i == project_at else "{id}" if looks_like_id else seg)
    return "/" + "/".join(out)


def _project_index(segments: list[str]) -> int | None:
    """Where the project name stands in `.../api/projects/{project}/...` (an Azure AI Foundry
    project endpoint, maybe behind a gateway's base path), or None."""
    for i in range(len(segments) - 2):
        if segments[i] == "api" and segments[i + 1] == "projects":
            return i + 2
    return None


def classify(method: str, path: str, query: str = "") -> RouteInfo:
    """Classify one request line. Never raises; unknown paths get operation ``other``."""
    segments = [s for s in path.split("/") if s]
    project_at = _project_index(segments)
    # a project may be named like a resource (`threads`, `chat`): its name is no path segment
    start = next((i for i, s in enumerate(segments) if s in _ROOTS and i != project_at), None)
    if start is not None and not _FOREIGN_SEGMENTS.isdisjoint(s for i, s in enumerate(segments[:start])
                                                               if i != project_at):
        start = None
    azure_version = _azure_api_version(query)
    prefix_segments = segments[:start] if start is not None else []
    project = segments[project_at] if project_at is not None else None
    if project is not None:
        # the Agent Service's own paths; /api/projects/{project}/openai/... is Azure OpenAI's
        provider = AZURE if segments[project_at + 1:project_at + 2] == ["openai"] else AZURE_AGENTS
    elif azure_version or prefix_segments[:1] == ["openai"]:
        provider = AZURE
    else:
        provider = OPENAI
    if start is None:
        return RouteInfo(_generic_template(segments, project_at), "other", provider, {}, "", azure_version,
                         project=project)
    prefix = "/" + "/".join(prefix_segments) if prefix_segments else ""
    rest = segments[start:]
    api = _API_OF_ROOT.get(rest[0], FOUNDRY_AGENTS if provider == AZURE_AGENTS else ASSISTANTS)
    node: _Node | None = _TRIE
    ids: dict[str, str] = {}
    for seg in rest:
        assert node is not None
        child = node.literals.get(seg)
        if child is None and node.param is not None:
            ids[node.param_name] = seg  # type: ignore[index]
            child = node.param
        node = child
        if node is None:
            break
    if node is None or node.template is None:
        return RouteInfo(_generic_template(rest), "other", provider, ids, prefix, azure_version, api=api,
                         project=project)
    operation = node.methods.get(method.upper(), "other")
    return RouteInfo(node.template, operation, provider, ids, prefix, azure_version, operation in V1_ONLY_OPERATIONS,
                     api, project)
