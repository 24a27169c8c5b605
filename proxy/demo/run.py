"""`assistants-audit demo`: the whole product on one machine, offline, in under a minute.

The emulator and the proxy run in this process (each on its own loopback port and event loop,
in threads), the scripted workload drives them through the official `openai` SDK (Assistants v1,
Assistants v2 and the Responses API with one key), and the audit report, a summary of the
Responses side and the migration report are printed at the end. No API key, no network.
`--traffic-only` drives the workload against a proxy that is already running (the docker-compose
`demo` profile uses it).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analytics.cli import report as report_command
from analytics.store import connect
from proxy.logs import configure_logging
from proxy.demo.workload import Workload, WorkloadResult

DEMO_KEY = "sk-demo-not-a-real-key"
REPORT_WIDTH = 140


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<45}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def drive(base_url: str, rounds: int, console: Console, api_key: str = DEMO_KEY) -> Any:
    workload = Workload(base_url, api_key, rounds=rounds)
    with _progress(console) as progress:
        task = progress.add_task("workload", total=workload.total_steps())

        def tick(what: str) -> None:
            progress.update(task, advance=1, description=what)

        workload.progress = tick
        result = workload.run()
        progress.update(task, completed=workload.total_steps(), description="workload done")
    return result


class DemoServers:
    """The emulator and, in front of it, the recording proxy, each on its own loopback port.

    The emulator runs on a step clock (every request moves it one second, so runs finish after a
    few polls) that starts now: the proxy stamps what it records with the wall clock, and runs,
    storage and idle times must all fall on the same days. The proxy is served like `serve`
    serves it, with proxy.serving.guard's connection guards."""

    def __init__(self, store: Path, capture_content: bool = False) -> None:
        from emulator.app import EmulatorSettings
        from emulator.app import make_app as make_emulator
        from proxy.serving.app import make_app as make_proxy
        from proxy.config import Settings
        from proxy.serving.guard import ProxyRunner
        from proxy.recording.local import build_recorder
        from proxy.demo.threaded import ServerThread, free_port

        # No seed: a store kept with --keep-store must get new ids, not the last run's again.
        emulator_settings = EmulatorSettings(poll_after_ms=1, start_time=time.time())
        self.emulator = ServerThread(lambda: make_emulator(emulator_settings)).start()
        proxy_port = free_port()
        settings = Settings.from_env_and_args(
            {"upstream": self.emulator.url, "listen": f"127.0.0.1:{proxy_port}", "admin_listen": None,
             "store": str(store), "capture_content": capture_content},
            env={},
        )
        # the journal appender and the recorder loop in this one process (serve runs them apart)
        self.recorder = build_recorder(settings).start()
        try:
            self.proxy = ServerThread(lambda: make_proxy(settings, self.recorder, worker="demo"),
                                      port=proxy_port, runner=ProxyRunner).start()
        except BaseException:
            self._close_rest()
            raise

    def close(self) -> None:
        """Stop serving; on return every exchange is in the store."""
        self.proxy.stop()
        self._close_rest()

    def _close_rest(self) -> None:
        self.recorder.close()  # every journaled exchange is stored on return
        self.emulator.stop()


# Marks a store directory as made by `demo`, so a later run may delete it: never someone's real store.
DEMO_MARKER = ".assistants-audit-demo"


def fresh_store(store: Path, keep: bool, console: Console) -> None:
    """Empty the demo's store, or keep it with a note that the report covers earlier runs too."""
    if store.is_dir() and any(store.iterdir()):
        if keep:
            console.print(f"appending to the store in {store}: the report covers its earlier runs too")
            return
        if not (store / DEMO_MARKER).is_file():
            raise click.UsageError(f"--store {store}: not empty and not made by demo; "
                                   "give a new directory, or --keep-store to append to it")
        shutil.rmtree(store)
    store.mkdir(parents=True, exist_ok=True)
    (store / DEMO_MARKER).touch()


