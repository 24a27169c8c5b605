"""End to end: the official SDK through the proxy (real recording pipeline) to the emulator, then
the cost views and the report. Expected figures are computed from what the client itself saw
(the usage on each finished run) times the known prices."""

from __future__ import annotations

import glob
import io
import json
import subprocess
import sys
from datetime import UTC, datetime

import openai
import pytest

from analytics.prices import Prices, install_report_prices, price_paths
from analytics.report import build_report
from analytics.store import connect, open_store
from emulator.app import EmulatorSettings
from emulator.app import make_app as make_emulator_app
from proxy.serving.app import make_app
from proxy.config import Settings
from proxy.recording.local import build_recorder
from tests.serving.test_serve import ServeProcess
from tests.recording.store_helpers import wait_for
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


def test_costs_of_a_recorded_workload_match_the_clients_usage(recorded):
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
    from proxy.sources.sampler import SAMPLER, sampler_ctx

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
        assert wait_for(lambda: server.app[SAMPLER].sweeps >= 3)  # several sampler sweeps
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


# --- storage past the free GiB, over a pinned day --------------------------------------------

GIB = 1 << 30
# The proxy and the emulator both live on 2025-03-10 from 12:00 UTC: the emulator on its step
# clock (one second per request), the proxy under libfaketime (its wall clock starts there, its
# monotonic clock is the real one). Far enough in the past that the store's one-day expiry is over.
PINNED = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
FAKETIME_LIBRARIES = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                      "/usr/local/lib/faketime/libfaketime.so.1")


@pytest.fixture
def pinned_store(tmp_path, monkeypatch):
    """A 3 GiB vector store (X-Emulator-File-Bytes), created through a real `serve` at PINNED with
    `expires_after` one day after its last activity, then left alone: it is billed from the
    moment the client saw it hold 3 GiB until it expired, one day after its creation."""
    found = [path for pattern in FAKETIME_LIBRARIES for path in sorted(glob.glob(pattern))]
    if not found:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime)")
    emulator = ServerThread(lambda: make_emulator_app(
        EmulatorSettings(seed=0, poll_after_ms=1, start_time=PINNED.timestamp()))).start()
    store = tmp_path / "store"
    try:
        with monkeypatch.context() as env:  # only for the proxy's Popen
            env.setenv("LD_PRELOAD", found[0])
            env.setenv("FAKETIME", PINNED.strftime("@%Y-%m-%d %H:%M:%S"))
            env.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            env.setenv("TZ", "UTC")
            proxy = ServeProcess(emulator.url, store, "--no-enrich")
        try:
            client = openai.OpenAI(api_key="sk-pinned", base_url=proxy.url + "/v1", max_retries=0, timeout=20)
            f = client.files.create(file=("handbook.txt", io.BytesIO(b"travel policy " * 64)), purpose="assistants",
                                    extra_headers={"X-Emulator-File-Bytes": str(3 * GIB)})
            assert f.bytes == 3 * GIB
            vs = client.vector_stores.create(name="handbook", expires_after={"anchor": "last_active_at", "days": 1})
            client.vector_stores.files.create_and_poll(vector_store_id=vs.id, file_id=f.id, poll_interval_ms=1)
            seen = client.vector_stores.retrieve(vs.id)
        finally:
            assert proxy.stop() == 0, proxy.output()
    finally:
        emulator.stop()
    assert seen.usage_bytes == 3 * GIB
    assert 0 < vs.created_at - PINNED.timestamp() < 60 and seen.expires_at == vs.created_at + 86400
    return store, vs.id


def test_storage_past_the_free_gib_over_a_pinned_day(pinned_store, tmp_path):
    store, vs_id = pinned_store
    # Stated in advance: 3 GiB for one day from 12:00 on 2025-03-10, 1 GiB free, $0.10 per GiB-day:
    # 2 billable GiB-days = $0.20, half on each UTC day. Without the free GiB: 3 GiB-days = $0.30.
    # (The proxy saw the store a few seconds after PINNED: at most $0.0002 less.)
    con = connect(store)
    install_report_prices(con, Prices.load())
    (first_seen,) = con.execute("SELECT epoch(min(observed_at)) FROM vector_store_usage").fetchone()
    assert 0 < first_seen - PINNED.timestamp() < 60  # the proxy's clock was pinned too
    daily = con.execute("""
        SELECT CAST(day AS VARCHAR), vector_store_id, gib_days, billable_gib_days, usd
        FROM vector_store_storage_daily ORDER BY day""").fetchall()
    assert [(d, v) for d, v, *_ in daily] == [("2025-03-10", vs_id), ("2025-03-11", vs_id)]
    for _day, _vs, gib_days, billable, usd in daily:
        assert gib_days == pytest.approx(1.5, abs=0.002)
        assert billable == pytest.approx(1.0, abs=0.002)
        assert usd == pytest.approx(0.10, abs=0.0005)
    (items, quantity, usd) = con.execute(
        "SELECT count(*), sum(quantity), sum(usd) FROM costs WHERE kind = 'vector_store_storage'").fetchone()
    assert (items, round(quantity, 2), round(usd, 2)) == (2, 2.0, 0.20)
    assert con.execute("SELECT CAST(day AS VARCHAR), round(usd, 2) FROM cost_by_day "
                       "WHERE kind = 'vector_store_storage' ORDER BY day").fetchall() == [
        ("2025-03-10", 0.10), ("2025-03-11", 0.10)]

    def report(*args: str) -> dict:
        cmd = [sys.executable, "-m", "proxy.cli", "report", "--store", str(store), "--format", "json", *args]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)

    data = report()
    kinds = {r["kind"]: r for r in data["spend_by_kind"]}
    assert round(kinds["vector_store_storage"]["usd"], 2) == 0.20
    assert round(data["total_usd"], 2) == 0.20  # nothing else was billed
    (top,) = data["top_vector_stores"]
    assert top["vector_store_id"] == vs_id and round(top["billable_gib_days"], 2) == 2.0
    assert top["billed"] is False and top["projected_30d_usd"] == 0  # expired: no future cost
    assert round(report("--since", "2025-03-11")["total_usd"], 2) == 0.10  # the second UTC day only
    no_free = tmp_path / "no-free-gib.json"
    no_free.write_text(json.dumps({"free_storage_gib": 0}))
    assert round(report("--prices", str(no_free))["total_usd"], 2) == 0.30
