"""Usage the upstream reports is priced downstream: an impossible one is refused in the facts (no
token count, only the reason), for runs and steps, plain JSON and streamed."""

from __future__ import annotations

import json

import pytest

from proxy.assistants.parse import parse
from proxy.assistants.facts import MAX_USAGE_TOKENS, USAGE_INVALID_REASONS, RunSnapshot, StepSnapshot
from tests.recording.recorded import exchange, load

IMPOSSIBLE = [
    pytest.param({"prompt_tokens": -50000, "completion_tokens": 10, "total_tokens": -49990}, "negative", id="negative"),
    pytest.param({"prompt_tokens": 5, "completion_tokens": -1, "total_tokens": 4}, "negative", id="negative_completion"),
    pytest.param({"prompt_tokens": 2**63 - 1, "completion_tokens": 0, "total_tokens": 2**63 - 1}, "too_large",
                 id="int64_max"),
    pytest.param({"prompt_tokens": MAX_USAGE_TOKENS + 1, "completion_tokens": 0, "total_tokens": MAX_USAGE_TOKENS + 1},
                 "too_large", id="beyond_any_context"),
    pytest.param({"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 2**64 - 1}, "too_large", id="uint64_max_total"),
    pytest.param({"prompt_tokens": 1.5, "completion_tokens": 1, "total_tokens": 2.5}, "malformed", id="float"),
    pytest.param({"prompt_tokens": 10.0, "completion_tokens": 1, "total_tokens": 11}, "malformed", id="integral_float"),
    pytest.param({"prompt_tokens": "10", "completion_tokens": 1, "total_tokens": 11}, "malformed", id="string"),
    pytest.param({"prompt_tokens": True, "completion_tokens": 1, "total_tokens": 2}, "malformed", id="bool"),
    pytest.param({"prompt_tokens": [1], "completion_tokens": 1, "total_tokens": 2}, "malformed", id="list"),
    pytest.param("lots", "malformed", id="usage_not_an_object"),
    pytest.param(17, "malformed", id="usage_a_number"),
    pytest.param({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 99}, "inconsistent", id="total_mismatch"),
]


def _run_body(usage: object) -> bytes:
    body = json.loads(load("synthetic_runs_retrieve_completed")["response_body"])
    body["usage"] = usage
    return json.dumps(body).encode()


def _steps_body(usage: object) -> bytes:
    body = json.loads(load("synthetic_steps_list_tools")["response_body"])
    for step in body["data"]:
        step["usage"] = usage
    return json.dumps(body).encode()


def _stream_body(usage: object) -> bytes:
    run = json.loads(load("synthetic_runs_retrieve_completed")["response_body"])
    run["usage"] = usage
    return f"event: thread.run.completed\ndata: {json.dumps(run)}\n\nevent: done\ndata: [DONE]\n\n".encode()


def test_reasons_are_a_fixed_vocabulary():
    assert {p.values[1] for p in IMPOSSIBLE} == set(USAGE_INVALID_REASONS)


@pytest.mark.parametrize(("usage", "reason"), IMPOSSIBLE)
def test_impossible_run_usage_keeps_the_run_but_no_tokens(usage, reason):
    facts = parse(exchange("synthetic_runs_retrieve_completed", response_body=_run_body(usage)), capture_content=False)
    (run,) = [f for f in facts if isinstance(f, RunSnapshot)]
    assert (run.run_id, run.status, run.model) == ("run_synth1", "completed", "gpt-4o")
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (None, None, None)
    assert run.usage_invalid == reason


@pytest.mark.parametrize(("usage", "reason"), IMPOSSIBLE)
def test_impossible_streamed_run_usage(usage, reason):
    facts = parse(exchange("synthetic_runs_retrieve_completed", response_body=_stream_body(usage),
                           response_headers=[("content-type", "text/event-stream")]), capture_content=False)
    (run,) = [f for f in facts if isinstance(f, RunSnapshot)]
    assert (run.streamed, run.prompt_tokens, run.total_tokens, run.usage_invalid) == (True, None, None, reason)


@pytest.mark.parametrize(("usage", "reason"), IMPOSSIBLE)
def test_impossible_step_usage(usage, reason):
    facts = parse(exchange("synthetic_steps_list_tools", response_body=_steps_body(usage)), capture_content=False)
    steps = [f for f in facts if isinstance(f, StepSnapshot)]
    assert steps
    for step in steps:
        assert (step.prompt_tokens, step.completion_tokens, step.total_tokens) == (None, None, None)
        assert step.usage_invalid == reason


@pytest.mark.parametrize(
    ("usage", "tokens"),
    [
        pytest.param({"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360}, (300, 60, 360), id="sane"),
        pytest.param({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, (0, 0, 0), id="zero"),
        pytest.param({"prompt_tokens": MAX_USAGE_TOKENS, "completion_tokens": 0, "total_tokens": MAX_USAGE_TOKENS},
                     (MAX_USAGE_TOKENS, 0, MAX_USAGE_TOKENS), id="at_the_limit"),
        pytest.param({"prompt_tokens": 7, "completion_tokens": 3}, (7, 3, None), id="no_total"),
        pytest.param(None, (None, None, None), id="not_yet_reported"),
        pytest.param({}, (None, None, None), id="empty"),
    ],
)
def test_possible_usage_is_kept(usage, tokens):
    facts = parse(exchange("synthetic_runs_retrieve_completed", response_body=_run_body(usage)), capture_content=False)
    (run,) = [f for f in facts if isinstance(f, RunSnapshot)]
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens, run.usage_invalid) == (*tokens, None)