def run_demo(store: Path, rounds: int, capture_content: bool, console: Console) -> dict[str, Any]:
    """Emulator + proxy + workload; returns what the workload did. The store is complete on return."""
    servers = DemoServers(store, capture_content)
    console.print(f"emulator on {servers.emulator.url}, proxy on {servers.proxy.url} (store: {store})")
    started = time.monotonic()
    try:
        result = drive(f"{servers.proxy.url}/v1", rounds, console)
    finally:
        servers.close()
    return {"result": result, "seconds": time.monotonic() - started}


def print_report(store: Path, *options: str) -> None:
    report_command.main(["--store", str(store), *options], standalone_mode=False)


def responses_summary(store: Path) -> dict[str, Any]:
    """The Responses side of the store, from its views: calls, responses, tokens, tool calls by type."""
    con = connect(store)
    try:
        def rows(sql: str) -> list[dict[str, Any]]:
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

        calls = dict(con.execute(
            "SELECT api, count(*) FROM exchanges WHERE origin = 'client' GROUP BY api").fetchall())
        statuses = dict(con.execute("SELECT status, count(*) FROM responses GROUP BY status").fetchall())
        return {
            "calls": {api: calls.get(api, 0) for api in ("responses", "conversations")},
            "statuses": statuses,
            "conversations": con.execute("SELECT count(*) FROM conversations").fetchone()[0],
            "models": rows("""
                SELECT model, count(*) AS responses, count(*) FILTER (WHERE streamed) AS streamed,
                       count(*) FILTER (WHERE background) AS background, sum(input_tokens) AS input_tokens,
                       sum(cached_input_tokens) AS cached_input_tokens, sum(output_tokens) AS output_tokens,
                       sum(reasoning_tokens) AS reasoning_tokens
                FROM responses GROUP BY model ORDER BY responses DESC, model"""),
            "tool_calls": rows("""
                SELECT type, count(*) AS calls, count(*) FILTER (WHERE status = 'completed') AS completed,
                       count(*) FILTER (WHERE output_submitted) AS outputs_sent_back,
                       count(DISTINCT container_id) AS containers,
                       list_sort(list_distinct(flatten(list(vector_store_ids)))) AS vector_stores
                FROM response_tool_calls GROUP BY type ORDER BY calls DESC, type"""),
        }
    finally:
        con.close()


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in rows[0]:
        table.add_column(column, justify="left" if isinstance(rows[0][column], (str, list)) else "right")
    for row in rows:
        table.add_row(*("-" if v is None else ", ".join(v) or "-" if isinstance(v, list) else f"{v:,}"
                        if isinstance(v, int) else str(v) for v in row.values()))
    return table


def print_responses_summary(store: Path, console: Console) -> None:
    summary = responses_summary(store)
    calls, statuses = summary["calls"], summary["statuses"]
    # laid out at the report's width (analytics.report renders at 140 columns), wherever it goes
    buffer = io.StringIO()
    out = Console(file=buffer, width=REPORT_WIDTH, force_terminal=console.is_terminal)
    out.print(
        f"[bold]Responses API[/]: {calls['responses']} calls to /responses, {calls['conversations']} to "
        f"/conversations; {sum(statuses.values())} responses "
        f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), {summary['conversations']} conversation(s)"
    )
    if summary["models"]:
        out.print(_table("Responses by model", summary["models"]))
    if summary["tool_calls"]:
        out.print(_table("Response tool calls by type", summary["tool_calls"]))
    console.out("\n" + buffer.getvalue(), end="", highlight=False)


