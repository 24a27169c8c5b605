"""`assistants-audit emulator`: help with an example, usage errors, and a real served process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from emulator.cli import emulator
from tests.emulator.rawhttp import raw
from tests.serving.test_config import readme_section
from tests.servers import free_port


def test_help_has_an_example():
    result = CliRunner().invoke(emulator, ["--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "assistants-audit emulator --listen" in result.output


def test_bad_options_are_usage_errors():
    runner = CliRunner()
    assert runner.invoke(emulator, ["--listen", "nonsense"]).exit_code == 2
    assert runner.invoke(emulator, ["--time-scale", "0"]).exit_code == 2
    bad_fault = runner.invoke(emulator, ["--fault", "explode"])
    assert bad_fault.exit_code == 2 and "--fault" in bad_fault.output


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    """`assistants-audit emulator` as a process on a free port, once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "emulator", "--listen", f"127.0.0.1:{port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            raw(url, "GET", "/v1/files")
            return proc, url
        except ConnectionRefusedError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.terminate()
    raise AssertionError(proc.stderr.read().decode()[-2000:] if proc.wait(10) is not None else "never listened")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def _assistant_id(url: str) -> str:
    status, headers, body = raw(url, "POST", "/v1/assistants", {"model": "gpt-4o"})
    assert status == 200, body
    return json.loads(body)["id"]


def test_serves_the_api_as_a_process():
    proc, url = _serve("--step-clock", "--seed", "3")
    try:
        assert _assistant_id(url).startswith("asst_")
    finally:
        _stop(proc)


def test_ids_differ_across_starts_unless_a_seed_is_given():
    """A proxy store kept across emulator restarts keys objects by id: a second start must not
    hand out the first one's ids again. `--seed N` still repeats them, on purpose."""
    ids = {}
    for name, args in {"first": (), "second": (), "seeded": ("--seed", "5"), "seeded again": ("--seed", "5")}.items():
        proc, url = _serve("--step-clock", *args)
        try:
            ids[name] = (_assistant_id(url), _assistant_id(url))
        finally:
            _stop(proc)
    assert not set(ids["first"]) & set(ids["second"]), ids
    assert ids["seeded"] == ids["seeded again"]


@pytest.mark.parametrize("port", ["99999", "65536", "0"])
def test_out_of_range_port_is_a_usage_error(port):
    """Port 99999 used to be announced while the OS bound some other, random port."""
    proc = subprocess.run([sys.executable, "-m", "proxy.cli", "emulator", "--listen", f"127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--listen" in errors[0] and port in errors[0], proc.stderr
    assert "listening" not in proc.stderr


def _default_text(option: click.Option) -> str:
    if option.is_flag and not option.secondary_opts:
        return "off"
    return "none" if option.default is None else str(option.default)


def test_readme_emulator_section_documents_every_option():
    """Each option of `assistants-audit emulator` has a row `| `--name` | default | ... |` in the
    README's emulator section, and the table documents no option the command lacks."""
    section = readme_section("emulator")
    options = [p for p in emulator.params if isinstance(p, click.Option) and p.name != "help"]
    for option in options:
        usage = " / ".join(option.opts + option.secondary_opts)
        assert f"| `{usage}` | {_default_text(option)} |" in section, option.name
    documented = set(re.findall(r"^\| `(--[a-z-]+)", section, re.MULTILINE))
    assert documented == {o for option in options for o in option.opts}
