"""Enrichment end to end: a real `assistants-audit serve` between the official SDK and the emulator.

The emulator is the real one, with a middleware in front of its handlers that notes every request
it receives, so the test sees exactly what the enricher sent upstream (its user-agent is
`assistants-audit-enricher`): once per run whose steps no client listed, with the client's own
key and `OpenAI-Beta` header, with the file_search `include[]` for v2 runs only; never for a run
whose steps the client listed itself; never with `--no-enrich`. The steps and tool calls it
fetched must be in the store's views."""

from __future__ import annotations

import io
from collections import Counter
from types import SimpleNamespace

import openai
import pytest
from aiohttp import web

from emulator.app import make_app
from proxy.sources.enrich import FILE_SEARCH_INCLUDE
from tests.plugins.emulator import FAST
from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import rows, wait_for
from tests.servers import ServerThread

KEY = "sk-enrichment-e2e-0123456789"
V1 = {"OpenAI-Beta": "assistants=v1"}
ENRICHER_AGENT = "assistants-audit-enricher"


@pytest.fixture
def upstream():
    """The emulator, noting each request it receives: (method, path, query, lower-cased headers)."""
    seen: list[SimpleNamespace] = []

    @web.middleware
    async def note(request: web.Request, handler):
        seen.append(SimpleNamespace(method=request.method, path=request.path, query=request.query.copy(),
                                    headers={k.lower(): v for k, v in request.headers.items()}))
        return await handler(request)

    def build() -> web.Application:
        app = make_app(FAST)
        app.middlewares.insert(0, note)
        return app

    server = ServerThread(build).start()
    try:
        yield SimpleNamespace(url=server.url, seen=seen)
    finally:
        server.stop()


def _enricher_requests(seen: list[SimpleNamespace]) -> list[SimpleNamespace]:
    return [r for r in list(seen) if r.headers.get("user-agent") == ENRICHER_AGENT]


def _run_of(request: SimpleNamespace) -> str:
    # /v1/threads/{thread_id}/runs/{run_id}/steps
    parts = request.path.split("/")
    assert parts[-1] == "steps" and parts[-3] == "runs", request.path
    return parts[-2]


def _origins_of_steps(store, run_id: str) -> set[str]:
    return {r[0] for r in rows(store, "SELECT DISTINCT e.origin FROM step_snapshots s JOIN exchange_log e "
                                      f"USING (exchange_id) WHERE s.run_id = '{run_id}'")}


