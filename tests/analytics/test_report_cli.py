"""`assistants-audit report`: empty store, formats, errors, polling overhead, and a 1k-run smoke run."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from analytics.prices import Prices, install_report_prices
from analytics.report import build_report
from proxy.cli import main
from tests.analytics import workload as W
from tests.analytics.storebuild import F, connect, fact, write_store
from tests.clierrors import assert_one_line_error, run_cli


def _invoke(*args: str):
    return CliRunner().invoke(main, ["report", *args])


def test_empty_store_says_so_in_every_format(tmp_path):
    store = write_store(tmp_path / "audit", [])
    data = json.loads(_invoke("--store", str(store), "--format", "json").output)
    assert data["empty"] is True and data["total_usd"] == 0
    assert all(r["usd"] == 0 for r in data["spend_by_kind"])
    for fmt in ("table", "markdown"):
        result = _invoke("--store", str(store), "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "The audit store is empty" in result.output
    rows = list(csv.reader(io.StringIO(_invoke("--store", str(store), "--format", "csv").output)))
    assert rows[0] == ["section", "column", "row", "value"] and ["summary", "total_usd", "0", "0.0"] in rows


def test_formats_carry_the_same_figures(tmp_path):
    store = write_store(tmp_path / "audit", W.workload_facts())
    out = _invoke("--store", str(store), "--format", "csv").output
    rows = list(csv.reader(io.StringIO(out)))
    tokens = next(r for r in rows if r[0] == "spend_by_kind" and r[1] == "kind" and r[3] == "tokens")
    usd = next(r for r in rows if r[0] == "spend_by_kind" and r[1] == "usd" and r[2] == tokens[2])
    assert float(usd[3]) == pytest.approx(W.TOKENS_USD, abs=0.005)
    md = _invoke("--store", str(store), "--format", "markdown").output
    assert "| my-finetune-x |" in md and "$1.90" in md
    table = _invoke("--store", str(store)).output
    assert "Unpriced models" in table and "$1.90" in table


def test_errors_are_one_line_with_exit_codes(tmp_path):
    missing = _invoke("--store", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and missing.output.count("\n") == 1 and "no audit store" in missing.output
    store = write_store(tmp_path / "audit", [])
    bad_date = _invoke("--store", str(store), "--since", "last tuesday")
    assert bad_date.exit_code == 2 and "--since" in bad_date.output
    bad_prices = tmp_path / "p.yaml"
    bad_prices.write_text("models: {gpt-4o: {input_usd_per_mtok: 1}}\n")
    result = _invoke("--store", str(store), "--prices", str(bad_prices))
    assert result.exit_code == 2 and "output_usd_per_mtok" in result.output  # a bad option value
    unknown = tmp_path / "q.json"
    unknown.write_text('{"storage_per_gb": 1}')
    assert "unknown key" in _invoke("--store", str(store), "--prices", str(unknown)).output


def test_help_has_an_example():
    result = _invoke("--help")
    assert result.exit_code == 0 and "Example:" in result.output and "--idle-days" in result.output


def test_polling_overhead_counts_unchanged_polls(tmp_path):
    facts = []
    statuses = ["queued", "in_progress", "in_progress", "in_progress", "completed"]
    for i, status in enumerate(statuses):
        facts.append(fact(F.RunSnapshot, exchange_id=f"p{i}", observed_at=W.T + timedelta(seconds=i),
                          source="create" if i == 0 else "retrieve", run_id="run_p", model="gpt-4o",
                          status=status, created_at=W.T))
    facts.append(fact(F.RunSnapshot, exchange_id="s0", observed_at=W.T, source="stream", run_id="run_s",
                      model="gpt-4o", status="completed", created_at=W.T, streamed=True))
    con = connect(write_store(tmp_path / "audit", facts))
    install_report_prices(con, Prices.load())
    polling = build_report(con, None, None, 30)["polling"]
    # 4 polls: in_progress (changed), in_progress (same), in_progress (same), completed (changed)
    assert polling == {"runs": 2, "polled_runs": 1, "streamed_runs": 1, "polls": 4, "unchanged_polls": 2,
                       "polls_per_polled_run": 4.0, "unchanged_share": 0.5}
    (row,) = con.execute("SELECT runs, polls, unchanged_share FROM polling_overhead").fetchall()
    assert row == (2, 4, 0.5)


def test_smoke_1k_runs(tmp_path):
    from bench.report_100k import generate_store

    store = generate_store(tmp_path / "audit", 1_000)
    data = json.loads(_invoke("--store", str(store), "--format", "json").output)
    assert data["counts"]["runs"] == 1_000
    assert data["total_usd"] > 0 and data["top_models"]


def test_sql_help_lists_every_view_including_the_cost_views():
    import re
    from pathlib import Path

    import analytics

    root = Path(analytics.__file__).parent
    views = set()
    for name in ("views.sql", "costs.sql"):
        views |= set(re.findall(r"CREATE OR REPLACE VIEW (\w+)", (root / name).read_text()))
    assert {"costs", "cost_by_key", "api_version_usage", "vector_store_storage_daily"} <= views
    result = CliRunner().invoke(main, ["sql", "--help"])
    assert result.exit_code == 0
    listed = set(re.findall(r"\w+", result.output))
    assert views - listed == set()
    assert {"model_prices", "tool_prices"} <= listed


def test_progress_is_shown_from_the_start_including_folding_and_pricing(tmp_path):
    """On a big store most of the time goes to pricing and folding it before the first section:
    the progress display covers that phase too, each phase drawn as it starts."""
    from rich.console import Console

    from analytics.report import run_report

    store = write_store(tmp_path / "audit", W.workload_facts())
    terminal = io.StringIO()
    out = run_report(str(store), None, None, 30, "json", None,
                     console=Console(file=terminal, force_terminal=True, width=120))
    assert json.loads(out)["total_usd"] == pytest.approx(W.TOKENS_USD + W.CI_USD + W.STORAGE_USD + W.RETRIEVAL_USD,
                                                         abs=0.005)
    shown = terminal.getvalue()
    phases = ["loading prices", "opening the store", "pricing the store's models", "folding runs",
              "folding run_costs", "folding vector_store_storage_daily", "folding costs",
              "summing costs by kind", "measuring polling", "rendering"]
    positions = [shown.find(phase) for phase in phases]
    assert -1 not in positions, [p for p, i in zip(phases, positions) if i < 0]
    assert positions == sorted(positions)
    # not a terminal (a pipe, CliRunner): no progress at all
    piped = io.StringIO()
    run_report(str(store), None, None, 30, "json", None, console=Console(file=piped, force_terminal=False))
    assert piped.getvalue() == ""


@pytest.mark.parametrize("name, content, where", [
    ("nope.yaml", None, "No such file"),
    ("bad.yaml", "models:\n  gpt-4o: [1, 2\n  x: }\n", "bad.yaml:3:"),
    ("bad.json", '{"models": {\n  "gpt-4o": 1,,\n}}', "bad.json:2:"),
    ("partial.yaml", "models: {gpt-4o: {input_usd_per_mtok: 1}}\n", "output_usd_per_mtok"),
])
def test_a_bad_price_file_is_the_same_one_line_and_exit_2_for_report_and_serve(tmp_path, name, content, where):
    prices = tmp_path / name
    if content is not None:
        prices.write_text(content)
    store = write_store(tmp_path / "audit", [])
    by_report = run_cli("report", "--store", str(store), "--prices", str(prices))
    by_serve = run_cli("serve", "--upstream", "http://127.0.0.1:9", "--store", str(store), "--prices", str(prices))
    line = assert_one_line_error(by_report, 2, "--prices", str(prices), where)
    assert assert_one_line_error(by_serve, 2) == line


def test_sql_refusal_names_exactly_the_statements_that_work(tmp_path):
    store = write_store(tmp_path / "audit", [])
    refused = run_cli("sql", "--store", str(store), "DROP VIEW runs")
    line = assert_one_line_error(refused, 1, "DROP")
    import re

    accepted = re.search(r"\(only ([^)]*)\)", line).group(1).replace(" and ", ", ").split(", ")
    assert set(accepted) == {"SELECT", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN"}
    help_text = " ".join(CliRunner().invoke(main, ["sql", "--help"]).output.split())
    assert f"Only {', '.join(accepted[:-1])} and {accepted[-1]} are accepted" in help_text
    statement = {"SELECT": "SELECT 1", "DESCRIBE": "DESCRIBE runs", "SHOW": "SHOW TABLES",
                 "SUMMARIZE": "SUMMARIZE exchanges", "EXPLAIN": "EXPLAIN SELECT 1"}
    for kind in accepted:
        result = CliRunner().invoke(main, ["sql", "--store", str(store), statement[kind]])
        assert result.exit_code == 0, (kind, result.output)


@pytest.mark.parametrize("window, names", [
    (("--since", "last tuesday"), ("--since", "last tuesday")),
    (("--until", "tomorrow"), ("--until", "tomorrow")),
    (("--since", "2025-06-02", "--until", "2025-06-01"), ("--until", "--since")),
])
def test_a_bad_window_is_one_line_naming_the_option(tmp_path, window, names):
    store = write_store(tmp_path / "audit", [])
    assert_one_line_error(run_cli("report", "--store", str(store), *window), 2, *names)
