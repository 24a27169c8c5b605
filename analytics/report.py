"""The cost and usage audit report: what the assistants cost, where it goes, and what to clean up.

`build_report(con, since, until, idle_days)` runs the queries over the cost views (analytics/
costs.sql) and returns a plain dict (the `--format json` output); `render(report, fmt)` turns it
into rich tables, Markdown or CSV. The click command (analytics.cli) is a thin wrapper.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.schema import GENERATIONS
from analytics.store import StoreError
from proxy.config import ConfigError
from proxy.sinks.common import TERMINAL_RUN_STATUSES

KINDS = ("tokens", "code_interpreter_session", "vector_store_storage", "retrieval_storage")
# Kinds only the Responses API bills: listed in the spend when the window has any.
RESPONSES_KINDS = ("file_search_call", "web_search_call", "code_interpreter_container")
# API generations (analytics/views.sql exchange_generations; `shared`: what every generation reads).
API_GENERATIONS = tuple(g for g in GENERATIONS if g != "other")
_GENERATION_ORDER = "CASE api " + " ".join(f"WHEN '{g}' THEN {i}" for i, g in enumerate(API_GENERATIONS)) + " END"
TOP_N = 10
FAILED_STATUSES = tuple(sorted(TERMINAL_RUN_STATUSES - {"completed"}))
_TERMINAL_SQL = ", ".join(f"'{s}'" for s in sorted(TERMINAL_RUN_STATUSES))


def parse_when(value: str | None, option: str) -> datetime | None:
    """A date (YYYY-MM-DD, UTC midnight) or an ISO datetime; naive means UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {value!r}: not a date (YYYY-MM-DD) or ISO datetime") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _round(x: Any, digits: int = 6) -> Any:
    return round(x, digits) if isinstance(x, float) else x


