"""`assistants-audit dashboards build`: render the dashboards from code to JSON files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dashboards.render import JSON_DIR, render_all


@click.group("dashboards", context_settings={"help_option_names": ["-h", "--help"]})
def dashboards() -> None:
    """Grafana dashboards as code (Latency, Failures, Vector-store storage & cost, Cost & usage,
    Responses & migration).

    \b
    Example:
      assistants-audit dashboards build
      assistants-audit dashboards build --check
    """


@dashboards.command("build")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=JSON_DIR,
    show_default=True,
    help="Directory to write one <name>.json per dashboard into.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files in --out are not up to date.")
def build(out_dir: Path, check: bool) -> None:
    """Render every dashboard to JSON (the files Grafana provisions).

    \b
    Example:
      assistants-audit dashboards build --out /tmp/dashboards
    """
    rendered = render_all()
    if check:
        stale = [name for name, text in rendered.items() if _read(out_dir / name) != text]
        if stale:
            raise click.ClickException(
                f"out of date in {out_dir}: {', '.join(stale)} (run `assistants-audit dashboards build`)"
            )
        click.echo(f"{len(rendered)} dashboards up to date in {out_dir}")
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (out_dir / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write dashboards to {out_dir}: {exc.strerror}") from None
    click.echo(f"wrote {len(rendered)} dashboards to {out_dir}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def main() -> None:
    """`python -m dashboards` with no arguments builds."""
    dashboards.main(args=sys.argv[1:] or ["build"], prog_name="python -m dashboards")
