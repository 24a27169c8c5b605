"""Vocabulary shared by the metrics and tracing sinks: which run and response statuses are
terminal, how an operation maps onto a GenAI semantic-convention operation, which API generation
a call belongs to, and when a run ended. (Their per-run state stays bounded with proxy.lru.LRU.)"""

from __future__ import annotations

from datetime import datetime

from proxy.assistants.facts import RunSnapshot
from analytics.schema import GENERATIONS
from proxy.assistants.routes import ASSISTANTS, CONVERSATIONS, FOUNDRY_AGENTS, RESPONSES
from proxy.responses.facts import ResponseSnapshot

TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
# A response stops in one of these (queued and in_progress are the only others).
TERMINAL_RESPONSE_STATUSES = frozenset({"completed", "failed", "incomplete", "cancelled"})

# Assistants operation (proxy.assistants.routes) -> gen_ai.operation.name. Only operations the GenAI
# conventions have a name for; everything else is plain HTTP.
_GENAI_OPERATIONS = {
    "assistants.create": "create_agent",
    "runs.create": "invoke_agent",
    "threads.create_and_run": "invoke_agent",
    "runs.submit_tool_outputs": "execute_tool",
    "vector_stores.search": "retrieval",
    # the OpenAI conventions name a Responses create `chat` (with openai.api.type = responses)
    "responses.create": "chat",
}
GENAI_OPERATION_NAMES = frozenset(_GENAI_OPERATIONS.values())


def genai_operation(operation: str | None) -> str | None:
    if not operation:
        return None
    return _GENAI_OPERATIONS.get(operation)


# API generations, the axis a migration moves along (the `generation` metric label): the two
# Assistants versions, the Responses API with its Conversations, and Azure AI Foundry's classic
# agents. Vector stores, files and uploads are read by every generation, so calls to them are
# `shared`; an Assistants call whose version nothing names (no OpenAI-Beta, no Azure
# api-version) is `other`, like any call outside these APIs.
assert FOUNDRY_AGENTS in GENERATIONS  # the routes' api and the generation are one name
_SHARED_RESOURCES = frozenset({"vector_stores", "files", "uploads"})


def api_generation(api: str | None, operation: str | None, assistants_version: str | None) -> str:
    """The generation of one call: `api` is the exchange's API family (routes.APIS),
    `assistants_version` the Assistants version it speaks (v1 | v2 | None)."""
    if api in (RESPONSES, CONVERSATIONS):
        return "responses"
    if api == FOUNDRY_AGENTS:
        return FOUNDRY_AGENTS
    if api != ASSISTANTS:
        return "other"
    if (operation or "").split(".", 1)[0] in _SHARED_RESOURCES:
        return "shared"
    return {"v1": "assistants_v1", "v2": "assistants_v2"}.get(assistants_version or "", "other")


def response_stop_reason(response: ResponseSnapshot) -> str | None:
    """Why a response stopped short: `error.code` of a failed one, `incomplete_details.reason`
    of an incomplete one (None otherwise)."""
    if response.status == "failed":
        return response.error_code or "failed"
    if response.status == "incomplete":
        return response.incomplete_reason or "incomplete"
    return None


def run_ended_at(run: RunSnapshot) -> datetime | None:
    """When the run stopped, as the API reports it (falls back to when we saw it stop)."""
    status = run.status
    if status == "completed":
        end = run.completed_at
    elif status == "failed":
        end = run.failed_at
    elif status == "cancelled":
        end = run.cancelled_at
    elif status == "expired":
        end = run.expires_at
    else:
        end = run.completed_at or run.failed_at or run.cancelled_at
    return end or run.observed_at
