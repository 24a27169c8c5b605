"""Run `assistants-audit` as people do (a subprocess) and check a refusal reads as promised: one
line on stderr naming what to change, the documented exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

# A command that wrongly starts serving instead of refusing fails the test here, not never.
TIMEOUT = 60


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ASSISTANTS_AUDIT_"))}
    return subprocess.run([sys.executable, "-m", "proxy.cli", *args], capture_output=True, text=True,
                          env={**environ, **(env or {})}, timeout=TIMEOUT)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    """The single stderr line, after checking it names every one of `names`."""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]
