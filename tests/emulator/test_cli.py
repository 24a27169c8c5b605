"""`assistants-audit emulator`: help with an example, usage errors, and a real served process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import click
from click.testing import CliRunner

from emulator.cli import emulator
from tests.emulator.rawhttp import raw
from tests.proxy.test_config import readme_section
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


def test_serves_the_api_as_a_process():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "proxy.cli", "emulator", "--listen", f"127.0.0.1:{port}",
                             "--step-clock", "--seed", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                status, headers, body = raw(url, "POST", "/v1/assistants", {"model": "gpt-4o"})
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            raise AssertionError(proc.stderr.read1().decode() if proc.poll() is not None else "never listened")
        assert status == 200 and json.loads(body)["id"].startswith("asst_")
    finally:
        proc.terminate()
        proc.wait(10)


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
