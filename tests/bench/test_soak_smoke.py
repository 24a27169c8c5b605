"""The soak test's short form: 20 seconds of mixed SDK traffic with faults through a real
`assistants-audit serve`. Asserted: it completes, nothing answered is missing from the store (or
in it twice), every fault was injected, and the sampled figures are there. Its flatness verdict
(RSS, fds) needs minutes, so it is printed, not asserted (no timing assertion here); the
backlog must still drain."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_soak_smoke_loses_no_record_and_samples_every_figure(tmp_path):
    out, figures_file = tmp_path / "soak.md", tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "bench.soak", "--seconds", "20", "--workers", "2",
                           "--sample-interval", "2", "--out", str(out), "--json", str(figures_file)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: a flatness criterion, judged below
    figures = json.loads(figures_file.read_text())
    verdict = {check["criterion"]: check for check in figures["verdict"]}

    assert figures["answered"] > 0 and figures["iterations"] > 0
    assert figures["lost"] == [] and figures["duplicated"] == []
    assert figures["aborted_recorded"] == figures["aborted"] > 0
    assert figures["untagged_client_exchanges"] == 0
    assert figures["faults"] and figures["faults"] == figures["faults_as_expected"]
    assert figures["proxy_exit_code"] == 0
    assert sum(figures["faults"].values()) >= 5
    for name in ("rss_mib", "fds", "backlog", "queue"):
        assert all(figures[name][key] is not None for key in ("first", "last", "max")), name
    assert figures["rss_mib"]["first"] > 0 and figures["fds"]["first"] > 0
    assert figures["backlog"]["last"] == 0
    assert len(figures["samples"]) >= 5
    for criterion, check in verdict.items():
        if not criterion.startswith(("memory", "fds")):  # flatness needs minutes, not 20 s
            assert check["pass"], (criterion, check["figure"])

    text = out.read_text()
    for row in ("| RSS (MiB) |", "| open fds |", "| recorder backlog (spooled records) |", "| records lost | 0 |",
                "## Faults injected", "## Verdict", "## Samples"):
        assert row in text