def test_enrichment_fetches_unseen_steps_once_with_the_clients_own_version(upstream, tmp_path):
    store = tmp_path / "store"
    direct = openai.OpenAI(api_key=KEY, base_url=upstream.url + "/v1", max_retries=0)
    # a vector store whose file the question matches (made at the emulator directly: not under test)
    doc = direct.files.create(file=("figures.txt", io.BytesIO(b"quarterly revenue figures grew strongly. " * 40)),
                              purpose="assistants")
    vs = direct.vector_stores.create(name="kb")
    direct.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=doc.id, poll_interval_ms=1)

    proxy = ServeProcess(upstream.url, store)
    try:
        client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=20)
        question = {"role": "user", "content": "What about the quarterly revenue figures?"}
        # v2, code_interpreter + file_search, the client never lists the steps: enriched
        a2 = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}, {"type": "file_search"}],
                                           tool_resources={"file_search": {"vector_store_ids": [vs.id]}})
        t2 = client.beta.threads.create(messages=[question])
        r2 = client.beta.threads.runs.create_and_poll(thread_id=t2.id, assistant_id=a2.id, poll_interval_ms=1)
        # v2, the client lists the steps itself as soon as the run is done: not enriched
        t3 = client.beta.threads.create(messages=[question])
        r3 = client.beta.threads.runs.create_and_poll(thread_id=t3.id, assistant_id=a2.id, poll_interval_ms=1)
        listed = list(client.beta.threads.runs.steps.list(run_id=r3.id, thread_id=t3.id))
        # v1 (an old client's header), retrieval over a file: enriched without the v2-only include
        a1 = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "retrieval"}],  # type: ignore[list-item]
                                           extra_body={"file_ids": [doc.id]}, extra_headers=V1)
        t1 = client.beta.threads.create(messages=[question], extra_headers=V1)
        r1 = client.beta.threads.runs.create_and_poll(thread_id=t1.id, assistant_id=a1.id, poll_interval_ms=1,
                                                      extra_headers=V1)
        assert (r1.status, r2.status, r3.status) == ("completed",) * 3 and listed

        assert wait_for(lambda: {r1.id, r2.id} <= {_run_of(r) for r in _enricher_requests(upstream.seen)}, 60)
        # the finished runs seen again (a late poll) are not fetched again ...
        client.beta.threads.runs.retrieve(r2.id, thread_id=t2.id)
        client.beta.threads.runs.retrieve(r1.id, thread_id=t1.id, extra_headers=V1)
        # ... which shows once a run finished after those polls has been fetched: a second fetch
        # of r1 or r2 would have been scheduled before it, with the same delay
        t4 = client.beta.threads.create(messages=[question])
        r4 = client.beta.threads.runs.create_and_poll(thread_id=t4.id, assistant_id=a2.id, poll_interval_ms=1)
        assert wait_for(lambda: r4.id in {_run_of(r) for r in _enricher_requests(upstream.seen)}, 60)
    finally:
        assert proxy.stop() == 0, proxy.output()

    fetched = _enricher_requests(upstream.seen)
    assert Counter(_run_of(r) for r in fetched) == {r2.id: 1, r1.id: 1, r4.id: 1}  # once each; r3 never
    by_run = {_run_of(r): r for r in fetched}
    v2, v1 = by_run[r2.id], by_run[r1.id]
    for request, beta in ((v2, "assistants=v2"), (v1, "assistants=v1")):
        assert request.method == "GET"
        assert request.headers["openai-beta"] == beta  # the client's own header, not a default
        assert request.headers["authorization"] == f"Bearer {KEY}"  # the client's own key
    assert v2.query.getall("include[]") == [FILE_SEARCH_INCLUDE]
    assert "include[]" not in v1.query and "include" not in v1.query

    # recorded as enrichment exchanges, one per enriched run
    enrichment = rows(store, "SELECT run_id, beta_header, api_version, status_code, operation FROM exchanges "
                             "WHERE origin = 'enrichment'")
    assert sorted(enrichment) == sorted([(r1.id, "assistants=v1", "v1", 200, "runs.steps.list"),
                                         (r2.id, "assistants=v2", "v2", 200, "runs.steps.list"),
                                         (r4.id, "assistants=v2", "v2", 200, "runs.steps.list")])

    # what it fetched is in run_steps / tool_calls / file_search_results, exactly the run's steps
    for run, thread, header in ((r2, t2, None), (r1, t1, V1)):
        steps = list(direct.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, extra_headers=header))
        calls = {(c.id, c.type) for s in steps if s.step_details.type == "tool_calls" for c in s.step_details.tool_calls}
        assert calls, steps
        assert set(rows(store, f"SELECT step_id, type, status FROM run_steps WHERE run_id = '{run.id}'")) == {
            (s.id, s.type, s.status) for s in steps}
        assert set(rows(store, f"SELECT tool_call_id, type FROM tool_calls WHERE run_id = '{run.id}'")) == calls
        assert _origins_of_steps(store, run.id) == {"enrichment"}
    assert {t for _, t in rows(store, f"SELECT tool_call_id, type FROM tool_calls WHERE run_id = '{r2.id}'")} == {
        "code_interpreter", "file_search"}
    assert [t for (t,) in rows(store, f"SELECT type FROM tool_calls WHERE run_id = '{r1.id}'")] == ["retrieval"]
    # the v2 include brought the chunk text (its length is kept; the text itself needs --capture-content)
    results = rows(store, f"SELECT file_id, content_chars, content FROM file_search_results WHERE run_id = '{r2.id}'")
    assert results and all(f == doc.id and n and n > 0 and c is None for f, n, c in results)

    # the run whose steps the client listed: only the client's rows
    assert _origins_of_steps(store, r3.id) == {"client"}
    assert {r[0] for r in rows(store, f"SELECT step_id FROM run_steps WHERE run_id = '{r3.id}'")} == {
        s.id for s in listed}


def test_no_enrich_fetches_nothing(upstream, tmp_path):
    store = tmp_path / "store"
    proxy = ServeProcess(upstream.url, store, "--no-enrich")
    try:
        client = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=20)
        coder = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        run = client.beta.threads.create_and_run_poll(
            assistant_id=coder.id, thread={"messages": [{"role": "user", "content": "Add up 0..9"}]},
            poll_interval_ms=1)
        assert run.status == "completed" and run.tools[0].type == "code_interpreter"
        assert wait_for(lambda: rows(store, f"SELECT status FROM runs WHERE run_id = '{run.id}'") == [("completed",)])
        # The same run through an enriching proxy, started after: its fetch comes after the one
        # this proxy would have made (same delay, later start), so it marks "long enough".
        control = ServeProcess(upstream.url, tmp_path / "control")
        try:
            sdk = openai.OpenAI(api_key=KEY, base_url=control.url + "/v1", max_retries=0, timeout=20)
            later = sdk.beta.threads.create_and_run_poll(
                assistant_id=coder.id, thread={"messages": [{"role": "user", "content": "Add up 0..9"}]},
                poll_interval_ms=1)
            assert wait_for(lambda: [_run_of(r) for r in _enricher_requests(upstream.seen)] == [later.id], 60)
        finally:
            assert control.stop() == 0, control.output()
    finally:
        assert proxy.stop() == 0, proxy.output()
    assert [_run_of(r) for r in _enricher_requests(upstream.seen)] == [later.id]  # only the control's
    assert rows(store, "SELECT count(*) FROM exchange_log WHERE origin = 'enrichment'") == [(0,)]
    assert rows(store, f"SELECT count(*) FROM run_steps WHERE run_id = '{run.id}'") == [(0,)]
    assert rows(store, "SELECT count(*) FROM exchanges WHERE origin = 'client'")[0][0] >= 4
