"""One Responses API workload through the unmodified openai SDK, for the tests that check what it
leaves behind (spans, metrics, dashboards): every kind of response a client makes (plain, chained,
streamed, background polled and cancelled, failed, incomplete, reasoning, in a conversation) and
every built-in tool the emulator serves, with a function call answered by its output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.emulator.responses_support import upload_store
from tests.responses.test_responses_e2e import WEATHER, poll


@dataclass
class ResponsesWorkload:
    plain: Any
    chained: Any
    streamed: Any  # the final response of the stream
    polled: Any  # a background response, retrieved until it finished
    retrieves: int  # the polls it took
    failed: Any
    incomplete: Any
    reasoning: Any  # o4-mini: reasoning tokens
    conversation: Any
    in_conversation: Any
    asked: Any  # a function call
    answered: Any  # its output sent back
    vector_store_id: str
    searched: Any  # file_search
    web: Any  # web_search
    code: Any  # code_interpreter
    cancelled: Any  # a background response cancelled

    def finished(self) -> list[Any]:
        """Every response of the workload, as the client last saw it."""
        return [self.plain, self.chained, self.streamed, self.polled, self.failed, self.incomplete, self.reasoning,
                self.in_conversation, self.asked, self.answered, self.searched, self.web, self.code, self.cancelled]


def run_responses_workload(client) -> ResponsesWorkload:
    plain = client.responses.create(model="gpt-4o", input="Hello, what can you do?", instructions="Be brief.")
    chained = client.responses.create(model="gpt-4o", input="And again?", previous_response_id=plain.id)
    with client.responses.create(model="gpt-4o", input="Stream it please", stream=True) as stream:
        streamed = list(stream)[-1].response
    background = client.responses.create(model="gpt-4o", input="Take your time", background=True)
    polled, retrieves = poll(client, background.id)
    failed = client.responses.create(model="gpt-4o", input="Please answer [fail:server_error]")
    incomplete = client.responses.create(model="gpt-4o", input="Please [incomplete:max_output_tokens] go on")
    reasoning = client.responses.create(model="o4-mini", input="Think about capybaras")
    conversation = client.conversations.create()
    in_conversation = client.responses.create(model="gpt-4o", input="Hi there", conversation=conversation.id)
    asked = client.responses.create(model="gpt-4o", input="What is the weather like in Paris?", tools=[WEATHER])
    (call,) = asked.output
    answered = client.responses.create(model="gpt-4o", previous_response_id=asked.id, tools=[WEATHER],
                                       input=[{"type": "function_call_output", "call_id": call.call_id,
                                               "output": "12 degrees and raining"}])
    vs_id = upload_store(client)
    searched = client.responses.create(model="gpt-4o", input="Where do capybaras live?",
                                       tools=[{"type": "file_search", "vector_store_ids": [vs_id]}],
                                       include=["file_search_call.results"])
    web = client.responses.create(model="gpt-4o", input="Latest capybara news", tools=[{"type": "web_search"}])
    code = client.responses.create(model="gpt-4o", input="Sum the numbers below ten",
                                   tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
    slow = client.responses.create(model="gpt-4o", input="[slow] a long essay", background=True)
    cancelled = client.responses.cancel(slow.id)
    return ResponsesWorkload(plain, chained, streamed, polled, retrieves, failed, incomplete, reasoning, conversation,
                             in_conversation, asked, answered, vs_id, searched, web, code, cancelled)
