"""Build audit-store content directly from facts (no proxy needed): Parquet segments laid out
as analytics.store expects, so the real read path (analytics.store.connect + views + costs)
is what the tests exercise."""

from __future__ import annotations

import dataclasses
import typing
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import duckdb

from analytics import store as audit_store
from proxy.assistants import facts as F

def fact(cls: type, **values: object) -> object:
    """A fact with every field not given set to its empty value (None, False, (), 0 for seq)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        hint = hints[f.name]
        if f.name == "seq":
            values[f.name] = 0
        elif hint is bool:
            values[f.name] = False
        elif typing.get_origin(hint) is tuple:
            values[f.name] = ()
        else:
            values[f.name] = None
    return cls(**values)


def write_store(store: Path, facts: Iterable[object]) -> Path:
    """Write `facts` as one segment per table (and empty schema segments for the others)."""
    by_table: dict[type, list[object]] = defaultdict(list)
    for item in facts:
        by_table[type(item)].append(item)
    con = duckdb.connect()
    try:
        audit_store.ensure_schema_segments(store, con)
        for cls, items in by_table.items():
            cols = audit_store.table_columns(cls)
            con.execute(f"CREATE OR REPLACE TABLE t ({', '.join(f'{n} {t}' for n, t in cols)})")
            marks = ", ".join("?" * len(cols))
            rows = [tuple(getattr(i, n) for n, _ in cols) for i in items]
            con.executemany(f"INSERT INTO t VALUES ({marks})", [list(r) for r in rows])
            directory = audit_store.tables_dir(store) / cls.TABLE
            name = audit_store.segment_filename("t", (0, 0), (0, len(rows)))
            con.execute(f"COPY t TO '{directory / name}' (FORMAT parquet)")
    finally:
        con.close()
    return store


def connect(store: Path) -> duckdb.DuckDBPyConnection:
    """The store's own query connection (raw tables + analytics/views.sql)."""
    return audit_store.connect(store)


__all__ = ["F", "fact", "write_store", "connect"]
