"""Shared by the dashboard tests: read the generated dashboards and pull out their PromQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JSON_DIR = ROOT / "dashboards" / "json"

# What Grafana would substitute when a user opens a dashboard with the defaults (All = .*).
TEMPLATE_VALUES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$operation": ".*",
    "$model": ".*",
}


def committed_dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def all_panels(board: dict) -> Iterator[dict]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def panel_queries(boards: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL with template variables substituted) for every target."""
    out = []
    for name, board in boards.items():
        for panel in all_panels(board):
            for target in panel.get("targets", []):
                out.append((name, panel["title"], substitute(target["expr"])))
    return out


def variable_queries(boards: dict[str, dict]) -> set[tuple[str, str]]:
    """(metric, label) of every `label_values(metric, label)` template variable."""
    out = set()
    for board in boards.values():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
                metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query).groups()
                out.add((metric, label))
    return out


def substitute(expr: str) -> str:
    # Longest names first so $__rate_interval is not eaten by a shorter prefix.
    for var in sorted(TEMPLATE_VALUES, key=len, reverse=True):
        expr = expr.replace(var, TEMPLATE_VALUES[var])
    left = re.findall(r"\$\{?\w+", expr)
    assert not left, f"unsubstituted template variables {left} in {expr}"
    return expr


def require_binary(name: str) -> str:
    """Path of `name`; a missing binary fails the test under CI and skips it elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (Debian package `prometheus`)"
        if os.environ.get("CI"):
            pytest.fail(message + " and CI is set")
        pytest.skip(message)
    return path


def stop_process(process) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 20 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
