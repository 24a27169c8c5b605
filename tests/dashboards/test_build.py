"""The committed dashboard JSON is exactly what the code generates, and every panel is usable:
a unit, a description, a datasource from the template variable, queries that parse."""

from __future__ import annotations

import json
import re
import urllib.parse

from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dashboards.cli import dashboards
from dashboards.panels import PROMETHEUS_UID, TEMPO_UID
from dashboards.render import render_all
from proxy.config import Settings
from proxy.cli import main
from proxy.sinks.otel import OtelSink
from tests.sinks import factories as f
from tests.dashboards.helpers import JSON_DIR, ROOT, all_panels, committed_dashboards, panel_queries

EXPECTED = {
    "latency.json": "Assistants API / Latency",
    "failures.json": "Assistants API / Failures",
    "vector-stores.json": "Assistants API / Vector-store storage & cost",
    "cost.json": "Assistants API / Cost & usage",
    "responses.json": "Assistants API / Responses & migration",
}


def test_committed_json_matches_generated() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}
    assert sorted(rendered) == sorted(committed) == sorted(EXPECTED)
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run `python -m dashboards`"


def test_build_writes_files_and_check_detects_drift(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["dashboards", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(EXPECTED)
    assert runner.invoke(dashboards, ["build", "--check", "--out", str(tmp_path)]).exit_code == 0

    (tmp_path / "cost.json").write_text("{}")
    result = runner.invoke(dashboards, ["build", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "cost.json" in result.output


def test_titles_uids_and_variables() -> None:
    boards = committed_dashboards()
    uids = set()
    for name, board in boards.items():
        assert board["title"] == EXPECTED[name]
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"datasource", "operation", "model"}
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == PROMETHEUS_UID
        for name_ in ("operation", "model"):
            assert variables[name_]["includeAll"] and variables[name_]["allValue"] == ".*"
    assert len(uids) == len(boards)


def test_every_panel_has_unit_description_and_templated_datasource() -> None:
    for name, board in committed_dashboards().items():
        panels = [p for p in all_panels(board) if p["type"] != "row"]
        assert len(panels) >= 5, name
        for panel in panels:
            where = f"{name}: {panel['title']}"
            assert panel["fieldConfig"]["defaults"].get("unit"), where
            assert len(panel.get("description", "")) > 60, where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where


def test_queries_use_template_variables_where_they_apply() -> None:
    queries = panel_queries(committed_dashboards())
    raw = [t["expr"] for b in committed_dashboards().values() for p in all_panels(b) for t in p.get("targets", [])]
    assert any('operation=~"$operation"' in e for e in raw)
    assert any('model=~"$model"' in e for e in raw)
    # Any query on an operation- or model-labelled metric that filters by it uses the variable.
    for expr in raw:
        assert 'operation="' not in expr and 'model="' not in expr, expr
    assert all("$" not in q for _, _, q in queries)


def test_run_failure_panel_links_to_tempo() -> None:
    board = committed_dashboards()["failures.json"]
    panel = next(p for p in all_panels(board) if p["title"].startswith("Run failures"))
    urls = [link["url"] for link in panel["links"]] + [link["url"] for link in panel["fieldConfig"]["defaults"]["links"]]
    assert len(urls) == 2
    for url in urls:
        assert url.startswith("/explore?")
        assert TEMPO_UID in url
        assert "${__from}" in url and "${__to}" in url


def _traceql(url: str) -> str:
    panes = json.loads(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["panes"][0])
    return panes["traces"]["queries"][0]["query"]


def _matches(traceql: str, span) -> bool:
    """Evaluate the TraceQL subset the links use, `{ cond && cond ... }`, on one span. Conditions:
    `name =~ "re"`, `status = error`, `span.ATTR = "v"` and `span.ATTR =~ "re"`."""
    body = re.fullmatch(r"\{\s*(.*?)\s*\}", traceql).group(1)
    for cond in body.split(" && "):
        if cond == "status = error":
            if span.status.status_code != StatusCode.ERROR:
                return False
            continue
        field, op, value = re.fullmatch(r'(name|span\.[\w.]+) (=~|=) "(.*)"', cond).groups()
        actual = span.name if field == "name" else span.attributes.get(field[len("span."):])
        if actual is None:
            return False
        if not (re.fullmatch(value, str(actual)) if op == "=~" else str(actual) == value):
            return False
    return True


def test_run_failure_trace_links_find_runs_of_the_clicked_status() -> None:
    """The links' TraceQL, run on the run traces the real tracing sink emits for runs of every
    terminal status: the panel link finds every run that did not complete, and a click on a
    series (status, model) finds exactly the runs of that status and model, not only failed ones."""
    board = committed_dashboards()["failures.json"]
    panel = next(p for p in all_panels(board) if p["title"].startswith("Run failures"))
    (panel_link,) = [_traceql(link["url"]) for link in panel["links"]]
    (series_link,) = [_traceql(link["url"]) for link in panel["fieldConfig"]["defaults"]["links"]]
    statuses = re.search(r'status=~"([^"]+)"', panel["targets"][0]["expr"]).group(1).split("|")
    assert sorted(statuses) == ["cancelled", "expired", "failed", "incomplete"]

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = OtelSink(provider, Settings(), step_wait_s=0)
    runs = {}
    for i, (status, model) in enumerate(
        [(s, m) for s in ["completed", *statuses] for m in ("gpt-4o", "gpt-4o-mini")]
    ):
        run_id = f"run_{i}"
        runs[run_id] = (status, model)
        ended = {"failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at",
                 "incomplete": "incomplete_at"}.get(status, "completed_at")
        code = {"failed": "server_error"}.get(status)
        sink.on_exchange(f.exchange(t=i), [f.run(run_id, status=status, model=model, t=i, started_at=f.at(i),
                                                 last_error_code=code, **{ended: f.at(i + 1)})])
    sink.close()
    roots = {s.attributes["openai.run.id"]: s for s in exporter.get_finished_spans() if s.parent is None
             and "openai.run.id" in s.attributes and s.name.startswith("invoke_agent")}
    assert set(roots) == set(runs)

    found = {run_id for run_id, span in roots.items() if _matches(panel_link, span)}
    assert found == {run_id for run_id, (status, _) in runs.items() if status != "completed"}
    for status in statuses:
        for model in ("gpt-4o", "gpt-4o-mini"):
            query = series_link.replace("${__field.labels.status}", status).replace("${__field.labels.model}", model)
            assert "$" not in query, query
            found = {run_id for run_id, span in roots.items() if _matches(query, span)}
            assert found == {run_id for run_id, labels in runs.items() if labels == (status, model)}, (query, found)


def test_idle_store_window_is_the_alerts_and_the_reports() -> None:
    """"Idle" means the same on the dashboard, in the alert rule and in `assistants-audit report`."""
    import inspect

    from analytics.report import build_report

    board = committed_dashboards()["vector-stores.json"]
    panel = next(p for p in all_panels(board) if p["title"] == "Idle stores' storage cost")
    (dashboard_s,) = re.findall(r"idle_seconds > (\d+)", panel["targets"][0]["expr"])
    alerts = (ROOT / "prometheus" / "alerts.yml").read_text()
    (alert_expr,) = re.findall(r"idle_seconds > ([\d *]+)\)", alerts)
    alert_s = eval(alert_expr, {"__builtins__": {}})  # e.g. "30 * 86400"
    report_days = inspect.signature(build_report).parameters["idle_days"].default
    assert int(dashboard_s) == alert_s == report_days * 86400
    assert f"{report_days} days" in panel["description"]


def test_panels_query_exactly_the_contract_metrics() -> None:
    from tests.dashboards.contract import CONTRACT_METRICS

    used = set()
    for _, _, expr in panel_queries(committed_dashboards()):
        for name in re.findall(r"\b((?:assistants_audit|gen_ai_client)_[a-z_]+)", expr):
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    unknown = used - set(CONTRACT_METRICS)
    assert not unknown, f"panels query metrics the proxy does not expose: {sorted(unknown)}"
    unshown = set(CONTRACT_METRICS) - used
    assert not unshown, f"metrics the proxy exposes but no panel shows: {sorted(unshown)}"
    # Every dashboard JSON is valid JSON with no NaN/Infinity literals.
    for path in JSON_DIR.glob("*.json"):
        json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_layout_fits_the_grid_without_overlaps() -> None:
    for name, board in committed_dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        for panel in all_panels(board):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']} {pos}"
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{name}: {panel['title']} overlaps {other}"
