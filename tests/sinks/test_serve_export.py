"""`assistants-audit serve` configured only through OTEL_* variables exports its spans over
OTLP/HTTP to a receiver on loopback, and serves the metrics of the same traffic on /metrics."""

from __future__ import annotations

import time

import openai
import pytest

from tests.sinks.serving import scrape, serve, stop

CLIENT_TP = "00-5af7651916cd43dd8448eb211c80319c-a7ad6b7169203331-01"


@pytest.mark.slow
def test_serve_exports_spans_from_otel_env(emulator, otlp_receiver, tmp_path):
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
        "OTEL_SERVICE_NAME": "audit-serve-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with serve(emulator.url, str(tmp_path / "store"), env=env) as served:
        client = openai.OpenAI(api_key="sk-test", base_url=f"{served.url}/v1", max_retries=0,
                               default_headers={"traceparent": CLIENT_TP})
        assistant = client.beta.assistants.create(model="gpt-4o", name="Exported")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       poll_interval_ms=1)
        assert run.status == "completed"
        deadline = time.monotonic() + 20
        while True:
            runs = scrape(f"{served.admin_url}/metrics").get(
                ("assistants_audit_runs_total", (("last_error_code", ""), ("model", "gpt-4o"), ("status", "completed"))))
            if runs or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert runs == 1
        stop(served.proc)  # shutdown flushes the run trace and the batch exporter
        assert served.proc.returncode == 0
    spans = otlp_receiver.wait_for(1)
    deadline = time.monotonic() + 10
    while not any(s.name.startswith("invoke_agent") for s in spans) and time.monotonic() < deadline:
        time.sleep(0.1)
        spans = list(otlp_receiver.spans)
    assert {s.service_name for s in spans} == {"audit-serve-test"}
    server = [s for s in spans if s.kind == 2 and s.name != "GET /assistants"]  # not serve()'s start-up probe
    assert server and all(s.trace_id == CLIENT_TP[3:35] and s.parent_span_id == CLIENT_TP[36:52] for s in server)
    create = next(s for s in server if s.attributes.get("openai.operation") == "runs.create")
    assert create.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert create.attributes["gen_ai.agent.id"] == assistant.id
    root = next(s for s in spans if s.name == "invoke_agent Exported")
    assert root.attributes["openai.run.id"] == run.id
    assert root.start_ns == run.created_at * 10**9 and root.end_ns == run.completed_at * 10**9
    assert (create.trace_id, create.span_id) in {(t, sp) for t, sp, _ in root.links}
