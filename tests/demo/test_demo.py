"""`assistants-audit demo` end to end, as a user runs it: a fresh store, no API key, a report;
its mixed workload (Assistants v1, v2, Responses) recorded as the client saw it; its proxy served
with the connection guards; and `--traffic-only` against a running proxy."""

import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields

import duckdb
import pytest
from rich.console import Console

from analytics.store import connect
from proxy.config import Settings
from proxy.demo.run import DemoServers, fresh_store, print_results, run_demo
from proxy.demo.workload import SeenResponse
from proxy.recording.local import build_recorder

# The Assistants API itself is deprecated in the openai SDK; that is what this proxy is for.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAY = 86400


def demo_command(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"}
    if "PYTHONPATH" in os.environ:  # a worktree's code, not the editable install's
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([sys.executable, "-m", "proxy.cli", "demo", *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_demo_prints_a_report_and_fills_the_store(tmp_path):
    store = tmp_path / "store"
    proc = demo_command(tmp_path, "--store", str(store), "--rounds", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "runs (" in out and "streamed" in out
    assert "Top models" in out and "gpt-4o" in out
    assert "Explore the store" in out
    assert "Responses API:" in out and "Response tool calls by type" in out
    assert "Migration:" in out and "Assistants still called" in out  # report --migration
    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    statuses = dict(con.execute("select status, count(*) from runs group by 1").fetchall())
    # two rounds: failed/incomplete/cancelled runs exist beside completed ones
    assert statuses.get("completed", 0) >= 6
    assert statuses.get("cancelled", 0) == 2
    assert statuses.get("failed", 0) + statuses.get("incomplete", 0) == 2
    versions = dict(con.execute("select api_version, count(*) from exchanges group by 1").fetchall())
    assert versions.get("v1", 0) > 0 and versions.get("v2", 0) > 0
    assert con.execute("select count(*) from vector_stores where usage_bytes > 0").fetchone()[0] == 2

    # The emulator's clock starts now, like the proxy's: runs are priced on today's prices, and
    # no store looks idle for hundreds of days (it was 526 with a clock fixed in 2025).
    now = time.time()
    runs_at = con.execute("select min(epoch(created_at)), max(epoch(created_at)) from runs").fetchone()
    assert now - DAY < runs_at[0] <= runs_at[1] < now + DAY, runs_at
    idle_days = con.execute(
        "select name, (epoch(now()) - epoch(coalesce(last_active_at, created_at))) / 86400 from vector_stores"
    ).fetchall()
    assert idle_days and all(abs(days) < 1 for _, days in idle_days), idle_days
    assert "Idle vector stores" not in out  # the report lists stores idle for 30 days or more


def test_the_store_holds_all_three_generations_as_the_client_saw_them(tmp_path, capsys):
    """One demo round in process, so what the workload's SDK calls returned is at hand: every
    run (v1 and v2) and every response lands with the status and tokens the client saw, every
    Responses tool call with its type, file_search over the assistants' own vector store; and the
    printed output has the Responses section, with the store's numbers."""
    store = tmp_path / "store"
    console = Console(width=200)  # on stdout, where the report goes too
    fresh_store(store, keep=False, console=console)
    outcome = run_demo(store, rounds=1, capture_content=False, console=console)
    print_results(store, outcome, console)
    out = capsys.readouterr().out
    result = outcome["result"]
    con = connect(str(store))

    runs = con.execute("SELECT run_id, status, api_version FROM runs").fetchall()
    assert {run_id: status for run_id, status, _ in runs} == result.runs
    assert Counter(version for *_, version in runs) == {"v1": 1, "v2": len(result.runs) - 1}

    columns = [f.name for f in fields(SeenResponse)]
    got = {row[0]: SeenResponse(*row[1:])
           for row in con.execute(f"SELECT id, {', '.join(columns)} FROM responses").fetchall()}
    assert got == result.responses
    seen = result.responses.values()
    assert all(r.input_tokens and r.output_tokens and r.status == "completed" for r in seen)
    assert any(r.streamed for r in seen) and any(r.background for r in seen)
    assert len({r.conversation_id for r in seen if r.conversation_id}) == 1 == len(result.conversations)
    polls = con.execute("SELECT polls FROM responses WHERE background").fetchall()
    assert polls and all(n >= 1 for (n,) in polls)

    calls = dict(con.execute("SELECT call_id, item_type FROM response_tool_calls").fetchall())
    assert calls == result.response_tool_calls
    assert set(calls.values()) == {"function_call", "file_search_call", "web_search_call", "code_interpreter_call"}
    searched = {vs for (vs,) in con.execute(
        "SELECT DISTINCT unnest(vector_store_ids) FROM response_tool_calls WHERE type = 'file_search'").fetchall()}
    by_assistants = {vs for (vs,) in con.execute(
        "SELECT DISTINCT unnest(vector_store_ids) FROM assistants").fetchall()}
    assert searched == by_assistants == {result.vector_stores[0]}
    containers = {c for (c,) in con.execute("SELECT DISTINCT container_id FROM response_tool_calls "
                                            "WHERE type = 'code_interpreter'").fetchall()}
    assert containers == set(result.containers)
    generations = {row for row in con.execute(
        "SELECT DISTINCT api, api_version FROM exchanges WHERE origin = 'client' AND route <> 'other'").fetchall()}
    assert {("assistants", "v1"), ("assistants", "v2"), ("responses", None), ("conversations", None)} <= generations

    assert f"{len(result.runs)} runs" in out and f"{len(result.responses)} responses" in out
    assert "Top models" in out  # the report is printed too
    section = out[out.index("Responses API:"):out.index("Migration:")]
    assert f"; {len(result.responses)} responses ({len(result.responses)} completed), 1 conversation(s)" in section
    for item_type, n in Counter(result.response_tool_calls.values()).items():
        assert re.search(rf"│ {item_type.removesuffix('_call')}\s+│\s+{n} │", section), (item_type, section)
    for model in {r.model for r in seen}:
        of_model = [r for r in seen if r.model == model]
        cells = [len(of_model), sum(r.streamed for r in of_model), sum(r.background for r in of_model),
                 *(sum(getattr(r, c) for r in of_model) for c in ("input_tokens", "cached_input_tokens",
                                                                  "output_tokens", "reasoning_tokens"))]
        row = rf"│ {re.escape(model)}\s+│" + "".join(rf"\s+{n:,} │" for n in cells)
        assert re.search(row, section), (model, cells, section)

    # the migration report after it: both sides, the assistants still called, the shared store
    migration = out[out.index("Migration:"):out.index("Explore the store")]
    assert "1 vector store(s) read by both sides" in migration, migration
    assert re.search(rf"│ {result.vector_stores[0]} │[^│]+│ both\s+│", migration), migration
    assert f"{len(result.assistants)} assistant(s) still called" in migration
    assert all(assistant_id in migration for assistant_id in result.assistants)


def test_demo_proxy_has_the_connection_guards_serve_has(tmp_path):
    """The demo serves its proxy with proxy.serving.guard's runner: CONNECT gets the forwarder's 405 with
    Allow (aiohttp's plain runner answers a bare 404)."""
    servers = DemoServers(tmp_path / "store")
    try:
        with socket.create_connection(("127.0.0.1", servers.proxy.port), timeout=10) as conn:
            conn.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            head = conn.recv(65536).decode("latin-1")
    finally:
        servers.close()
    assert head.startswith("HTTP/1.1 405 "), head
    assert "\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" in head
    assert '"code":"method_not_allowed"' in head


def test_traffic_only_drives_a_running_proxy_into_its_store(emulator, start_proxy, tmp_path):
    """`demo --traffic-only` (what the docker-compose `traffic` service runs) against a real
    proxy in front of the emulator: the workload's exchanges and runs land in that proxy's store."""
    store = tmp_path / "proxy-store"
    settings = Settings(upstream=emulator.url, store=str(store), admin_listen=None).validate()
    recorder = build_recorder(settings)
    recorder.start()
    try:
        proxy = start_proxy(emulator.url, recorder=recorder, store=str(store))
        proc = demo_command(tmp_path, "--traffic-only", "--base-url", proxy.base_url, "--rounds", "1",
                            "--repeat", "2")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "workload done" in proc.stdout
        assert "Explore the store" not in proc.stdout  # no report with --traffic-only
    finally:
        recorder.close()
    assert not (tmp_path / "audit-demo").exists()  # nothing written beside the proxy's store
    con = connect(str(store))
    exchanges = dict(con.execute("select origin, count(*) from exchanges group by 1").fetchall())
    assert exchanges.get("client", 0) > 20, exchanges
    statuses = dict(con.execute("select status, count(*) from runs group by 1").fetchall())
    # one round, twice: each round has completed, cancelled and failed/incomplete runs
    assert statuses.get("completed", 0) >= 6 and statuses.get("cancelled", 0) == 2, statuses
    sdks = {row[0] for row in con.execute("select distinct sdk from exchanges where origin = 'client'").fetchall()}
    assert sdks and all(sdk.startswith("python ") for sdk in sdks), sdks
    assert con.execute("select count(*) from vector_stores").fetchone()[0] >= 2


def _store_counts(store) -> tuple[int, int, int]:
    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    try:
        return con.execute("select (select count(*) from exchanges), (select count(*) from runs), "
                           "(select count(distinct run_id) from runs)").fetchone()
    finally:
        con.close()


def test_a_second_demo_starts_afresh_unless_asked_to_append(tmp_path):
    """Two demos on one store used to mix (same seed: same ids, so runs collapsed into one row
    and a report of 258 exchanges showed 9.7 polls per run). Now the second run empties the
    store; --keep-store appends, with new ids, and says so; a directory demo did not make is
    never emptied."""
    store = tmp_path / "store"
    first = demo_command(tmp_path, "--store", str(store), "--rounds", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    once = _store_counts(store)
    assert once[1] == once[2] > 0, once
    second = demo_command(tmp_path, "--store", str(store), "--rounds", "1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert _store_counts(store) == once
    third = demo_command(tmp_path, "--store", str(store), "--rounds", "1", "--keep-store")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "appending to the store" in third.stdout
    exchanges, runs, distinct_runs = _store_counts(store)
    assert exchanges == 2 * once[0] and runs == distinct_runs == 2 * once[1], (exchanges, runs, once)

    someone_elses = tmp_path / "real-store"
    someone_elses.mkdir()
    (someone_elses / "audit.duckdb").write_bytes(b"not the demo's")
    refused = demo_command(tmp_path, "--store", str(someone_elses), "--rounds", "1")
    assert refused.returncode == 2 and "--store" in refused.stderr and "--keep-store" in refused.stderr
    assert (someone_elses / "audit.duckdb").read_bytes() == b"not the demo's"
