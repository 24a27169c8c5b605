"""A read never writes: opening the store's views, its views fingerprint, `sql` and `report` leave
every file under the store as it was, and still price the runs (in memory, on the connection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics import store as audit_store
from tests.analytics import workload as W
from tests.analytics.storebuild import write_store
from tests.clierrors import run_cli


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _open_and_query(store: Path) -> None:
    st = audit_store.open_store(store)
    try:
        _, rows = st.query("SELECT sum(usd) FROM costs WHERE kind = 'tokens'")
    finally:
        st.close()
    assert rows[0][0] and rows[0][0] > 0  # priced, although the store has no price tables


def _connect(store: Path) -> None:
    audit_store.connect(store).close()


def _fingerprint(store: Path) -> None:
    audit_store.views_fingerprint(store)
    audit_store.views_db_current(store)


def _sql_command(store: Path) -> None:
    done = run_cli("sql", "--store", str(store), "SELECT count(*) FROM run_costs")
    assert done.returncode == 0, done.stderr


def _report_command(store: Path) -> None:
    done = run_cli("report", "--store", str(store), "--format", "json")
    assert done.returncode == 0 and '"total_usd"' in done.stdout, done.stderr


@pytest.mark.parametrize("read", [_open_and_query, _connect, _fingerprint, _sql_command, _report_command])
def test_reading_changes_no_file_of_the_store(tmp_path, read):
    store = write_store(tmp_path / "audit", W.workload_facts() + W.exchange_facts())
    before = _files(store)
    read(store)
    assert _files(store) == before
