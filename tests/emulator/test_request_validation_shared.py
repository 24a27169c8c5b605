"""Assistants and Responses/Conversations bodies go through one validator (emulator/request_schema.py),
each against its own API's schemas: the same mistake in a field both APIs define gets the same
400, word for word, from a real emulator on loopback."""

from __future__ import annotations

import json

import pytest

from tests.emulator.rawhttp import raw

# (mistake, Assistants request, Responses/Conversations request, param, code, message)
SAME_MISTAKE = [
    ("number above its maximum",
     ("/v1/assistants", {"model": "gpt-4o", "temperature": 3}),
     ("/v1/responses", {"model": "gpt-4o", "input": "hi", "temperature": 3}),
     "temperature", "integer_above_max_value",
     "Invalid 'temperature': integer above maximum value. Expected a value <= 2, but got 3 instead."),
    ("value outside the enum",
     ("/v1/threads/runs", {"assistant_id": "asst_x", "tool_choice": "sometimes"}),
     ("/v1/responses", {"model": "gpt-4o", "input": "hi", "tool_choice": "sometimes"}),
     "tool_choice", "invalid_value",
     "Invalid value: 'sometimes'. Supported values are: 'none', 'auto', and 'required'."),
    ("wrong type inside an object",
     ("/v1/assistants", {"model": "gpt-4o", "metadata": {"a": True}}),
     ("/v1/responses", {"model": "gpt-4o", "input": "hi", "metadata": {"a": True}}),
     "metadata.a", "invalid_type", "Invalid type for 'metadata.a': expected a string, but got a boolean instead."),
    ("wrong type of a nullable field",
     ("/v1/threads", {"metadata": "x"}),
     ("/v1/conversations", {"metadata": "x"}),
     "metadata", "invalid_type", "Invalid type for 'metadata': expected an object, but got a string instead."),
    ("undefined top-level field",
     ("/v1/threads", {"frobnicate": 1}),
     ("/v1/conversations", {"frobnicate": 1}),
     "frobnicate", "unknown_parameter", "Unknown parameter: 'frobnicate'."),
]


@pytest.mark.parametrize("mistake,assistants,responses,param,code,message", SAME_MISTAKE,
                         ids=[case[0] for case in SAME_MISTAKE])
def test_the_same_mistake_gets_the_same_400_from_both_apis(emulator_session, mistake, assistants, responses,
                                                          param, code, message):
    expected = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    for path, body in (assistants, responses):
        status, _, answer = raw(emulator_session.url, "POST", path, body)
        assert (status, json.loads(answer)["error"]) == (400, expected), (mistake, path)
