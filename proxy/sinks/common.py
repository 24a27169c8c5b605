"""Vocabulary shared by the metrics and tracing sinks: which run statuses are terminal, how an
Assistants operation maps onto a GenAI semantic-convention operation, and when a run ended.
(Their per-run state stays bounded with proxy.lru.LRU.)"""

from __future__ import annotations

from datetime import datetime

from proxy.assistants.facts import RunSnapshot

TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})

# Assistants operation (proxy.assistants.routes) -> gen_ai.operation.name. Only operations the GenAI
# conventions have a name for; everything else is plain HTTP.
_GENAI_OPERATIONS = {
    "assistants.create": "create_agent",
    "runs.create": "invoke_agent",
    "threads.create_and_run": "invoke_agent",
    "runs.submit_tool_outputs": "execute_tool",
    "vector_stores.search": "retrieval",
}
GENAI_OPERATION_NAMES = frozenset(_GENAI_OPERATIONS.values())


def genai_operation(operation: str | None) -> str | None:
    if not operation:
        return None
    return _GENAI_OPERATIONS.get(operation)


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
