"""Commands over the audit store: `sql` and `report` (built by analytics.report).

Shared options are decorators (`store_option`, `format_option`) so every store command spells
them the same way; `render` turns (columns, rows) into table | markdown | csv | json.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import orjson

from analytics.prices import PricesError
from analytics.report import run_report
from analytics.store import StoreError, open_store
from proxy.cli import OptionError
from proxy.config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "markdown", "csv", "json")


def store_option(fn: F) -> F:
    return click.option(
        "--store", "store", default="./audit", show_default=True, envvar="ASSISTANTS_AUDIT_STORE",
        type=click.Path(file_okay=False), help="The audit store directory (what `serve --store` wrote).",
    )(fn)


def format_option(fn: F) -> F:
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
        help="Output format.",
    )(fn)


# --- rendering -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e15 else f"{value:.1f}"
    return str(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps([dict(zip(columns, r)) for r in rows], default=str,
                            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in r] for r in rows])
        return buffer.getvalue().rstrip("\n")
    if fmt == "markdown":
        def cell(v: Any) -> str:
            return _text(v).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
                 "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
        return "\n".join(lines)
    if fmt == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False, header_style="bold")
        numeric = [any(r[i] is not None for r in rows)
                   and all(isinstance(r[i], (int, float)) or r[i] is None for r in rows)
                   for i in range(len(columns))]
        for name, is_num in zip(columns, numeric):
            table.add_column(name, justify="right" if is_num else "left", overflow="fold")
        for r in rows:
            table.add_row(*("[dim]NULL[/dim]" if v is None else _text(v).replace("[", "\\[") for v in r))
        buffer = io.StringIO()
        Console(file=buffer, width=200, force_terminal=False, color_system=None).print(table)
        return buffer.getvalue().rstrip("\n") + f"\n{len(rows)} row{'s' if len(rows) != 1 else ''}"
    raise ValueError(f"unknown format {fmt!r}")


# --- commands --------------------------------------------------------------------------------


@click.command("sql")
@click.argument("query")
@store_option
@format_option
def sql(query: str, store: str, fmt: str) -> None:
    """Run a read-only SQL QUERY against the audit store and print the result.

    The store can be queried at any time, also while proxies are writing to it. Views: exchanges,
    exchange_generations, runs, run_steps, tool_calls, file_search_results, vector_stores,
    vector_store_usage, vector_store_files, assistants, threads, messages, files,
    attached_file_events, attached_file_intervals, responses, response_tool_calls,
    response_file_search_results, conversations, conversation_items (and the raw
    *_log/*_observations tables). Cost views (USD): costs, run_costs, response_costs,
    response_tool_call_costs, cost_by_day, cost_by_assistant, cost_by_model, cost_by_key,
    run_generations, code_interpreter_sessions, code_interpreter_calls,
    response_tool_call_times, response_container_sessions, tool_sessions,
    vector_store_storage_daily, retrieval_storage_daily, vector_store_activity, vector_store_uses,
    vector_store_lifetimes, storage_intervals, storage_days, api_version_usage, polling_overhead;
    migration: migration_daily, migration_weekly, migration_assistants, migration_vector_stores;
    prices: model_prices, tool_prices. Only SELECT, DESCRIBE, SHOW, SUMMARIZE and EXPLAIN are
    accepted.

    \b
    Example:
      assistants-audit sql "SELECT operation, count(*) FROM exchanges GROUP BY 1 ORDER BY 2 DESC"
      assistants-audit sql "SELECT run_id, status, total_tokens FROM runs" --format csv
    """
    try:
        st = open_store(store)
        try:
            columns, rows = st.query(query)
        finally:
            st.close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render(columns, rows, fmt))


@click.command("report")
@store_option
@click.option("--since", help="Start of the window (YYYY-MM-DD or ISO datetime, UTC).")
@click.option("--until", help="End of the window, exclusive (default: now).")
@click.option("--idle-days", default=30, show_default=True, type=click.IntRange(min=0),
              help="A live vector store no run used for this many days is reported idle.")
@format_option
@click.option("--prices", "prices_file", envvar="ASSISTANTS_AUDIT_PRICES", type=click.Path(dir_okay=False),
              help="JSON or YAML file overriding token, storage or tool prices.")
@click.option("--migration", is_flag=True,
              help="Print the migration report instead: calls, tokens and cost by API generation per key, "
                   "SDK and week; assistants still called with the Responses equivalent of their tools; "
                   "vector stores read by both sides.")
def report(store: str, since: str | None, until: str | None, idle_days: int, fmt: str,
           prices_file: str | None, migration: bool) -> None:
    """Print the cost and usage audit report of an audit store.

    Spend by kind and by API generation, top assistants and models, vector stores by storage
    cost with their projected 30-day cost, idle stores still billed, failures with the tokens
    they burnt, v1 traffic still present, and polling overhead. With --migration: the move from
    the Assistants API (v1, v2, Azure AI Foundry agents) to the Responses API.

    \b
    Example:
      assistants-audit report --store ./audit --since 2025-06-01 --format markdown
      assistants-audit report --store ./audit --migration --format json
    """
    try:
        click.echo(run_report(store, since, until, idle_days, fmt, prices_file, migration=migration),
                   nl=fmt != "table")
    except (ConfigError, PricesError) as exc:  # a bad option value: exit 2, worded as `serve --prices` words it
        raise OptionError(str(exc)) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
