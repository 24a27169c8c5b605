"""The one console script, `assistants-audit`. Each subcommand lives in the package it belongs to
and is registered here by import path, so a command's dependencies load only when it runs."""

from __future__ import annotations

import importlib
import sys

import click

from proxy import __version__
from proxy.config import ConfigError

# name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "serve": "proxy.serve:serve",
    "emulator": "emulator.cli:emulator",
    "sql": "analytics.cli:sql",
    "report": "analytics.cli:report",
    "demo": "proxy.demo.run:demo",
    "dashboards": "dashboards.cli:dashboards",
    "bench": "bench.cli:bench",
}

_HELP = {
    "serve": "Run the recording proxy in front of an Assistants API upstream.",
    "emulator": "Run the offline Assistants API emulator (v1 and v2).",
    "sql": "Run a SQL query against the audit store.",
    "report": "Print the cost and usage audit report.",
    "demo": "Emulator + proxy + scripted workload, then the report. No API key needed.",
    "dashboards": "Build the Grafana dashboards (JSON) from code.",
    "bench": "Run the side-by-side benchmark.",
}


class OptionError(click.ClickException):
    """A bad option or environment value: one line naming it, exit 2, and no usage block (the
    line already says what to change)."""

    exit_code = 2


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:  # raised by the library (settings, OTEL_*, --store, --prices ...)
            raise OptionError(str(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="assistants-audit")
def main() -> None:
    """Observability and cost audit for the OpenAI Assistants API.

    \b
    Example:
      assistants-audit serve --upstream https://my-resource.openai.azure.com
      assistants-audit demo
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
