"""Assistants v1 with the last v1 SDK, openai==1.20.0, installed in its own virtual environment
(cached under ~/.cache/assistants-audit/ so reruns are quick) and run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

VENV = Path(os.environ.get("ASSISTANTS_AUDIT_CACHE", Path.home() / ".cache" / "assistants-audit")) / \
    "venv-openai-1.20.0"
# openai 1.20 passes `proxies=` to httpx, which httpx 0.28 removed
REQUIREMENTS = ["openai==1.20.0", "httpx<0.28"]

V1_SCRIPT = textwrap.dedent('''
    import io, json, sys
    import openai
    assert openai.__version__ == "1.20.0", openai.__version__
    client = openai.OpenAI(api_key="sk-old-sdk", base_url=sys.argv[1], max_retries=0)
    f = client.files.create(file=("facts.txt", io.BytesIO(b"The old SDK speaks v1 of the Assistants API.")),
                            purpose="assistants")
    asst = client.beta.assistants.create(model="gpt-4-turbo", instructions="Answer from the file.",
                                         tools=[{"type": "retrieval"}], file_ids=[f.id])
    assert asst.file_ids == [f.id]
    listed = client.beta.assistants.files.list(assistant_id=asst.id)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Which API does the old SDK speak?",
                                                   "file_ids": [f.id]}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=1)
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    messages = client.beta.threads.messages.list(thread_id=thread.id)
    with client.beta.threads.runs.create_and_stream(thread_id=thread.id, assistant_id=asst.id) as stream:
        events = [e.event for e in stream]
    print(json.dumps({
        "status": run.status, "file_ids": run.file_ids, "assistant_files": [x.id for x in listed.data],
        "step_types": [s.step_details.type for s in steps.data],
        "tool_types": [c.type for s in steps.data if s.step_details.type == "tool_calls"
                       for c in s.step_details.tool_calls],
        "message_file_ids": messages.data[-1].file_ids, "reply": messages.data[0].content[0].text.value,
        "events": events}))
''')


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import openai, sys; sys.exit(openai.__version__ != '1.20.0')"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        message = f"cannot install {' '.join(REQUIREMENTS)} into a venv: {install.stderr.strip()[-300:]}"
        if os.environ.get("CI"):  # CI must run this test, not skip it
            pytest.fail(message + " (and CI is set)")
        pytest.skip(message)
    return python


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_openai_1_20_speaks_v1_to_the_emulator(emulator, tmp_path):
    import json

    python = ensure_venv()
    script = tmp_path / "v1_client.py"
    script.write_text(V1_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    done = subprocess.run([str(python), str(script), emulator.base_url], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert result["file_ids"] and result["assistant_files"] == result["file_ids"]
    assert result["step_types"] == ["tool_calls", "message_creation"]
    assert result["tool_types"] == ["retrieval"]
    assert result["message_file_ids"] == result["file_ids"]
    assert "Which API does the old SDK speak" in result["reply"]
    assert result["events"][0] == "thread.run.created" and result["events"][-1] == "thread.run.completed"
