"""`assistants-audit bench` / `python -m bench`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bench.soak import main as soak_main


@click.group("bench", invoke_without_command=True)
@click.option("--smoke", is_flag=True, help="A short run (about a minute) that CI uses so the benchmark cannot rot.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(__file__).with_name("results.md"), show_default=True, help="Where to write the results.")
@click.option("--strict", is_flag=True, help="Exit 1 when a target is missed (by default targets only print).")
@click.pass_context
def bench(ctx: click.Context, smoke: bool, out_file: Path, strict: bool) -> None:
    """Measure what recording costs: direct, nginx, a bare forwarder, and the proxy (1 and 2 workers),
    for Assistants and Responses traffic; then outsized Responses bodies through the proxy (peak RSS).

    \b
    Example:
      assistants-audit bench            # full run, writes bench/results.md
      assistants-audit bench --smoke --out /tmp/results.md
      assistants-audit bench soak --minutes 10   # the soak test (bench/soak.py)
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from bench.run import FULL, SMOKE, run

    console = Console(stderr=True)
    try:
        ok = run(SMOKE if smoke else FULL, out_file, console)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if strict and not ok:
        sys.exit(1)


bench.add_command(soak_main, "soak")
