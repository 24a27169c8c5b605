"""Dashboards -> JSON text, deterministic so the committed files can be compared byte for byte."""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import DASHBOARDS

JSON_DIR = Path(__file__).resolve().parent / "json"


def render(name: str) -> str:
    board = DASHBOARDS[name]().build()
    return JSONEncoder(sort_keys=True, indent=2).encode(board) + "\n"


def render_all() -> dict[str, str]:
    """file name -> JSON text, for every dashboard."""
    return {f"{name}.json": render(name) for name in DASHBOARDS}
