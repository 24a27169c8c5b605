"""OpenTelemetry spans for every exchange, every run and every response.

* One SERVER span per proxied exchange (CLIENT for the proxy's own enrichment/sampler calls),
  timed by the Exchange, with the HTTP and GenAI semantic-convention attributes plus `openai.*`
  for what the conventions lack. When the forwarder sent a `traceparent` upstream, the span has
  exactly that trace id and span id, and the client's own `traceparent` as parent.
* One run trace per run, when the run reaches a terminal status: `invoke_agent {assistant}`
  from the run's `created_at` to its end, a child per step (`chat {model}` for message
  creation, `execute_tool {tool}` per tool call, `retrieval` per file_search call), and links
  to every exchange span that touched the run. Streamed runs are emitted at once; a polled run
  waits up to `step_wait_s` for the step list (the client's or the enrichment's) to arrive.
* One span per Responses API response, when it ends: `chat {model}` (CLIENT, the OpenAI
  conventions' inference span with `openai.api.type` = responses), a child of the exchange span
  that created it, so in the client's trace, with the trace id the forwarder sent upstream. A
  plain or streamed response spans its create exchange (a stream: to its last event, with
  `gen_ai.response.time_to_first_chunk`); a background one runs from its create to the poll that
  saw it finish, linked to every exchange that touched it. A child `execute_tool {tool}` per tool
  call in its output, spanning the response (the API does not time output items).

Per-run and per-response state lives in bounded LRUs. Content attributes only with capture_content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from proxy import __version__
from proxy.config import Settings
from proxy.serving.exchange import Exchange
from proxy.assistants.facts import (
    AssistantObservation,
    ExchangeFact,
    Fact,
    FileSearchResultFact,
    RunSnapshot,
    StepSnapshot,
    ToolCallFact,
)
from proxy.lru import LRU
from proxy.responses.facts import ResponseSnapshot, ResponseToolCallFact
from proxy.sinks.common import (
    TERMINAL_RESPONSE_STATUSES,
    TERMINAL_RUN_STATUSES,
    genai_operation,
    response_stop_reason,
    run_ended_at,
)
from proxy.serving.tracecontext import TraceParent
from proxy.sinks.telemetry import ExchangeIdGenerator

MAX_LINKS = 64  # per run trace or response span; the rest are counted in openai.*.unlinked_exchanges
MAX_RESPONSE_TOOLS = 128  # tool call spans per response
# Output items the client itself must act on: a completed response holding one stopped for tool calls.
_CLIENT_CALL_ITEMS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call", "shell_call",
                                "apply_patch_call"})
# gen_ai.tool.type: what runs on the client is a `function`, what reads a store a `datastore`,
# any other tool the API runs itself an `extension`.
_TOOL_KINDS = {"function": "function", "custom": "function", "computer": "function", "local_shell": "function",
               "shell": "function", "apply_patch": "function", "file_search": "datastore"}


def _ns(dt: datetime | float | None) -> int | None:
    if dt is None:
        return None
    seconds = dt.timestamp() if isinstance(dt, datetime) else dt
    return int(seconds * 1e9)


@dataclass(slots=True)
class _ToolState:
    step_id: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    type: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    code_input: str | None = None
    result_count: int | None = None
    results_seen: int = 0
    top_score: float | None = None


@dataclass(slots=True)
class _StepState:
    type: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    ended_at: datetime | None = None
    last_error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)
class _RunState:
    provider: str = "openai"
    last: RunSnapshot | None = None
    terminal_at: float | None = None  # monotonic clock, when we first saw it terminal
    emitted: bool = False
    streamed: bool = False
    polls: int = 0
    links: list[tuple[SpanContext, str]] = field(default_factory=list)
    unlinked: int = 0
    steps: dict[str, _StepState] = field(default_factory=dict)
    tools: dict[str, _ToolState] = field(default_factory=dict)
    instructions: str | None = None


@dataclass(slots=True)
class _ResponseState:
    parent: SpanContext | None = None  # the exchange span that first carried the response (its create)
    start: int | None = None  # ns
    create_end: int | None = None  # ns, when the create exchange ended
    request_model: str | None = None
    provider: str = "openai"
    server: dict[str, object] = field(default_factory=dict)
    first_chunk_s: float | None = None
    polls: int = 0
    last: ResponseSnapshot | None = None
    emitted: bool = False
    links: list[tuple[SpanContext, str]] = field(default_factory=list)
    unlinked: int = 0
    tools: dict[str, ResponseToolCallFact] = field(default_factory=dict)


def _finish_reason(response: ResponseSnapshot) -> str | None:
    """The response's end in the conventions' usual finish-reason words."""
    if response.status == "completed":
        return "tool_calls" if _CLIENT_CALL_ITEMS.intersection(response.output_types) else "stop"
    if response.status == "incomplete":
        return {"max_output_tokens": "length"}.get(response.incomplete_reason or "", response.incomplete_reason)
    return {"failed": "error", "cancelled": "cancelled"}.get(response.status or "")


class OtelSink:
    """proxy.recording.dispatch.Sink producing spans on the given tracer provider."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        settings: Settings,
        *,
        step_wait_s: float = 5.0,
        max_runs: int = 10_000,
        max_assistants: int = 10_000,
        max_responses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = tracer_provider
        self.capture_content = settings.capture_content
        self.step_wait_s = step_wait_s
        self._clock = clock
        self._tracer = tracer_provider.get_tracer("assistants_audit", __version__)
        ids = getattr(self._tracer, "id_generator", None)
        if not isinstance(ids, ExchangeIdGenerator):
            # A provider built elsewhere: give our tracer (only ours) the forcing generator.
            ids = ExchangeIdGenerator(ids)
            self._tracer.id_generator = ids
        self._ids = ids
        self._runs: LRU[str, _RunState] = LRU(max_runs)
        self._responses: LRU[str, _ResponseState] = LRU(max_responses)
        self._assistant_names: LRU[str, str] = LRU(max_assistants)
        self._pending: dict[str, None] = {}  # terminal runs awaiting their steps, oldest first

    # -- Sink -------------------------------------------------------------------------------

    def on_exchange(self, exchange: Exchange, facts: Sequence[Fact]) -> None:
        ef = facts[0] if facts and isinstance(facts[0], ExchangeFact) else None
        span_context = self._exchange_span(exchange, ef, facts)
        provider = ef.provider if ef is not None else "openai"
        operation = (ef.operation if ef else None) or "other"
        touched: set[str] = set()
        stepped: set[str] = set()
        for fact in facts:
            if isinstance(fact, RunSnapshot):
                self._run_snapshot(fact, provider)
                touched.add(fact.run_id)
            elif isinstance(fact, StepSnapshot) and fact.run_id:
                self._step(fact)
                touched.add(fact.run_id)
                stepped.add(fact.run_id)
            elif isinstance(fact, ToolCallFact) and fact.run_id:
                self._tool_call(fact)
                touched.add(fact.run_id)
            elif isinstance(fact, FileSearchResultFact) and fact.run_id:
                self._file_search_result(fact)
            elif isinstance(fact, AssistantObservation) and fact.name:
                self._assistant_names.put(fact.assistant_id, fact.name)
        if ef is not None and ef.run_id:
            touched.add(ef.run_id)
        self._responses_seen(exchange, ef, facts, span_context, operation)
        for run_id in touched:
            state = self._runs.setdefault(run_id, _RunState)
            if state.emitted:
                continue
            if span_context is not None and span_context.is_valid:
                if len(state.links) < MAX_LINKS:
                    state.links.append((span_context, operation))
                else:
                    state.unlinked += 1
            if state.terminal_at is not None and (state.streamed or run_id in stepped or self.step_wait_s <= 0):
                self._emit_run(run_id, state)
        self._emit_due()

    def flush(self) -> None:
        self._emit_due()

    def close(self) -> None:
        for run_id in list(self._pending):
            state = self._runs.get(run_id)
            if state is not None and not state.emitted:
                self._emit_run(run_id, state)
        self._pending.clear()

    # -- exchange spans -----------------------------------------------------------------------

    def _exchange_span(self, exchange: Exchange, ef: ExchangeFact | None, facts: Sequence[Fact]) -> SpanContext | None:
        route = ef.route if ef is not None and ef.route and ef.route != "other" else None
        name = f"{exchange.method} {route}" if route else exchange.method
        attrs: dict[str, object] = {
            "http.request.method": exchange.method,
            "url.path": exchange.path,
            "http.request.body.size": exchange.request_body_size,
            "http.response.body.size": exchange.response_body_size,
            "openai.exchange.id": exchange.exchange_id,
            "openai.origin": exchange.origin,
        }
        if route:
            attrs["http.route"] = route
        if exchange.status is not None:
            attrs["http.response.status_code"] = exchange.status
        attrs.update(_server(exchange.upstream))  # the API server the client addresses through the proxy
        error_type = exchange.error_type
        if ef is not None:
            error_type = error_type or (ef.error_type or str(ef.status_code) if (ef.status_code or 0) >= 400 else None)
            attrs["gen_ai.provider.name"] = ef.provider or "openai"
            attrs["openai.operation"] = ef.operation
            attrs["openai.stream"] = ef.stream
            genai_op = genai_operation(ef.operation)
            optional = {
                "gen_ai.operation.name": genai_op,
                "gen_ai.agent.id": ef.assistant_id,
                "gen_ai.conversation.id": ef.thread_id or ef.conversation_id,
                "gen_ai.response.id": ef.response_id,
                "openai.api": ef.api,
                "gen_ai.request.model": ef.model,
                "openai.beta_header": ef.beta_header,
                "openai.api_version": ef.api_version,
                "openai.azure.api_version": ef.azure_api_version,
                "openai.run.id": ef.run_id,
                "openai.vector_store.id": ef.vector_store_id,
                "openai.request_id": ef.upstream_request_id,
                "openai.sdk": ef.sdk,
                "openai.error.code": ef.error_code,
                "openai.parse_error": ef.parse_error,
            }
            attrs.update({k: v for k, v in optional.items() if v is not None})
        last_run = None
        for fact in facts:
            if isinstance(fact, RunSnapshot) and (ef is None or ef.run_id in (None, fact.run_id)):
                last_run = fact
        if last_run is not None:
            attrs["openai.run.id"] = last_run.run_id
            if last_run.status:
                attrs["openai.run.status"] = last_run.status
            if last_run.model and "gen_ai.request.model" not in attrs:
                attrs["gen_ai.request.model"] = last_run.model
            if last_run.prompt_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = last_run.prompt_tokens
            if last_run.completion_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = last_run.completion_tokens
        last_response = next((f for f in reversed(facts) if isinstance(f, ResponseSnapshot)), None)
        if last_response is not None:
            if last_response.status:
                attrs["openai.response.status"] = last_response.status
            attrs.update(_usage_attributes(last_response))
        if error_type:
            attrs["error.type"] = error_type

        kind = SpanKind.SERVER if exchange.origin == "client" else SpanKind.CLIENT
        start = _ns(exchange.started_at)
        end = _ns(exchange.started_at + exchange.duration_s)
        sent = TraceParent.parse(exchange.traceparent)
        context = None
        if sent is not None:
            # the forwarder keeps the client's own traceparent aside; headers carry the one sent
            client = TraceParent.parse(exchange.extra.get("client_traceparent") or exchange.header("traceparent"))
            if client is not None and client.trace_id == sent.trace_id and client.span_id != sent.span_id:
                parent = SpanContext(client.trace_id, client.span_id, is_remote=True, trace_flags=TraceFlags(client.flags))
                context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
            with self._ids.forced(sent.trace_id, sent.span_id):
                span = self._tracer.start_span(name, context=context, kind=kind, attributes=attrs, start_time=start)
        else:
            span = self._tracer.start_span(name, kind=kind, attributes=attrs, start_time=start)
        if exchange.error_type or (exchange.status or 0) >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
        return span.get_span_context()

    # -- run state ----------------------------------------------------------------------------

    def _run_snapshot(self, run: RunSnapshot, provider: str) -> None:
        state = self._runs.setdefault(run.run_id, _RunState)
        if state.emitted:
            return
        state.provider = provider or state.provider
        if run.source == "retrieve":
            state.polls += 1
        if run.streamed or run.source == "stream":
            state.streamed = True
        if run.instructions is not None:
            state.instructions = run.instructions
        if state.last is None or state.last.status not in TERMINAL_RUN_STATUSES:
            state.last = run
        if run.status in TERMINAL_RUN_STATUSES and state.terminal_at is None:
            state.terminal_at = self._clock()
            self._pending[run.run_id] = None

    def _step(self, step: StepSnapshot) -> None:
        state = self._runs.setdefault(step.run_id or "", _RunState)
        s = state.steps.setdefault(step.step_id, _StepState())
        s.type = step.type or s.type
        s.status = step.status or s.status
        s.created_at = step.created_at or s.created_at
        s.ended_at = step.completed_at or step.failed_at or step.cancelled_at or step.expired_at or s.ended_at
        s.last_error_code = step.last_error_code or s.last_error_code
        if step.prompt_tokens is not None:
            s.prompt_tokens = step.prompt_tokens
        if step.completion_tokens is not None:
            s.completion_tokens = step.completion_tokens

    def _tool_state(self, run_id: str, call_id: str, seen: datetime) -> _ToolState:
        state = self._runs.setdefault(run_id, _RunState)
        tool = state.tools.setdefault(call_id, _ToolState(first_seen=seen))
        tool.last_seen = seen
        return tool

    def _tool_call(self, call: ToolCallFact) -> None:
        # required_action and tool outputs name no step; the step listing it (if seen) does.
        tool = self._tool_state(call.run_id or "", call.tool_call_id, call.observed_at)
        tool.step_id = call.step_id or tool.step_id
        tool.type = call.type or tool.type
        tool.name = call.function_name or tool.name
        tool.arguments = call.arguments if call.arguments is not None else tool.arguments
        tool.output = call.output if call.output is not None else tool.output
        tool.code_input = call.code_input if call.code_input is not None else tool.code_input
        if call.result_count is not None:
            tool.result_count = call.result_count

    def _file_search_result(self, result: FileSearchResultFact) -> None:
        tool = self._tool_state(result.run_id or "", result.tool_call_id, result.observed_at)
        tool.type = tool.type or "file_search"
        tool.step_id = result.step_id or tool.step_id
        tool.results_seen += 1
        if result.score is not None and (tool.top_score is None or result.score > tool.top_score):
            tool.top_score = result.score

    # -- run traces ---------------------------------------------------------------------------

    def _emit_due(self) -> None:
        now = self._clock()
        for run_id in list(self._pending):
            state = self._runs.get(run_id)
            if state is None or state.emitted:
                self._pending.pop(run_id, None)  # evicted from the LRU, or emitted already
            elif state.terminal_at is None or now - state.terminal_at >= self.step_wait_s:
                self._emit_run(run_id, state)
            else:
                break  # pending is in terminal order: the rest are younger

    def _emit_run(self, run_id: str, state: _RunState) -> None:
        state.emitted = True
        self._pending.pop(run_id, None)
        run = state.last
        if run is None:
            return
        agent_name = self._assistant_names.get(run.assistant_id) if run.assistant_id else None
        ended = run_ended_at(run)
        start = _ns(run.created_at or run.observed_at)
        end = max(_ns(ended) or start, start)
        attrs: dict[str, object] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": state.provider,
            "openai.run.id": run_id,
            "openai.run.status": run.status or "",
            "openai.run.polls": state.polls,
            "openai.run.streamed": state.streamed,
        }
        optional = {
            "gen_ai.agent.id": run.assistant_id,
            "gen_ai.agent.name": agent_name,
            "gen_ai.conversation.id": run.thread_id,
            "gen_ai.request.model": run.model,
            "gen_ai.usage.input_tokens": run.prompt_tokens,
            "gen_ai.usage.output_tokens": run.completion_tokens,
            "openai.api_version": run.api_version,
            "openai.run.incomplete_reason": run.incomplete_reason,
            "openai.run.last_error.code": run.last_error_code,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if run.created_at and run.started_at:
            attrs["openai.run.queue_seconds"] = max(0.0, (run.started_at - run.created_at).total_seconds())
        if state.unlinked:
            attrs["openai.run.unlinked_exchanges"] = state.unlinked
        if run.status == "failed":
            attrs["error.type"] = run.last_error_code or "failed"
        if self.capture_content and state.instructions is not None:
            attrs["gen_ai.system_instructions"] = state.instructions
        links = [Link(ctx, {"openai.operation": op}) for ctx, op in state.links]
        span = self._tracer.start_span(
            f"invoke_agent {agent_name or run.assistant_id or 'assistant'}",
            context=trace.set_span_in_context(trace.INVALID_SPAN),
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=links,
            start_time=start,
        )
        if run.status == "failed":
            message = run.last_error_message if self.capture_content else None
            span.set_status(Status(StatusCode.ERROR, message))
        parent = trace.set_span_in_context(span)
        steps = sorted(state.steps.items(), key=lambda kv: (_ns(kv[1].created_at) or 0, kv[0]))
        for step_id, step in steps:
            tools = {cid: t for cid, t in state.tools.items() if t.step_id == step_id}
            self._emit_step(parent, run, step_id, step, tools, start, end)
        for call_id, tool in state.tools.items():
            if tool.step_id not in state.steps:  # never listed in a step: time it as the client saw it
                t_start = max(_ns(tool.first_seen) or start, start)
                self._emit_tool(parent, call_id, tool, {}, t_start, max(_ns(tool.last_seen) or t_start, t_start), False)
        span.end(end_time=end)
        state.steps.clear()  # the trace is out; keep only the emitted flag
        state.tools.clear()
        state.links.clear()

    def _emit_step(
        self, parent, run: RunSnapshot, step_id: str, step: _StepState, tools: dict[str, _ToolState], run_start: int, run_end: int
    ) -> None:
        start = max(_ns(step.created_at) or run_start, run_start)
        end = max(_ns(step.ended_at) or run_end, start)
        common: dict[str, object] = {"openai.step.id": step_id}
        if step.status:
            common["openai.step.status"] = step.status
        failed = step.status == "failed"
        if failed:
            common["error.type"] = step.last_error_code or "failed"
        if step.type == "message_creation" or (step.type is None and not tools):
            attrs = {**common, "gen_ai.operation.name": "chat"}
            if run.model:
                attrs["gen_ai.request.model"] = run.model
            if step.prompt_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = step.prompt_tokens
            if step.completion_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = step.completion_tokens
            self._child(parent, f"chat {run.model or ''}".strip(), attrs, start, end, failed)
            return
        for call_id, tool in tools.items():
            self._emit_tool(parent, call_id, tool, common, start, end, failed)

    def _emit_tool(
        self, parent, call_id: str, tool: _ToolState, common: dict[str, object], start: int, end: int, failed: bool
    ) -> None:
        attrs = {**common, "gen_ai.tool.call.id": call_id}
        if tool.type == "file_search":
            attrs["gen_ai.operation.name"] = "retrieval"
            attrs["gen_ai.data_source.id"] = "file_search"
            count = tool.result_count if tool.result_count is not None else tool.results_seen
            attrs["openai.file_search.result_count"] = count
            if tool.top_score is not None:
                attrs["openai.file_search.top_score"] = tool.top_score
            self._child(parent, "retrieval", attrs, start, end, failed)
            return
        tool_name = tool.name or tool.type or "tool"
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = tool_name
        attrs["gen_ai.tool.type"] = "function" if tool.type == "function" else "extension"
        if self.capture_content:
            if tool.arguments is not None:
                attrs["gen_ai.tool.call.arguments"] = tool.arguments
            if tool.code_input is not None:
                attrs["gen_ai.tool.call.arguments"] = tool.code_input
            if tool.output is not None:
                attrs["gen_ai.tool.call.result"] = tool.output
        self._child(parent, f"execute_tool {tool_name}", attrs, start, end, failed)

    def _child(self, parent, name: str, attrs: dict[str, object], start: int, end: int, failed: bool) -> None:
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.INTERNAL, attributes=attrs, start_time=start)
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)

    # -- responses ----------------------------------------------------------------------------

    def _responses_seen(self, exchange: Exchange, ef: ExchangeFact | None, facts: Sequence[Fact],
                        span_context: SpanContext | None, operation: str) -> None:
        """Fold this exchange's Responses facts into each response's state; emit the responses
        this exchange saw end (a plain or streamed create ends with its exchange)."""
        touched: dict[str, None] = {}
        for fact in facts:
            if isinstance(fact, ResponseSnapshot):
                state = self._responses.setdefault(fact.response_id, _ResponseState)
                if not state.emitted and not fact.deleted:
                    state.last = fact
                    touched[fact.response_id] = None
            elif isinstance(fact, ResponseToolCallFact) and fact.response_id and fact.source != "function_call_output":
                state = self._responses.setdefault(fact.response_id, _ResponseState)
                if not state.emitted and (fact.call_id in state.tools or len(state.tools) < MAX_RESPONSE_TOOLS):
                    state.tools[fact.call_id] = fact
                    touched[fact.response_id] = None
        if not touched:
            return
        start, end = _ns(exchange.started_at), _ns(exchange.started_at + exchange.duration_s)
        creating = ef is not None and ef.operation == "responses.create"
        for response_id in touched:
            state = self._responses.get(response_id)
            if state is None or state.emitted or state.last is None:
                continue
            if state.parent is None:
                state.parent, state.start = span_context, start
                state.provider = (ef.provider if ef else None) or state.provider
                state.request_model = ef.model if creating and ef is not None else None
                state.server = _server(exchange.upstream)
                if creating:
                    state.create_end = end
                    first = exchange.extra.get("first_event_s") if ef is not None and ef.stream else None
                    state.first_chunk_s = float(first) if first is not None else None
            elif span_context is not None and span_context.is_valid:
                if len(state.links) < MAX_LINKS:
                    state.links.append((span_context, operation))
                else:
                    state.unlinked += 1
            if ef is not None and ef.operation == "responses.retrieve":
                state.polls += 1
            last = state.last
            if last.status in TERMINAL_RESPONSE_STATUSES:
                self._emit_response(response_id, state, end)
            elif state.create_end is not None and not last.background:
                # a plain or streamed create that ended without its end (a cut stream): it is over
                self._emit_response(response_id, state, end, cut=exchange.error_type or "incomplete_stream")

    def _emit_response(self, response_id: str, state: _ResponseState, seen_end: int, cut: str | None = None) -> None:
        """`seen_end`: the end of the exchange that saw the response end."""
        state.emitted = True
        r = state.last
        assert r is not None
        start = state.start or _ns(r.created_at or r.observed_at) or 0
        if state.create_end is not None and not r.background:
            end = state.create_end
        else:  # background: it ended when the API says, or by the poll that saw it ended
            end = _ns(r.completed_at) or seen_end or start
        end = max(end, start)
        model = state.request_model or r.model
        attrs: dict[str, object] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": state.provider,
            "openai.api.type": "responses",
            "gen_ai.response.id": response_id,
            **state.server,
        }
        finish = _finish_reason(r)
        optional = {
            "gen_ai.request.model": model,
            "gen_ai.response.model": r.model,
            "gen_ai.conversation.id": r.conversation_id,
            "gen_ai.response.finish_reasons": [finish] if finish else None,
            "gen_ai.response.time_to_first_chunk": state.first_chunk_s,
            "openai.response.status": r.status,
            "openai.response.background": r.background,
            "openai.response.previous_response_id": r.previous_response_id,
            "openai.response.incomplete_reason": r.incomplete_reason,
            "openai.response.error.code": r.error_code,
            "openai.response.usage_invalid": r.usage_invalid,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if r.streamed:
            attrs["gen_ai.request.stream"] = True
        if state.polls:
            attrs["openai.response.polls"] = state.polls
        if state.unlinked:
            attrs["openai.response.unlinked_exchanges"] = state.unlinked
        attrs.update(_usage_attributes(r))
        error = response_stop_reason(r) if r.status == "failed" else cut
        if error:
            attrs["error.type"] = error
        if self.capture_content and r.instructions is not None:
            attrs["gen_ai.system_instructions"] = r.instructions
        parent = trace.set_span_in_context(trace.NonRecordingSpan(state.parent)) if state.parent else None
        span = self._tracer.start_span(
            f"chat {model}" if model else "chat", context=parent, kind=SpanKind.CLIENT, attributes=attrs,
            links=[Link(ctx, {"openai.operation": op}) for ctx, op in state.links], start_time=start,
        )
        if error:
            message = r.error_message if self.capture_content and r.status == "failed" else None
            span.set_status(Status(StatusCode.ERROR, message))
        inside = trace.set_span_in_context(span)
        for call in state.tools.values():
            self._emit_response_tool(inside, call, start, end)
        span.end(end_time=end)
        state.tools.clear()
        state.links.clear()

    def _emit_response_tool(self, parent, call: ResponseToolCallFact, start: int, end: int) -> None:
        name = call.name or call.type
        attrs: dict[str, object] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": _TOOL_KINDS.get(call.type, "extension"),
            "gen_ai.tool.call.id": call.call_id,
            "openai.tool.type": call.type,
        }
        optional = {
            "openai.tool.item_type": call.item_type,
            "openai.tool.item_id": call.item_id,
            "openai.tool.status": call.status,
            "openai.mcp.server_label": call.server_label,
            "openai.file_search.vector_store_ids": list(call.vector_store_ids) or None,
            "openai.file_search.result_count": call.results_count if call.type == "file_search" else None,
            "openai.file_search.query_count": call.queries_count,
            "openai.web_search.source_count": call.results_count if call.type == "web_search" else None,
            "openai.code_interpreter.container_id": call.container_id,
            "openai.tool.error.type": call.error_type,
            "openai.tool.error.code": call.error_code,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        # error_type, not the error's text: that is content, absent without --capture-content
        failed = call.status in ("failed", "incomplete") or call.error_type is not None
        if failed:
            attrs["error.type"] = call.status if call.status in ("failed", "incomplete") else "tool_error"
        if self.capture_content:
            arguments = call.arguments if call.arguments is not None else (
                "\n".join(call.queries) if call.queries else None)
            if arguments is not None:
                attrs["gen_ai.tool.call.arguments"] = arguments
            if call.output is not None:
                attrs["gen_ai.tool.call.result"] = call.output
        self._child(parent, f"execute_tool {name}", attrs, start, end, failed)


def _usage_attributes(response: ResponseSnapshot) -> dict[str, object]:
    """The conventions' usage attributes of a response (refused usage has none)."""
    usage = {
        "gen_ai.usage.input_tokens": response.input_tokens,
        "gen_ai.usage.output_tokens": response.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": response.cached_input_tokens,
        "gen_ai.usage.reasoning.output_tokens": response.reasoning_tokens,
    }
    return {k: v for k, v in usage.items() if v is not None}


def _server(upstream: str | None) -> dict[str, object]:
    """server.address / server.port of the API server behind the proxy."""
    if not upstream:
        return {}
    parts = urlsplit(upstream)
    out: dict[str, object] = {"server.port": parts.port or (443 if parts.scheme == "https" else 80)}
    if parts.hostname:
        out["server.address"] = parts.hostname
    return out
