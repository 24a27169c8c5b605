"""End to end: the official SDK through the proxy (real recording pipeline) to the emulator, then
the cost views and the report. Expected figures are computed from what the client itself saw
(the usage on each finished run) times the known prices."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import openai
import pytest

from analytics.prices import Prices, install_report_prices, price_paths
from analytics.report import build_report
from analytics.store import connect, open_store
from proxy.app import make_app
from proxy.config import Settings
from proxy.pipeline import build_recorder
from tests.servers import ServerThread

PRICES = {"gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60)}
PROMPT = "Please summarise the quarterly figures. " * 1000  # ~10k prompt tokens per run


@pytest.fixture
def recorded(emulator, tmp_path):
    store = tmp_path / "store"
    settings = Settings(upstream=emulator.url, store=str(store), admin_listen=None, fingerprint_secret="s",
                        enrich=False).validate()
    recorder = build_recorder(settings)
    recorder.start()
    server = ServerThread(lambda: make_app(settings, recorder)).start()
    client = openai.OpenAI(api_key="sk-e2e-secret", base_url=server.url + "/v1", max_retries=0)
    expected = {"tokens": 0.0, "sessions": 0, "by_model": {}}
    try:
        coder = client.beta.assistants.create(model="gpt-4o", name="coder", tools=[{"type": "code_interpreter"}])
        chat = client.beta.assistants.create(model="gpt-4o-mini", name="chat")
        for assistant in (coder, coder, chat):
            run = client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": PROMPT}]},
                poll_interval_ms=1)
            assert run.status == "completed" and run.usage.prompt_tokens > 1000
            inp, out = PRICES[run.model]
            usd = (run.usage.prompt_tokens * inp + run.usage.completion_tokens * out) / 1e6
            expected["tokens"] += usd
            expected["by_model"][run.model] = expected["by_model"].get(run.model, 0.0) + usd
            if assistant is coder:
                expected["sessions"] += 1  # a new thread each time: one session each
            list(client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id))
        f = client.files.create(file=("notes.txt", io.BytesIO(b"figures " * 4096)), purpose="assistants")
        vs = client.vector_stores.create(name="docs")
        client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=f.id, poll_interval_ms=1)
        expected["vs_bytes"] = client.vector_stores.retrieve(vs.id).usage_bytes
        assert expected["vs_bytes"] > 0
        client.vector_stores.delete(vs.id)
    finally:
        server.stop()
        recorder.close()
    return store, expected


def test_costs_of_a_recorded_workload_match_the_clients_usage(recorded, tmp_path):
    store, expected = recorded
    # the store's own price table (kept by the pipeline's PriceSink) prices both models ...
    stored = open_store(store)
    try:
        _cols, rows = stored.query("SELECT model, usd FROM cost_by_model ORDER BY model")
    finally:
        stored.close()
    assert {m: round(u, 9) for m, u in rows} == {m: round(u, 9) for m, u in expected["by_model"].items()}
    assert price_paths(store)["model_prices"].exists()
    # ... and so does a plain read-only DuckDB on STORE/audit.duckdb (what `duckdb -readonly` opens)
    import duckdb

    plain = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    try:
        plain_rows = plain.execute("SELECT model, usd FROM cost_by_model ORDER BY model").fetchall()
    finally:
        plain.close()
    assert plain_rows == rows

    con = connect(store)
    install_report_prices(con, Prices.load())
    report = build_report(con, None, None, 30)
    kinds = {r["kind"]: r for r in report["spend_by_kind"]}
    assert kinds["tokens"]["usd"] == pytest.approx(expected["tokens"], abs=0.005)
    assert kinds["tokens"]["usd"] == pytest.approx(expected["tokens"], abs=1e-6)  # JSON keeps 6 decimals
    assert kinds["code_interpreter_session"]["items"] == expected["sessions"] == 2
    assert kinds["code_interpreter_session"]["usd"] == pytest.approx(0.06)
    # a few KB for a moment: far under the free GiB, so storage costs nothing
    assert kinds["vector_store_storage"]["usd"] == 0
    assert {a["name"] for a in report["top_assistants"]} == {"coder", "chat"}
    assert report["unpriced_models"] == []

    # without the free GiB, the deleted store costs its size over its observed life, no more
    override = tmp_path / "p.json"
    override.write_text(json.dumps({"free_storage_gib": 0}))
    con2 = connect(store)
    install_report_prices(con2, Prices.load(override))
    (gib_days, usd, full_life), = con2.execute("""
        SELECT sum(d.gib_days), sum(d.usd),
               (SELECT epoch(max(l.billed_until)) - epoch(min(u.observed_at) FILTER (WHERE u.usage_bytes = ?))
                FROM vector_store_lifetimes l JOIN vector_store_usage u USING (vector_store_id))
        FROM vector_store_storage_daily d""", [expected["vs_bytes"]]).fetchall()
    # 0 bytes from creation until the file was indexed, then vs_bytes until the deletion
    assert 0 < full_life < 60
    assert gib_days == pytest.approx(expected["vs_bytes"] / 2**30 * full_life / 86400, rel=1e-6)
    assert usd == pytest.approx(gib_days * 0.10)
    assert (store / "tables").is_dir() and not any(
        b"sk-e2e-secret" in p.read_bytes() for p in store.rglob("*") if p.is_file())


def test_report_command_json_and_table(recorded):
    store, expected = recorded
    cmd = [sys.executable, "-m", "proxy.cli", "report", "--store", str(store), "--format", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["total_usd"] == pytest.approx(expected["tokens"] + 0.06, abs=0.005)
    table = subprocess.run(cmd[:-1] + ["table"], capture_output=True, text=True, check=True).stdout
    assert "Spend by kind" in table and "gpt-4o-mini" in table
    md = subprocess.run(cmd[:-1] + ["markdown"], capture_output=True, text=True, check=True).stdout
    assert md.startswith("# Assistants cost audit") and "| tokens |" in md


def test_sampler_prices_orphaned_stores_and_failures_and_v1_show_up(emulator, tmp_path):
    """A store nobody touches through the proxy is still costed (the sampler saw it); a failed
    run's burnt tokens and v1 traffic from an old SDK header appear in the report."""
    import time

    from proxy.sampler import sampler_ctx

    direct = emulator.client()
    orphan = direct.vector_stores.create(name="orphan")
    f = direct.files.create(file=("big.txt", io.BytesIO(b"x" * 200_000)), purpose="assistants")
    direct.vector_stores.files.create_and_poll(vector_store_id=orphan.id, file_id=f.id, poll_interval_ms=1)
    orphan_bytes = direct.vector_stores.retrieve(orphan.id).usage_bytes
    assert orphan_bytes > 0

    store = tmp_path / "store"
    settings = Settings(upstream=emulator.url, store=str(store), admin_listen=None, fingerprint_secret="s",
                        enrich=False, sample_vector_stores=0.05, sampler_key="sk-sampler").validate()
    recorder = build_recorder(settings)
    recorder.start()

    def build():
        app = make_app(settings, recorder)
        app.cleanup_ctx.append(sampler_ctx(settings, recorder, env={}))
        return app

    server = ServerThread(build).start()
    try:
        v2 = openai.OpenAI(api_key="sk-new", base_url=server.url + "/v1", max_retries=0)
        asst = v2.beta.assistants.create(model="gpt-4o", name="flaky")
        run = v2.beta.threads.create_and_run_poll(
            assistant_id=asst.id, poll_interval_ms=1,
            thread={"messages": [{"role": "user", "content": PROMPT + " [fail:server_error]"}]})
        assert run.status == "failed" and run.last_error.code == "server_error"
        burnt = run.usage.prompt_tokens + run.usage.completion_tokens if run.usage else 0
        old = openai.OpenAI(api_key="sk-old", base_url=server.url + "/v1", max_retries=0)
        old.beta.assistants.list(extra_headers={"OpenAI-Beta": "assistants=v1"})
        time.sleep(0.5)  # several sampler sweeps
    finally:
        server.stop()
        recorder.close()

    con = connect(store)
    install_report_prices(con, Prices.load())
    sampled = con.execute("SELECT count(*), max(usage_bytes) FROM vector_store_usage "
                          "WHERE vector_store_id = ? AND source = 'sampler'", [orphan.id]).fetchone()
    assert sampled[0] >= 2 and sampled[1] == orphan_bytes
    (gib_days,) = con.execute("SELECT sum(gib_days) FROM vector_store_storage_daily WHERE vector_store_id = ?",
                              [orphan.id]).fetchone()
    assert gib_days > 0
    report = build_report(con, None, None, 30)
    assert [(r["code"], r["runs"], r["tokens"]) for r in report["failures"]] == [("server_error", 1, burnt)]
    v1 = report["v1_traffic"]
    assert len(v1) == 1 and v1[0]["beta_header"] == "assistants=v1" and v1[0]["sdk"].startswith("python")
    assert v1[0]["key_fingerprint"] not in (None, "sk-old")
    stores = {s["vector_store_id"]: s for s in report["top_vector_stores"]}
    assert stores[orphan.id]["billed"] is True