def print_results(store: Path, outcome: dict[str, Any], console: Console) -> None:
    """What the demo prints once the store is complete: a summary of the workload, the audit
    report, the Responses side, the migration report, and queries to explore the store with."""
    result: WorkloadResult = outcome["result"]
    statuses: dict[str, int] = {}
    for status in result.runs.values():
        statuses[status] = statuses.get(status, 0) + 1
    console.print(
        f"\n[bold]{len(result.runs)} runs[/] ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), "
        f"{result.streamed_runs} streamed, [bold]{len(result.responses)} responses[/], "
        f"{len(result.vector_stores)} vector stores, {len(result.assistants)} assistants "
        f"in {outcome['seconds']:.1f}s\n"
    )
    print_report(store)
    print_responses_summary(store, console)
    console.print()
    print_report(store, "--migration")
    console.print("\n[bold]Explore the store[/]")
    for command in (
        f'assistants-audit sql --store {store} "select operation, count(*) n, round(avg(duration_ms),1) avg_ms '
        f'from exchanges group by 1 order by 2 desc"',
        f'assistants-audit sql --store {store} "select run_id, model, status, api_version, last_error_code, '
        f'total_tokens, poll_count from runs"',
        f'assistants-audit sql --store {store} "select id, model, status, streamed, background, polls, '
        f'input_tokens, output_tokens from responses"',
        f'assistants-audit sql --store {store} "select response_id, type, status, vector_store_ids, container_id '
        f'from response_tool_calls"',
        f'assistants-audit sql --store {store} "select * from vector_stores"',
        f"assistants-audit report --store {store} --format markdown",
        f"assistants-audit report --store {store} --migration --format json",
        f"python3 -c \"import duckdb; print(duckdb.connect('{store}/audit.duckdb', read_only=True)"
        f".sql('select * from costs limit 20'))\"",
    ):
        console.print(f"  {command}", soft_wrap=True)


@click.command("demo")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=Path("./audit-demo"),
              show_default=True,
              help="Where the demo's audit store is written (kept afterwards; emptied by the next demo).")
@click.option("--keep-store", is_flag=True, help="Append to the store of an earlier demo instead of starting afresh.")
@click.option("--rounds", type=click.IntRange(1, 100), default=3, show_default=True,
              help="How many rounds of the scripted workload to run (each: 5 runs of different kinds and 2 responses).")
@click.option("--capture-content", is_flag=True, help="Also record message text, instructions and tool I/O.")
@click.option("--traffic-only", is_flag=True,
              help="Only drive the workload against --base-url (a proxy already running); no emulator, no report.")
@click.option("--base-url", default=None, help="With --traffic-only: the proxy's base URL, e.g. http://proxy:8080/v1.")
@click.option("--repeat", type=click.IntRange(0), default=1, show_default=True,
              help="With --traffic-only: how many times to run the workload (0 = forever, for a live dashboard).")
def demo(store: Path, keep_store: bool, rounds: int, capture_content: bool, traffic_only: bool,
         base_url: str | None, repeat: int) -> None:
    """Run the emulator, the proxy and a mixed workload, then print the audit report.

    The workload is one team in mid-migration: Assistants v1 and v2 runs and Responses API calls
    (tools, a conversation, a background response) over the same vector store, so the report, the
    Responses summary and the migration report (`report --migration`) after it show both sides.

    Needs no API key and no network: the upstream is the built-in emulator. Afterwards the store
    is kept, so you can query it; the next demo empties it first (--keep-store appends instead).

    \b
    Example:
      assistants-audit demo
      assistants-audit demo --rounds 10 --store /tmp/demo-store
      assistants-audit demo --traffic-only --base-url http://127.0.0.1:8080/v1 --repeat 0
    """
    console = Console()
    configure_logging(logging.WARNING)
    if traffic_only:
        if not base_url:
            raise click.UsageError("--traffic-only needs --base-url")
        count = 0
        while repeat == 0 or count < repeat:
            drive(base_url, rounds, console, api_key=os.environ.get("OPENAI_API_KEY", DEMO_KEY))
            count += 1
        return
    if base_url:
        raise click.UsageError("--base-url goes with --traffic-only")
    fresh_store(store, keep_store, console)
    outcome = run_demo(store, rounds, capture_content, console)
    print_results(store, outcome, console)
