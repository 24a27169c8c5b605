"""Shared building blocks for the dashboards: datasource references, template variables, queries
and panel constructors. Every panel built here has a unit and a description, and queries the
Prometheus datasource chosen by the `datasource` template variable."""

from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard, prometheus
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

# Fixed datasource UIDs: grafana/provisioning/datasources/datasources.yml provisions exactly these,
# so links and the default datasource resolve on a fresh Grafana.
PROMETHEUS_UID = "assistants-audit-prometheus"
TEMPO_UID = "assistants-audit-tempo"

TAG = "assistants-audit"
PROM = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label filters driven by the template variables ("All" expands to .*).
OP = 'operation=~"$operation"'
MODEL = 'model=~"$model"'
RATE = "$__rate_interval"

ABSENT_IS_ZERO = (
    " A counter that has never been incremented is absent from Prometheus; the query falls back to "
    "`vector(0)`, so a flat zero line means \"none seen\", not \"no data\"."
)


@dataclass(frozen=True, slots=True)
class Q:
    """One PromQL target: expression, legend template, and whether it is an instant query."""

    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False  # one row per series (instant query, table format)


def _targets(queries: Sequence[Q]) -> list[prometheus.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .expr(q.expr)
            .legend_format(q.legend)
            .ref_id(chr(ord("A") + i))
            .datasource(PROM)
        )
        target = target.instant() if q.instant or q.table else target.range()
        if q.table:
            target = target.format(PromQueryFormat.TABLE)
        out.append(target)
    return out


def _common(panel, title: str, description: str, unit: str, queries: Sequence[Q], width: int, height: int):
    if not description or not unit:
        raise ValueError(f"panel {title!r} needs a description and a unit")
    panel = panel.title(title).description(description).unit(unit).datasource(PROM)
    panel = panel.span(width).height(height)
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Q,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    minimum: float | None = 0,
) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), title, description, unit, queries, width, height)
    panel = panel.legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .calcs(["mean", "max", "lastNotNull"])
    ).fill_opacity(10).line_width(1)
    if minimum is not None:
        panel = panel.min(minimum)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


Thresholds = Sequence[tuple[float | None, str]]


def _last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


# kind -> (builder class, default width, default height, finishing touches)
_VALUE_PANELS = {
    "stat": (stat.Panel, 6, 5, lambda p: p.color_mode(common.BigValueColorMode.VALUE)
             .graph_mode(common.BigValueGraphMode.AREA).reduce_options(_last_value())),
    "bargauge": (bargauge.Panel, 12, 8, lambda p: p.orientation(common.VizOrientation.HORIZONTAL)
                 .display_mode(common.BarGaugeDisplayMode.GRADIENT).reduce_options(_last_value())),
    "table": (table.Panel, 12, 8, lambda p: p),
}


def value_panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    *queries: Q,
    width: int | None = None,
    height: int | None = None,
    thresholds: Thresholds = ((None, "green"),),
):
    """A panel showing current values (stat, bargauge or table), coloured by `thresholds`."""
    cls, default_width, default_height, finish = _VALUE_PANELS[kind]
    panel = _common(cls(), title, description, unit, queries, width or default_width, height or default_height)
    return finish(panel.thresholds(_thresholds(thresholds)))


stat_panel = functools.partial(value_panel, "stat")
bar_gauge_panel = functools.partial(value_panel, "bargauge")
table_panel = functools.partial(value_panel, "table")


def assistant_spend_table(title: str, description: str, usd: Q, tokens: Q, width: int = 24) -> table.Panel:
    """One row per assistant: the USD query and the tokens query (both `sum by (assistant)`,
    instant, table format) merged on the assistant label, most expensive first."""
    usd_field, tokens_field = "Value #A", "Value #B"
    panel = value_panel("table", title, description, "currencyUSD", usd, tokens, width=width)
    return (
        panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True},
                         "renameByName": {usd_field: usd.legend, tokens_field: tokens.legend}},
            )
        )
        .override_by_name(tokens.legend, [DynamicConfigValue(id_val="unit", value="short")])
        .sort_by([common_builders.TableSortByFieldState().display_name(usd.legend).desc(True)])
    )


def tempo_explore_url(traceql: str) -> str:
    """A Grafana Explore URL that runs `traceql` on the provisioned Tempo over the panel's time range."""
    pane = {
        "datasource": TEMPO_UID,
        "queries": [
            {
                "refId": "A",
                "datasource": {"type": "tempo", "uid": TEMPO_UID},
                "queryType": "traceql",
                "query": traceql,
            }
        ],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    panes = json.dumps({"traces": pane}, separators=(",", ":"), sort_keys=True)
    # Keep ${...} intact so Grafana interpolates the time range and field labels.
    return "/explore?schemaVersion=1&panes=" + urllib.parse.quote(panes, safe="${}_.:")


def run_traces(status: str, *conditions: str) -> str:
    """TraceQL for the proxy's run traces (`invoke_agent {assistant}` root spans, proxy/sinks/otel.py)
    whose `openai.run.status` attribute matches `status` (an operator and a value), and `conditions`."""
    return "{ " + " && ".join(['name =~ "invoke_agent.*"', f"span.openai.run.status {status}", *conditions]) + " }"


def link(title: str, url: str) -> dashboard.DashboardLink:
    return dashboard.DashboardLink(title).type(DashboardLinkType.LINK).url(url).target_blank(True)


def variables() -> list[cogbuilder.Builder]:
    """datasource, operation and model; "All" means every value (regex .*)."""
    datasource = (
        dashboard.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value=PROMETHEUS_UID))
        .description("The Prometheus that scrapes the proxy's admin /metrics.")
    )

    def label_variable(name: str, label: str, metric: str, description: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(PROM)
            .query(
                {
                    "qryType": 1,
                    "query": f"label_values({metric}, {name})",
                    "refId": "PrometheusVariableQueryEditor-VariableQuery",
                }
            )
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        datasource,
        label_variable(
            "operation", "Operation", "assistants_audit_exchanges_total",
            "Assistants API operation (runs.create, messages.list, ...) as classified by the proxy.",
        ),
        label_variable(
            "model", "Model", "assistants_audit_tokens_total",
            "Model as reported on runs; only models that consumed tokens are listed.",
        ),
    ]


def base_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone(common.TimeZoneBrowser)
        .variables(variables())
        .link(
            dashboard.DashboardLink("assistants-audit dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def quantile(q: float, metric: str, by: Sequence[str] = (), selector: str = "", legend: str | None = None) -> Q:
    """p-quantile of a Prometheus histogram over the rate interval, per `by` labels."""
    group = ", ".join(["le", *by])
    expr = f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
    default = " ".join([f"p{round(q * 100)}", *("{{%s}}" % label for label in by)])
    return Q(expr, legend or default)


def mean(metric: str, by: Sequence[str] = (), selector: str = "", legend: str = "mean") -> Q:
    """Mean of a histogram's observations over the rate interval (sum / count)."""
    group = f" by ({', '.join(by)})" if by else ""
    rate = lambda part: f"sum{group} (rate({metric}_{part}{{{selector}}}[{RATE}]))"  # noqa: E731
    return Q(f"{rate('sum')} / {rate('count')}", legend)
