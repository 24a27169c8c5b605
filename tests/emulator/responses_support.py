"""Helpers for the Responses/Conversations tests: the spec slice (tests/fixtures/spec/responses_spec.json,
made by scripts/extract_responses_fixture.py) and calls through the unmodified `openai` SDK that
keep the raw JSON the emulator sent, so both the SDK's view and the wire bytes are checked."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tests.spec_validation import SpecSchemas, SpecViolation

FIXTURES = Path(__file__).parent.parent / "fixtures" / "spec"
RECORDED = json.loads((FIXTURES / "responses_recorded.json").read_text())
DOC = b"Capybaras are the largest rodents. They live in South America near rivers and lakes."


@functools.cache
def spec() -> SpecSchemas:
    return SpecSchemas(json.loads((FIXTURES / "responses_spec.json").read_text()), "responses")


def _raise(errors: list[str], what: str) -> None:
    if errors:
        raise SpecViolation(f"{what}: {errors[0]} (+{len(errors) - 1} more)")


def check_body(operation: str, body: Any, status: int = 200) -> Any:
    _raise(spec().response_errors(operation, status, body), f"{operation} -> {status}")
    return body


def check_event(event: dict) -> dict:
    _raise(spec().stream_event_errors(event["type"], event), f"event {event['type']}")
    return event


def raw_call(method, operation: str, *args, **kwargs) -> tuple[Any, dict]:
    """`method` is an SDK method's `with_raw_response` twin: (the SDK's parsed object, raw JSON),
    the JSON validated against the spec's schema for `operation`."""
    raw = method(*args, **kwargs)
    body = raw.http_response.json()
    check_body(operation, body)
    return raw.parse(), body


def poll(client, response_id: str, *, limit: int = 200) -> tuple[list[str], dict]:
    """Retrieve until the response is terminal: (statuses seen, final raw JSON)."""
    seen = []
    for _ in range(limit):
        _, body = raw_call(client.responses.with_raw_response.retrieve, "GET /responses/{response_id}", response_id)
        seen.append(body["status"])
        if body["status"] not in ("queued", "in_progress"):
            return seen, body
    raise AssertionError(f"{response_id} still {seen[-1]} after {limit} polls")


def upload_store(client) -> str:
    """A vector store holding DOC as capybara.txt, its file processed: the store's id."""
    file = client.files.create(file=("capybara.txt", DOC), purpose="assistants")
    vs = client.vector_stores.create(name="animals", file_ids=[file.id])
    for _ in range(50):
        if client.vector_stores.retrieve(vs.id).file_counts.completed == 1:
            return vs.id
    raise AssertionError("vector store file never completed")
