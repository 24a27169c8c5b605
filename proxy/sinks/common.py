"""Vocabulary shared by the metrics and tracing sinks: which run statuses are terminal, how an
Assistants operation maps onto a GenAI semantic-convention operation, when a run ended, and a
small LRU so per-run state stays bounded however many runs pass through."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from proxy.facts import RunSnapshot

TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})

# Assistants operation (proxy.routes) -> gen_ai.operation.name. Only operations the GenAI
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


K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that forgets the least recently used key past `maxsize` entries."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def setdefault(self, key: K, factory: Callable[[], V]) -> V:
        value = self._data.get(key)
        if value is None:
            value = self._data[key] = factory()
            if len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        else:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def values(self) -> list[V]:
        return list(self._data.values())

    def items(self) -> list[tuple[K, V]]:
        return list(self._data.items())

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
