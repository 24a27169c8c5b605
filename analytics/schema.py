"""Fact classes -> DuckDB tables. The dataclass is the schema: one table per fact class (named by
its `TABLE`), one column per field, in field order, typed from the annotation. Every column is
nullable so a fact class can gain fields (added at the end) without rewriting old segments.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from datetime import datetime
from functools import cache
from typing import Any

from proxy.facts import FACT_TYPES, Fact

_SCALARS: dict[Any, str] = {
    str: "VARCHAR",
    int: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    datetime: "TIMESTAMPTZ",
}

TABLES: dict[str, type] = {cls.TABLE: cls for cls in FACT_TYPES}

# API generations, the axis a migration moves along: the `api` of the cost and migration views
# (views.sql exchange_generations) and the `generation` metric label, one vocabulary. Vector
# stores, files and uploads are read by every generation: `shared`. `other`: no generation.
GENERATIONS = ("assistants_v1", "assistants_v2", "responses", "foundry_agents", "shared", "other")


def column_type(annotation: Any) -> str:
    """DuckDB type of a field annotation: `X | None` -> type of X, `tuple[X, ...]` -> X[]."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"datetime": datetime}, {})  # noqa: S307 - our own annotations only
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union annotation: {annotation!r}")
        return column_type(args[0])
    if origin is tuple:
        return column_type(typing.get_args(annotation)[0]) + "[]"
    try:
        return _SCALARS[annotation]
    except KeyError:
        raise TypeError(f"no DuckDB column type for annotation {annotation!r}") from None


@cache
def columns(fact_cls: type) -> tuple[tuple[str, str], ...]:
    """((column, duckdb type), ...) in field order."""
    hints = typing.get_type_hints(fact_cls)
    return tuple((f.name, column_type(hints[f.name])) for f in fields(fact_cls))


def ddl(fact_cls: type, table: str | None = None) -> str:
    """CREATE TABLE statement for the raw table of a fact class."""
    cols = ",\n  ".join(f'"{name}" {ctype}' for name, ctype in columns(fact_cls))
    return f'CREATE TABLE IF NOT EXISTS "{table or fact_cls.TABLE}" (\n  {cols}\n)'


@cache
def _field_names(fact_cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(fact_cls))


def to_row(fact: Fact) -> tuple[Any, ...]:
    """Column values in field order; datetimes stay datetimes, tuples become lists."""
    return tuple(list(v) if isinstance(v, tuple) else v for v in map(fact.__getattribute__, _field_names(type(fact))))
