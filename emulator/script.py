"""What a run does, decided from its input alone (see emulator/SCRIPT.md).

The plan is computed once when the run is created: which tool steps it takes, which functions
it calls (and so whether it stops in `requires_action`), how it ends, its reply and its usage."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

TRIGGER = re.compile(r"\[(fail|incomplete):([a-z_]+)\]|\[(expire|slow|no_tools)\]")
FAIL_MESSAGES = {
    "rate_limit_exceeded": "You exceeded your current quota, please check your plan and billing details.",
    "server_error": "Sorry, something went wrong.",
    "invalid_prompt": "Your prompt was flagged as potentially violating our usage policy.",
}
CODE_INPUT = "import math\nprint(sum(range(10)))\n"
CODE_LOGS = "45\n"


@dataclass(frozen=True)
class FunctionCall:
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    tool_steps: tuple[str, ...]  # "code_interpreter" | "file_search" | "retrieval", in order
    function_calls: tuple[FunctionCall, ...]
    outcome: str  # "completed" | "failed" | "incomplete" | "expired"
    outcome_detail: str | None  # error code or incomplete reason
    phase_seconds: float
    query: str
    prompt_tokens: int
    vector_store_ids: tuple[str, ...] = field(default=())
    retrieval_file_ids: tuple[str, ...] = field(default=())


def tokens(text: str) -> int:
    """About four characters per token, as OpenAI's rule of thumb says."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def sample_value(schema: dict, name: str) -> object:
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return 42
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [sample_value(schema.get("items") or {}, name)]
    if kind == "object":
        return function_arguments(schema)
    return f"emulated {name}"


def function_arguments(parameters: dict | None) -> dict:
    """A value for every required property (all properties when none is marked required)."""
    props = (parameters or {}).get("properties") or {}
    wanted = (parameters or {}).get("required") or list(props)
    return {name: sample_value(props.get(name) or {}, name) for name in wanted}


def triggers(text: str) -> tuple[str, str | None, bool, bool]:
    """(outcome, error code or incomplete reason, slow, no_tools) from the triggers in `text`."""
    outcome, detail, slow, no_tools = "completed", None, False, False
    for m in TRIGGER.finditer(text):
        if m.group(1) == "fail":
            outcome, detail = "failed", m.group(2)
        elif m.group(1) == "incomplete":
            outcome, detail = "incomplete", m.group(2)
        elif m.group(3) == "expire":
            outcome = "expired"
        elif m.group(3) == "slow":
            slow = True
        elif m.group(3) == "no_tools":
            no_tools = True
    return outcome, detail, slow, no_tools


def make_plan(
    *,
    tools: list[dict],
    tool_choice: object,
    trigger_text: str,
    query: str,
    prompt_text: str,
    vector_store_ids: list[str],
    retrieval_file_ids: list[str],
    phase_seconds: float,
    parallel_tool_calls: bool = True,
) -> Plan:
    outcome, detail, slow, no_tools = triggers(trigger_text)

    allowed = {t.get("type") for t in tools}
    forced_function = None
    if tool_choice == "none" or no_tools:
        allowed = set()
    elif isinstance(tool_choice, dict):
        allowed = {tool_choice.get("type")}
        if tool_choice.get("type") == "function":
            forced_function = (tool_choice.get("function") or {}).get("name")

    steps: list[str] = []
    if "code_interpreter" in allowed:
        steps.append("code_interpreter")
    if "file_search" in allowed and vector_store_ids:
        steps.append("file_search")
    if "retrieval" in allowed and retrieval_file_ids:
        steps.append("retrieval")
    calls = []
    if "function" in allowed:
        for tool in tools:
            fn = tool.get("function") or {}
            if tool.get("type") != "function" or (forced_function and fn.get("name") != forced_function):
                continue
            args = json.dumps(function_arguments(fn.get("parameters")), separators=(",", ":"))
            calls.append(FunctionCall(fn.get("name", "function"), args))
    if not parallel_tool_calls:
        calls = calls[:1]
    return Plan(
        tool_steps=tuple(steps),
        function_calls=tuple(calls),
        outcome=outcome,
        outcome_detail=detail,
        phase_seconds=phase_seconds * (5 if slow else 1),
        query=query,
        prompt_tokens=tokens(prompt_text),
        vector_store_ids=tuple(vector_store_ids),
        retrieval_file_ids=tuple(retrieval_file_ids),
    )


def reply_text(query: str, *, code: bool, citations: list[str], tool_outputs: list[str]) -> str:
    snippet = " ".join(query.split()[:12]) or "your message"
    parts = [f"This is the emulated assistant answering: {snippet}."]
    if code:
        parts.append("The code printed 45.")
    if tool_outputs:
        parts.append("The tools returned " + "; ".join(o[:60] for o in tool_outputs) + ".")
    if citations:
        parts.append(f"I found this in {citations[0]}.")
    return " ".join(parts)
