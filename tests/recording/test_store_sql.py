"""`assistants-audit sql`: formats, read-only enforcement, clean one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from analytics.cli import sql
from tests.exchanges import exchange
from tests.recording.store_helpers import recorder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store")
    r = recorder(path)
    for i in range(3):
        r.submit(exchange(i, path=f"/v1/threads/thread_{i}"))
    r.close()
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(sql, list(args))
    return result.exit_code, result.output


def test_formats(store):
    q = "SELECT path, status_code, bytes_out FROM exchanges ORDER BY path"
    code, out = run(q, "--store", str(store), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["path"] for d in data] == ["/v1/threads/thread_0", "/v1/threads/thread_1", "/v1/threads/thread_2"]
    assert data[0]["status_code"] == 200
    code, out = run(q, "--store", str(store), "--format", "csv")
    assert list(csv.reader(io.StringIO(out)))[:2] == [["path", "status_code", "bytes_out"], ["/v1/threads/thread_0", "200", "19"]]
    code, out = run(q, "--store", str(store), "--format", "markdown")
    assert out.splitlines()[:3] == ["| path | status_code | bytes_out |", "|---|---|---|", "| /v1/threads/thread_0 | 200 | 19 |"]
    code, out = run("SELECT count(*) AS n, min(started_at) AS first FROM exchanges", "--store", str(store))
    assert code == 0 and " n " in out and "3" in out and "1 row" in out


def test_empty_store_views_answer_with_no_rows(tmp_path):
    recorder(tmp_path).close()
    for view in ("exchanges", "runs", "run_steps", "tool_calls", "file_search_results", "vector_stores",
                 "vector_store_usage"):
        code, out = run(f"SELECT count(*) AS n FROM {view}", "--store", str(tmp_path), "--format", "json")
        assert (code, json.loads(out)) == (0, [{"n": 0}]), view


@pytest.mark.parametrize("query", [
    "DROP VIEW exchanges",
    "CREATE TABLE t AS SELECT 1",
    "COPY (SELECT 1) TO '/tmp/audit-evil.csv'",
    "COPY (SELECT * FROM exchanges) TO '{store}/tables/exchange_log/evil.parquet'",
    "ATTACH '/tmp/audit-evil.duckdb' AS evil",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/hostname')",
    "SELECT 1; DROP VIEW exchanges",
])
def test_writes_and_outside_files_are_refused(store, query):
    code, out = run(query.format(store=store), "--store", str(store))
    assert code == 1
    assert out.startswith("Error: ") and len(out.strip().splitlines()) == 1, out
    assert "Traceback" not in out
    assert not list((store / "tables" / "exchange_log").glob("evil*"))
    code, out = run("SELECT count(*) AS n FROM exchanges", "--store", str(store), "--format", "json")
    assert json.loads(out) == [{"n": 3}]


def test_clean_errors(tmp_path, store):
    code, out = run("SELECT 1", "--store", str(tmp_path / "missing"))
    assert code == 1 and out.startswith("Error: no audit store at") and len(out.splitlines()) == 1
    code, out = run("SELEC nonsense", "--store", str(store))
    assert code == 1 and out.startswith("Error: Parser Error") and len(out.splitlines()) == 1
    code, out = run("SELECT 1", "--store", str(store), "--format", "xml")
    assert code == 2


def test_every_store_command_has_help_and_an_example():
    result = CliRunner().invoke(sql, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--format" in result.output


def test_the_documented_views_have_the_documented_columns(store):
    """The README's table of views is the public interface: each view has at least those columns."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("<!-- section:store -->"):readme.index("<!-- /section:store -->")]
    documented = dict(re.findall(r"^\| `(\w+)` \| ([\w, ]+) \|$", section, flags=re.M))
    assert {"exchanges", "runs", "run_steps", "tool_calls", "file_search_results", "vector_stores",
            "vector_store_usage"} <= set(documented)
    for view, cols in documented.items():
        code, out = run(f"SELECT column_name FROM (DESCRIBE {view})", "--store", str(store), "--format", "json")
        assert code == 0, out
        have = {row["column_name"] for row in json.loads(out)}
        missing = {c.strip() for c in cols.split(",")} - have
        assert not missing, (view, missing)
