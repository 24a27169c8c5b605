"""A reader that stops early never hangs: reading the first row of a cost view, then closing the
connection, returns at once.

DuckDB 2.0 hung forever (a busy loop in `Executor::CancelTasks`) when a connection was closed
while a recursive CTE of an unfinished result was still running; `tool_sessions` was one, under
`costs` and every cost view, so `fetchone()` then `close()` on `costs` hung a report, a notebook or
this suite (the CI run that timed out). The reads run in a child process so that a hang fails
this test at its deadline instead of stalling the run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.analytics.storebuild import write_store
from tests.analytics.test_response_costs import mixed_facts
from tests.recording.store_helpers import ROOT

ROUNDS = 8  # with the recursive CTE, DuckDB 2.0.1 hung within the first 5 rounds each time it was tried
QUERIES = (
    "SELECT kind FROM costs WHERE response_id = 'resp_bad'",  # the query of the CI run that hung
    "SELECT * FROM tool_sessions",
    "SELECT * FROM response_container_sessions",
    "SELECT * FROM cost_by_model",
)
DEADLINE_S = 240  # generous: a round takes a few seconds on a loaded machine; a hang never ends

READER = textwrap.dedent("""
    import sys
    from analytics import store as audit_store
    from analytics.prices import Prices, install_report_prices

    store, rounds, queries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    prices = Prices.load()
    for _ in range(rounds):
        for query in queries:
            con = audit_store.connect(store)
            install_report_prices(con, prices)  # as `report` and the cost tests do
            first = con.execute(query).fetchone()  # the rest of the result is left unread
            assert first is not None, query
            con.close()
        print("round", flush=True)
""")


def test_first_row_then_close_returns_for_the_cost_views(tmp_path: Path) -> None:
    store = write_store(tmp_path / "audit", mixed_facts())
    try:
        done = subprocess.run([sys.executable, "-c", READER, str(store), str(ROUNDS), *QUERIES], cwd=ROOT,
                              capture_output=True, text=True, timeout=DEADLINE_S)
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"a reader closing an unfinished result hung ({DEADLINE_S} s): "
                             f"{(hung.stdout or b'')!r}") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["round"] * ROUNDS
