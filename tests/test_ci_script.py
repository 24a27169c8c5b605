"""`.ci/run` installs packages without letting them start services, and stops nothing itself.

The install function runs for real in a private mount namespace (a tmpfs over /usr/sbin, so the
machine's policy-rc.d is never touched), with an `apt-get` stand-in that asks policy-rc.d what a
package's postinst would ask: may I start my service?"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parents[1] / ".ci" / "run"


def test_ci_ends_no_process_by_name():
    script = CI.read_text()
    assert not re.search(r"\b(pkill|killall|systemctl stop|service \S+ stop)\b", script)
    assert script.rstrip().splitlines()[-1] == "python3 -m pytest -q"  # the README's command, its exit code


@pytest.mark.parametrize("before", [None, "#!/bin/sh\nexit 0\n"])
def test_no_service_may_start_during_the_install_and_policy_rc_d_is_put_back(tmp_path, before):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private mount namespace")
    function = re.search(r"^install_without_starting_services\(\) \{.*?^\}$", CI.read_text(), re.M | re.S)
    assert function, "install_without_starting_services() not found in .ci/run"
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "apt-get").write_text(
        '#!/bin/sh\n[ "$1" = install ] && { /usr/sbin/policy-rc.d prometheus start; echo "start answered $?" >&2; }\n'
        "exit 0\n")  # stderr: the install's stdout goes to /dev/null
    (stub / "apt-get").chmod(0o755)
    (tmp_path / "before").write_text(before or "")
    setup = "" if before is None else f"cp {tmp_path / 'before'} /usr/sbin/policy-rc.d; chmod 700 /usr/sbin/policy-rc.d"
    script = f"""set -euo pipefail
mount -t tmpfs tmpfs /usr/sbin
{setup}
{function.group(0)}
PATH={stub}:$PATH install_without_starting_services prometheus
echo "after:"; ls -A /usr/sbin; [ -e /usr/sbin/policy-rc.d ] && stat -c %a /usr/sbin/policy-rc.d && cat /usr/sbin/policy-rc.d
true
"""
    result = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    after = result.stdout.split("after:\n")[1]
    assert "start answered 101" in result.stderr  # 101: action forbidden, so the package starts nothing
    if before is None:
        assert after.strip() == ""  # created for the install only
    else:
        assert after == "policy-rc.d\n700\n" + before  # put back as it was
