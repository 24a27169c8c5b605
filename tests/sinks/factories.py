"""Build facts directly (and Exchanges, with the one factory), for sink tests that must not depend
on the parser."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from proxy.serving.exchange import Exchange
from proxy.assistants.facts import (
    ExchangeFact,
    FileSearchResultFact,
    RunSnapshot,
    StepSnapshot,
    ToolCallFact,
    VectorStoreObservation,
)
from tests.exchanges import T0, exchange  # noqa: F401 (the one factory for test exchanges)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def _defaults(cls: type, **given: Any) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            values[f.name] = f.default_factory()  # type: ignore[misc]
        elif f.type in ("bool",):
            values[f.name] = False
        elif f.type.startswith("tuple"):
            values[f.name] = ()
        elif f.type in ("int",):
            values[f.name] = 0
        elif f.type in ("float",):
            values[f.name] = 0.0
        elif f.type == "datetime":
            values[f.name] = at(0)
        else:
            values[f.name] = None
    return cls(**values)


def exchange_fact(ex: Exchange, *, operation: str = "runs.retrieve", route: str = "/threads/{thread_id}/runs/{run_id}", **kw: Any) -> ExchangeFact:
    base = dict(
        exchange_id=ex.exchange_id, observed_at=datetime.fromtimestamp(ex.started_at, UTC), worker=ex.worker,
        origin=ex.origin, started_at=datetime.fromtimestamp(ex.started_at, UTC), duration_ms=ex.duration_s * 1000,
        method=ex.method, path=ex.path, route=route, operation=operation, provider="openai",
        status_code=ex.status, beta_header="assistants=v2", api_version="v2", proxy_overhead_ms=1.0,
    )
    base.update(kw)
    return _defaults(ExchangeFact, **base)


def run(run_id: str = "run_1", *, status: str = "queued", t: float = 0.0, source: str = "retrieve", **kw: Any) -> RunSnapshot:
    base = dict(
        exchange_id="ex", seq=0, observed_at=at(t), source=source, run_id=run_id, thread_id="thread_1",
        assistant_id="asst_1", model="gpt-4o", status=status, api_version="v2", created_at=at(0),
    )
    base.update(kw)
    return _defaults(RunSnapshot, **base)


def step(step_id: str, *, run_id: str = "run_1", type: str = "tool_calls", t: float = 0.0, **kw: Any) -> StepSnapshot:
    base = dict(exchange_id="ex", seq=0, observed_at=at(t), step_id=step_id, run_id=run_id, thread_id="thread_1", type=type)
    base.update(kw)
    return _defaults(StepSnapshot, **base)


def tool_call(call_id: str, *, type: str = "function", run_id: str = "run_1", t: float = 0.0, **kw: Any) -> ToolCallFact:
    base = dict(exchange_id="ex", seq=0, observed_at=at(t), tool_call_id=call_id, source="step", run_id=run_id,
                thread_id="thread_1", type=type)
    base.update(kw)
    return _defaults(ToolCallFact, **base)


def file_search_result(call_id: str, rank: int, score: float, *, run_id: str = "run_1", **kw: Any) -> FileSearchResultFact:
    base = dict(exchange_id="ex", observed_at=at(0), tool_call_id=call_id, run_id=run_id, rank=rank, score=score)
    base.update(kw)
    return _defaults(FileSearchResultFact, **base)


def vector_store(vs_id: str, usage_bytes: int | None, *, t: float = 0.0, **kw: Any) -> VectorStoreObservation:
    base = dict(exchange_id="ex", seq=0, observed_at=at(t), source="retrieve", vector_store_id=vs_id,
                usage_bytes=usage_bytes, status="completed")
    base.update(kw)
    return _defaults(VectorStoreObservation, **base)
