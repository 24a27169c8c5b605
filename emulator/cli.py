"""`assistants-audit emulator`: serve the offline Assistants API emulator."""

from __future__ import annotations

import asyncio

import click
from aiohttp import web

from emulator import faults
from emulator.app import EmulatorSettings, make_app
from emulator.errors import ApiError


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--listen")
    # The OS would take 99999 modulo nothing and bind some other port than the one announced.
    if not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"port must be 1-65535, got {port}", param_hint="--listen")
    return host or "127.0.0.1", int(port)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", default="127.0.0.1:8081", show_default=True, help="HOST:PORT to serve on.")
@click.option("--seed", default=None, type=int,
              help="Seed for ids (same seed + calls = same ids); default: a new one each start, so ids never repeat.")
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Emulated seconds per real second (10 = runs finish ten times faster).")
@click.option("--step-clock", is_flag=True,
              help="Instead of wall time, advance the clock one step per request (fully deterministic).")
@click.option("--phase-seconds", default=1.0, show_default=True, type=float,
              help="Emulated duration of each run phase (queued, each tool step, the reply).")
@click.option("--file-processing-seconds", default=2.0, show_default=True, type=float,
              help="Emulated time a vector store file stays in_progress.")
@click.option("--poll-after-ms", default=500, show_default=True, type=int,
              help="Value of the openai-poll-after-ms header the SDK polls with.")
@click.option("--latency-ms", default=0, show_default=True, type=int, help="Latency added to every response.")
@click.option("--fault", default=None, help="Fault applied to every request without an X-Emulator-Fault header "
                                            "(same grammar, e.g. 'status=503,first=1').")
@click.option("--no-faults", is_flag=True, help="Ignore X-Emulator-Fault headers.")
def emulator(listen: str, seed: int | None, time_scale: float, step_clock: bool, phase_seconds: float,
             file_processing_seconds: float, poll_after_ms: int, latency_ms: int, fault: str | None,
             no_faults: bool) -> None:
    """Run the offline Assistants API emulator (v1 and v2, files, vector stores).

    Point any OpenAI SDK at it: base_url=http://HOST:PORT/v1 with any API key (Azure style:
    http://HOST:PORT/openai with ?api-version=...; Azure AI Foundry agents:
    http://HOST:PORT/api/projects/NAME with ?api-version=v1 and a bearer token). Run behaviour is
    scripted from the input and faults are injected with the X-Emulator-Fault header; see
    emulator/SCRIPT.md.

    \b
    Example:
      assistants-audit emulator --listen 127.0.0.1:8081 --time-scale 10
      OPENAI_BASE_URL=http://127.0.0.1:8081/v1 OPENAI_API_KEY=sk-local python my_assistant.py
    """
    host, port = parse_listen(listen)
    if time_scale <= 0:
        raise click.BadParameter("must be > 0", param_hint="--time-scale")
    try:
        faults.parse(fault)
    except ApiError as err:
        raise click.BadParameter(err.message, param_hint="--fault") from None
    settings = EmulatorSettings(
        seed=seed, time_scale=None if step_clock else time_scale, phase_seconds=phase_seconds,
        file_processing_seconds=file_processing_seconds, poll_after_ms=poll_after_ms, latency_ms=latency_ms,
        faults_enabled=not no_faults, default_fault=fault)
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    click.echo(f"emulator listening on http://{host}:{port}/v1 (Azure: /openai)", err=True)
    try:
        web.run_app(make_app(settings), host=host, port=port, print=None)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