def _rows(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [{k: _round(v) for k, v in zip(names, row)} for row in cur.fetchall()]


def _window(column: str, since: datetime | None, until: datetime | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{column} >= CAST(? AS TIMESTAMPTZ)")
        params.append(since.isoformat())
    if until is not None:
        clauses.append(f"{column} < CAST(? AS TIMESTAMPTZ)")
        params.append(until.isoformat())
    return (" AND ".join(clauses) or "TRUE"), params


def _ts(expr: str) -> str:
    # TIMESTAMPTZ -> ISO text in UTC (the Python conversion of TIMESTAMPTZ would need pytz)
    return f"strftime(timezone('UTC', {expr}), '%Y-%m-%dT%H:%M:%SZ')"


def build_report(
    con: Any,
    since: datetime | None,
    until: datetime | None,
    idle_days: int = 30,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The report as a dict. `con` has the public views, the cost views and priced models."""
    step = progress or (lambda _label: None)
    costs_where, costs_params = _window("occurred_at", since, until)
    runs_where, runs_params = _window("priced_at", since, until)
    ex_where, ex_params = _window("started_at", since, until)

    step("scanning runs and exchanges")
    counts = con.execute(
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM exchanges), "
        "(SELECT count(*) FROM vector_store_usage)"
    ).fetchone()
    report: dict[str, Any] = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "idle_days": idle_days,
        "empty": not any(counts),
        "counts": {"runs": counts[0], "exchanges": counts[1], "vector_store_observations": counts[2]},
    }

    step("summing costs by kind")
    by_kind = {r["kind"]: r for r in _rows(con, f"""
        SELECT kind, count(*) AS items, sum(quantity) AS quantity, coalesce(sum(usd), 0) AS usd,
               count(*) FILTER (WHERE usd IS NULL) AS unpriced_items
        FROM costs WHERE {costs_where} GROUP BY kind""", costs_params)}
    spend = [
        {"kind": k, "items": by_kind.get(k, {}).get("items", 0), "quantity": by_kind.get(k, {}).get("quantity") or 0,
         "usd": by_kind.get(k, {}).get("usd", 0.0), "unpriced_items": by_kind.get(k, {}).get("unpriced_items", 0)}
        for k in (*KINDS, *(k for k in RESPONSES_KINDS if k in by_kind))
    ]
    report["total_usd"] = round(sum(r["usd"] for r in spend), 6)
    report["spend_by_kind"] = spend
    report["spend_by_api"] = _rows(con, f"""
        SELECT api, count(*) AS items, coalesce(sum(usd), 0) AS usd, count(*) FILTER (WHERE usd IS NULL) AS unpriced_items
        FROM costs WHERE {costs_where} GROUP BY api ORDER BY {_GENERATION_ORDER}, api""", costs_params)

    step("pricing models")
    # runs and responses: a response's input and output tokens are its prompt and completion
    priced = f"""(
        SELECT model, true AS is_run, prompt_tokens, completion_tokens, total_tokens, usd FROM run_costs
        WHERE {runs_where}
        UNION ALL
        SELECT model, false, input_tokens, output_tokens, total_tokens, usd FROM response_costs
        WHERE {runs_where})"""
    report["unpriced_models"] = _rows(con, f"""
        SELECT model, count(*) FILTER (WHERE is_run) AS runs, sum(total_tokens) AS tokens,
               count(*) FILTER (WHERE NOT is_run) AS responses
        FROM {priced} WHERE usd IS NULL GROUP BY model ORDER BY tokens DESC NULLS LAST""", runs_params * 2)
    report["top_models"] = _rows(con, f"""
        SELECT model, count(*) FILTER (WHERE is_run) AS runs, sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens, sum(usd) AS usd,
               count(*) FILTER (WHERE usd IS NULL AND is_run) AS unpriced_runs,
               count(*) FILTER (WHERE NOT is_run) AS responses,
               count(*) FILTER (WHERE usd IS NULL AND NOT is_run) AS unpriced_responses
        FROM {priced}
        GROUP BY model ORDER BY usd DESC NULLS LAST, runs DESC LIMIT {TOP_N}""", runs_params * 2)

    step("ranking assistants")
    report["top_assistants"] = _rows(con, f"""
        SELECT c.assistant_id, n.name, count(DISTINCT c.run_id) AS runs,
               sum(c.usd) FILTER (WHERE c.kind = 'tokens') AS token_usd,
               sum(c.usd) FILTER (WHERE c.kind = 'code_interpreter_session') AS code_interpreter_usd,
               sum(c.usd) FILTER (WHERE c.kind = 'retrieval_storage') AS retrieval_usd,
               sum(c.usd) AS usd, count(*) FILTER (WHERE c.usd IS NULL) AS unpriced_items
        FROM costs c LEFT JOIN assistants n USING (assistant_id)
        WHERE c.assistant_id IS NOT NULL AND {costs_where}
        GROUP BY c.assistant_id, n.name ORDER BY usd DESC NULLS LAST LIMIT {TOP_N}""", costs_params)

    step("accounting vector store storage")
    report["top_vector_stores"] = _rows(con, f"""
        WITH s AS (
            SELECT vector_store_id, sum(quantity) AS billable_gib_days, sum(usd) AS usd
            FROM costs WHERE kind = 'vector_store_storage' AND {costs_where} GROUP BY vector_store_id)
        SELECT s.vector_store_id, a.name, s.billable_gib_days, s.usd, a.billed,
               a.usage_gib AS current_gib, a.projected_daily_usd * 30 AS projected_30d_usd
        FROM s LEFT JOIN vector_store_activity a USING (vector_store_id)
        ORDER BY s.usd DESC NULLS LAST, projected_30d_usd DESC LIMIT {TOP_N}""", costs_params)
    report["idle_vector_stores"] = _rows(con, f"""
        SELECT vector_store_id, name, {_ts('last_used_at')} AS last_used_at,
               floor(epoch(now() - last_used_at) / 86400) AS idle_days,
               usage_gib AS current_gib, projected_daily_usd * 30 AS monthly_usd
        FROM vector_store_activity
        WHERE billed AND usage_bytes > 0
          AND (last_used_at IS NULL OR last_used_at < now() - to_days(CAST(? AS INTEGER)))
        ORDER BY monthly_usd DESC, usage_gib DESC""", [idle_days])
    report["idle_monthly_usd"] = round(sum(r["monthly_usd"] or 0 for r in report["idle_vector_stores"]), 6)

    step("grouping failures")
    statuses = ", ".join(f"'{s}'" for s in FAILED_STATUSES)
    report["failures"] = _rows(con, f"""
        SELECT status, coalesce(last_error_code, incomplete_reason, status) AS code, count(*) AS runs,
               sum(total_tokens) AS tokens, sum(usd) AS usd
        FROM run_costs WHERE status IN ({statuses}) AND {runs_where}
        GROUP BY ALL ORDER BY usd DESC NULLS LAST, runs DESC""", runs_params)
    # failed runs that reported no usage are still failures
    report["failures_without_usage"] = _rows(con, f"""
        SELECT status, coalesce(last_error_code, incomplete_reason, status) AS code, count(*) AS runs
        FROM runs WHERE status IN ({statuses})
          AND prompt_tokens IS NULL AND completion_tokens IS NULL AND total_tokens IS NULL
          AND {_window('coalesce(created_at, started_at)', since, until)[0]}
        GROUP BY ALL ORDER BY runs DESC""", _window("x", since, until)[1])

    step("finding v1 traffic")
    report["v1_traffic"] = _rows(con, f"""
        SELECT key_fingerprint, coalesce(sdk, nullif(concat_ws(' ', sdk_lang, sdk_version), '')) AS sdk,
               beta_header, coalesce(api_version, 'absent') AS api_version, count(*) AS exchanges,
               count(*) FILTER (WHERE v1_semantics) AS v1_semantics_exchanges, {_ts('max(started_at)')} AS last_seen
        FROM exchanges
        WHERE origin = 'client' AND (api_version = 'v1' OR v1_semantics) AND {ex_where}
        GROUP BY ALL ORDER BY exchanges DESC""", ex_params)

    step("measuring polling")
    poll_where, poll_params = _window("created_at", since, until)
    polling = _rows(con, f"""
        SELECT count(*) AS runs, count(*) FILTER (WHERE poll_count > 0) AS polled_runs,
               count(*) FILTER (WHERE streamed) AS streamed_runs,
               coalesce(sum(poll_count), 0) AS polls, coalesce(sum(polls_unchanged), 0) AS unchanged_polls
        FROM runs WHERE {poll_where}""", poll_params)[0]
    polling["polls_per_polled_run"] = (
        round(polling["polls"] / polling["polled_runs"], 3) if polling["polled_runs"] else None
    )
    polling["unchanged_share"] = round(polling["unchanged_polls"] / polling["polls"], 4) if polling["polls"] else None
    report["polling"] = polling
    return report


# --- rendering -------------------------------------------------------------------------------

_SECTIONS: tuple[tuple[str, str], ...] = (
    ("spend_by_kind", "Spend by kind"),
    ("spend_by_api", "Spend by API generation"),
    ("top_assistants", "Top assistants"),
    ("top_models", "Top models"),
    ("unpriced_models", "Unpriced models (cost unknown, not zero)"),
    ("top_vector_stores", "Top vector stores by storage cost"),
    ("idle_vector_stores", "Idle vector stores (still billed)"),
    ("failures", "Failed runs by code, with the tokens they burnt"),
    ("failures_without_usage", "Failed runs that reported no usage"),
    ("v1_traffic", "v1 traffic still present"),
    ("polling", "Polling overhead"),
)


def _section_rows(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = report.get(key)
    if isinstance(value, dict):
        return [value]
    return list(value or [])


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if column.endswith("usd"):
            return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _headline(report: dict[str, Any]) -> str:
    window = ""
    if report["since"] or report["until"]:
        window = f" ({report['since'] or 'start'} .. {report['until'] or 'now'})"
    if report["empty"]:
        return f"The audit store is empty: no runs, exchanges or vector stores recorded yet{window}."
    runs = sum(r["runs"] for r in report["unpriced_models"])
    responses = sum(r["responses"] for r in report["unpriced_models"])
    items = [f"{n} {what}(s)" for n, what in ((runs, "run"), (responses, "response")) if n]
    tail = f"; {' and '.join(items)} on unpriced models not included" if items else ""
    return f"Total spend{window}: ${report['total_usd']:,.2f}{tail}."


@dataclass(frozen=True, slots=True)
class Layout:
    """How a report dict is rendered: its title, sections (key, title) in order, the one-line
    headline, and the top-level figures the CSV writes as `summary` rows."""

    title: str
    sections: tuple[tuple[str, str], ...]
    headline: Callable[[dict[str, Any]], str]
    summary: tuple[str, ...]
    not_in_table: frozenset[str] = frozenset()  # columns too wide for a terminal (json, csv, markdown have them)


COST_REPORT = Layout("Assistants cost audit", _SECTIONS, _headline, ("total_usd",))


def render(report: dict[str, Any], fmt: str, layout: Layout = COST_REPORT) -> str:
    """Render as `table` (rich), `markdown`, `csv` or `json`."""
    if fmt == "json":
        import orjson

        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["section", "column", "row", "value"])
        for figure in layout.summary:
            writer.writerow(["summary", figure, 0, "" if report[figure] is None else report[figure]])
        for key, _title in layout.sections:
            for i, row in enumerate(_section_rows(report, key)):
                for column, value in row.items():
                    writer.writerow([key, column, i, "" if value is None else value])
        return out.getvalue()
    sections = () if report.get("empty") else layout.sections
    if fmt == "markdown":
        lines = [f"# {layout.title}", "", layout.headline(report), ""]
        for key, title in sections:
            rows = _section_rows(report, key)
            if not rows:
                continue
            cols = list(rows[0])
            lines += [f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_cell(r[c], c).replace("|", "\\|") for c in cols) + " |" for r in rows]
            lines.append("")
        return "\n".join(lines)
    if fmt == "table":
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        buffer = io.StringIO()
        console = Console(file=buffer, width=140, force_terminal=False)
        console.print(f"[bold]{escape(layout.headline(report))}[/bold]")
        for key, title in sections:
            rows = _section_rows(report, key)
            if not rows:
                continue
            table = Table(title=title, title_justify="left")
            cols = [c for c in rows[0] if c not in layout.not_in_table]
            for c in cols:
                text = any(isinstance(r[c], str) for r in rows)
                # ids are what a reader copies: whole, on one line; other text folds
                table.add_column(c, justify="left" if text else "right", overflow="fold",
                                 no_wrap=c.endswith("_id") or c == "key_fingerprint")
            for r in rows:
                table.add_row(*(escape(_cell(r[c], c)) for c in cols))
            console.print(table)
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}")


# --- the migration report --------------------------------------------------------------------

_MIGRATION_SECTIONS: tuple[tuple[str, str], ...] = (
    ("by_api", "Calls, tokens and cost by API generation"),
    ("by_key", "Migration by key fingerprint (share of model API calls on the Responses API)"),
    ("weekly", "Week by week, per key fingerprint and SDK"),
    ("assistants", "Assistants still called, and the Responses equivalent of each tool"),
    ("vector_stores", "Vector stores and the side that reads them (storage is billed once)"),
)
# The generations a client calls a model through (`shared` calls are neither side).
_MODEL_APIS = ("assistants_v1", "assistants_v2", "foundry_agents", "responses")


def build_migration_report(
    con: Any, since: datetime | None, until: datetime | None, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """The migration report as a dict (the `--format json` output), from the migration views
    (analytics/costs.sql). Raises StoreError when the store holds no traffic of any generation."""
    step = progress or (lambda _label: None)
    step("finding API generations")
    calls, runs, responses = con.execute(
        "SELECT (SELECT count(*) FROM exchange_generations), (SELECT count(*) FROM runs), "
        "(SELECT count(*) FROM responses)").fetchone()
    if not (calls or runs or responses):
        raise StoreError("no Assistants, Responses or Foundry agents traffic recorded in this store yet: "
                         "no migration to show")
    day_where, day_params = _window("timezone('UTC', CAST(day AS TIMESTAMP))", since, until)
    report: dict[str, Any] = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    step("summing calls, tokens and cost by API generation")
    report["by_api"] = _rows(con, f"""
        SELECT api, sum(calls) AS calls, sum(tokens) AS tokens, sum(usd) AS usd, sum(unpriced_items) AS unpriced_items,
               min(strftime(day, '%G-W%V')) AS first_week, max(strftime(day, '%G-W%V')) AS last_week
        FROM migration_daily WHERE {day_where} GROUP BY api ORDER BY {_GENERATION_ORDER}, api""", day_params)
    model_apis = ", ".join(f"'{a}'" for a in _MODEL_APIS)
    by_generation = ", ".join(f"coalesce(sum(calls) FILTER (WHERE api = '{a}'), 0) AS {a}_calls" for a in _MODEL_APIS)
    share = (f"coalesce(sum(calls) FILTER (WHERE api = 'responses'), 0)"
             f" / nullif(sum(calls) FILTER (WHERE api IN ({model_apis})), 0)")
    step("measuring progress by key")
    report["by_key"] = _rows(con, f"""
        SELECT key_fingerprint, {by_generation}, round({share}, 4) AS responses_share, sum(usd) AS usd
        FROM migration_daily WHERE {day_where}
        GROUP BY key_fingerprint ORDER BY responses_share NULLS FIRST, key_fingerprint""", day_params)
    totals = con.execute(f"""
        SELECT sum(calls) FILTER (WHERE api = 'responses'), sum(calls) FILTER (WHERE api IN ({model_apis}))
        FROM migration_daily WHERE {day_where}""", day_params).fetchone()
    report["responses_calls"], report["model_api_calls"] = (int(totals[0] or 0), int(totals[1] or 0))
    report["responses_share"] = (round(report["responses_calls"] / report["model_api_calls"], 4)
                                 if report["model_api_calls"] else None)
    step("week by week")
    report["weekly"] = _rows(con, f"""
        SELECT * FROM (
            SELECT strftime(date_trunc('week', day), '%G-W%V') AS iso_week, key_fingerprint, sdk, api,
                   sum(calls) AS calls, sum(tokens) AS tokens, sum(usd) AS usd, sum(unpriced_items) AS unpriced_items
            FROM migration_daily WHERE {day_where} GROUP BY ALL)
        WHERE calls > 0 OR tokens > 0 OR usd > 0 OR unpriced_items > 0  -- not the free storage of each day
        ORDER BY iso_week, key_fingerprint NULLS LAST, sdk NULLS LAST, {_GENERATION_ORDER}""", day_params)
    step("listing assistants still called")
    runs_where, runs_params = _window("last_run_at", since, None)
    first_where, first_params = _window("first_run_at", None, until)
    report["assistants"] = _rows(con, f"""
        SELECT assistant_id, name, api, runs, {_ts('last_run_at')} AS last_run_at, tool, responses_tool,
               responses_tool_json, note
        FROM migration_assistants
        WHERE NOT deleted AND {runs_where} AND {first_where}
        ORDER BY last_run_at DESC, assistant_id, tool NULLS FIRST""", runs_params + first_params)
    step("finding vector stores used from both sides")
    report["vector_stores"] = _rows(con, f"""
        SELECT vector_store_id, name, used_by, assistants, threads, runs, responses, file_search_calls,
               usage_gib AS current_gib, storage_usd, projected_daily_usd * 30 AS projected_30d_usd
        FROM migration_vector_stores
        ORDER BY used_by = 'both' DESC, storage_usd DESC, vector_store_id""", [])
    report["assistants_still_called"] = len({r["assistant_id"] for r in report["assistants"]})
    report["vector_stores_both_sides"] = sum(r["used_by"] == "both" for r in report["vector_stores"])
    return report


def _migration_headline(report: dict[str, Any]) -> str:
    window = ""
    if report["since"] or report["until"]:
        window = f" ({report['since'] or 'start'} .. {report['until'] or 'now'})"
    share = report["responses_share"]
    moved = (f"{share:.0%} of model API calls on the Responses API ({report['responses_calls']:,} of "
             f"{report['model_api_calls']:,})" if share is not None else "no model API calls")
    return (f"Migration{window}: {moved}; {report['assistants_still_called']} assistant(s) still called; "
            f"{report['vector_stores_both_sides']} vector store(s) read by both sides.")


MIGRATION_REPORT = Layout("Assistants to Responses migration", _MIGRATION_SECTIONS, _migration_headline,
                          ("responses_share", "responses_calls", "model_api_calls", "assistants_still_called",
                           "vector_stores_both_sides"), frozenset({"responses_tool_json"}))


def open_report_connection(store: str, prices_file: str | None,
                           progress: Callable[[str], None] | None = None) -> Any:
    """The store's query connection with every model priced by `prices_file` (or the defaults),
    the store folded and priced once (`materialize`). This is most of a report's time on a big
    store: `progress` is told each phase."""
    from analytics.prices import Prices, install_report_prices
    from analytics.store import connect

    step = progress or (lambda _label: None)
    step("loading prices")
    prices = Prices.load(prices_file)
    step("opening the store")
    con = connect(store)
    try:
        step("pricing the store's models")
        install_report_prices(con, prices)
        materialize(con, step)
    except BaseException:
        con.close()
        raise
    return con


# The runs the report needs, folded with the rules of analytics/views.sql (latest non-null value
# in terminal-first, observed_at, seq order; first timestamps; polls that saw an unchanged
# status) but with an integer ordering key instead of window functions: several times faster
# on large stores. tests/analytics checks it against the runs view.
REPORT_RUNS_SQL = f"""
CREATE TEMP TABLE runs AS
WITH s AS (
    SELECT DISTINCT ON (exchange_id, seq) *,
           -- terminal first, then observed_at (us), then seq: fits a BIGINT until the year 2100
           CASE WHEN status IN ({_TERMINAL_SQL})
                THEN 4611686018427387904 ELSE 0 END
           + epoch_us(observed_at) * 1024 + least(greatest(seq, 0), 1023) AS k
    FROM run_snapshots
),
polls AS (
    SELECT run_id, count(*) FILTER (WHERE status = previous) AS polls_unchanged
    FROM (SELECT run_id, status, lag(status) OVER (PARTITION BY run_id ORDER BY observed_at, exchange_id, seq) AS previous
          FROM s WHERE source = 'retrieve')
    GROUP BY run_id
),
folded AS (
    SELECT run_id,
           arg_max(thread_id, k) FILTER (WHERE thread_id IS NOT NULL) AS thread_id,
           arg_max(assistant_id, k) FILTER (WHERE assistant_id IS NOT NULL) AS assistant_id,
           arg_max(model, k) FILTER (WHERE model IS NOT NULL) AS model,
           arg_max(status, k) FILTER (WHERE status IS NOT NULL) AS status,
           CASE WHEN bool_or(api_version = 'v1') THEN 'v1'
                ELSE arg_max(api_version, k) FILTER (WHERE api_version IS NOT NULL) END AS api_version,
           min(created_at) AS created_at, min(started_at) AS started_at, min(completed_at) AS completed_at,
           min(failed_at) AS failed_at, min(cancelled_at) AS cancelled_at,
           arg_max(last_error_code, k) FILTER (WHERE last_error_code IS NOT NULL) AS last_error_code,
           arg_max(incomplete_reason, k) FILTER (WHERE incomplete_reason IS NOT NULL) AS incomplete_reason,
           arg_max(prompt_tokens, k) FILTER (WHERE prompt_tokens IS NOT NULL) AS prompt_tokens,
           arg_max(completion_tokens, k) FILTER (WHERE completion_tokens IS NOT NULL) AS completion_tokens,
           arg_max(total_tokens, k) FILTER (WHERE total_tokens IS NOT NULL) AS total_tokens,
           nullif(arg_max(coalesce(usage_invalid, ''), k) FILTER (
               WHERE usage_invalid IS NOT NULL OR prompt_tokens IS NOT NULL OR completion_tokens IS NOT NULL
                  OR total_tokens IS NOT NULL), '') AS usage_invalid,
           coalesce(bool_or(streamed), false) AS streamed,
           count(*) FILTER (WHERE source = 'retrieve') AS poll_count,
           arg_max(key_fingerprint, k) FILTER (WHERE key_fingerprint IS NOT NULL) AS key_fingerprint
    FROM s GROUP BY run_id
)
SELECT f.*, coalesce(p.polls_unchanged, 0) AS polls_unchanged FROM folded f LEFT JOIN polls p USING (run_id)
"""
REPORT_RUNS_COLUMNS = (
    "run_id", "thread_id", "assistant_id", "model", "status", "api_version", "created_at", "started_at",
    "completed_at", "failed_at", "cancelled_at", "last_error_code", "incomplete_reason", "prompt_tokens",
    "completion_tokens", "total_tokens", "usage_invalid", "streamed", "poll_count", "key_fingerprint", "polls_unchanged",
)

# Folded views the report reads many times, in dependency order. Each becomes a TEMP table of
# the same name on the report's connection, which shadows the view for every later query (and
# for the views built on it), so the store is folded and priced once per report, not per section.
MATERIALIZED = ("run_steps", "tool_calls", "vector_stores", "vector_store_usage", "assistants",
                "threads", "exchange_generations", "run_generations", "run_costs", "responses",
                "response_tool_calls", "response_costs", "response_tool_call_times", "tool_sessions", "code_interpreter_sessions",
                "vector_store_lifetimes", "vector_store_storage_daily", "retrieval_storage_daily", "costs",
                "vector_store_uses", "vector_store_activity")


def materialize(con: Any, progress: Callable[[str], None] | None = None) -> None:
    step = progress or (lambda _label: None)
    temp_views = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal").fetchall()}
    step("folding runs")
    con.execute(REPORT_RUNS_SQL)
    for name in MATERIALIZED:
        if name not in temp_views:
            step(f"folding {name}")
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}")


@contextmanager
def progress_display(console: Any) -> Iterator[Callable[[str], None]]:
    """A transient spinner with the current phase and the time so far, on a terminal only; yields
    the callback that names the next phase (drawn at once, not at the next refresh tick)."""
    if not console.is_terminal:
        yield lambda _label: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def step(label: str) -> None:
            bar.update(task, description=label)
            bar.refresh()

        yield step


def run_report(store: str, since: str | None, until: str | None, idle_days: int, fmt: str,
               prices_file: str | None, console: Any = None, migration: bool = False) -> str:
    """Everything `assistants-audit report` does (`migration`: `report --migration`), returning
    the rendered text. Progress (on `console`, default stderr, when it is a terminal) starts
    before the store is opened, so the folding and pricing of a big store shows too."""
    from rich.console import Console

    start = parse_when(since, "--since")
    end = parse_when(until, "--until")
    if start and end and end <= start:
        raise ConfigError(f"--until {until}: must be after --since {since}")
    with progress_display(console or Console(stderr=True)) as step:
        con = open_report_connection(store, prices_file, progress=step)
        try:
            if migration:
                data, layout = build_migration_report(con, start, end, progress=step), MIGRATION_REPORT
            else:
                data, layout = build_report(con, start, end, idle_days, progress=step), COST_REPORT
        finally:
            con.close()
        step("rendering")
        return render(data, fmt, layout)
