"""`assistants-audit demo` end to end, as a user runs it: a fresh store, no API key, a report."""

import subprocess
import sys

import duckdb


def test_demo_prints_a_report_and_fills_the_store(tmp_path):
    store = tmp_path / "store"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "proxy.cli", "demo", "--store", str(store), "--rounds", "2"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "runs (" in out and "streamed" in out
    assert "Top models" in out and "gpt-4o" in out
    assert "Explore the store" in out
    con = duckdb.connect(str(store / "audit.duckdb"), read_only=True)
    statuses = dict(con.execute("select status, count(*) from runs group by 1").fetchall())
    # two rounds: failed/incomplete/cancelled runs exist beside completed ones
    assert statuses.get("completed", 0) >= 6
    assert statuses.get("cancelled", 0) == 2
    assert statuses.get("failed", 0) + statuses.get("incomplete", 0) == 2
    versions = dict(con.execute("select api_version, count(*) from exchanges group by 1").fetchall())
    assert versions.get("v1", 0) > 0 and versions.get("v2", 0) > 0
    assert con.execute("select count(*) from vector_stores where usage_bytes > 0").fetchone()[0] == 2
