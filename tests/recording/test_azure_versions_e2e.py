"""Azure OpenAI goes by its api-version and ignores OpenAI-Beta, while the current Python SDK
sends `assistants=v2` with every api-version: the store records the version served, and both
raw values beside it."""

from __future__ import annotations

import openai
import pytest

from tests.recording.recorded import rows as q

SERVED = [("2024-02-15-preview", "v1"), ("2024-03-01-preview", "v1"), ("2024-05-01-preview", "v2"),
          ("2025-01-01-preview", "v2")]


@pytest.mark.parametrize("azure_api_version,served", SERVED, ids=[a for a, _ in SERVED])
def test_azure_exchange_records_the_version_its_api_version_serves(recording_proxy, azure_api_version, served):
    azure = openai.AzureOpenAI(azure_endpoint=recording_proxy.url, api_key="azure-key",
                               api_version=azure_api_version, max_retries=0)
    asst = azure.beta.assistants.create(model="gpt-4o", name="Azure helper")
    thread = azure.beta.threads.create(messages=[{"role": "user", "content": "Hello from Azure"}])
    azure.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    con = recording_proxy.finish()
    exchanges = q(con, "SELECT operation, provider, beta_header, azure_api_version, api_version FROM exchanges "
                       "ORDER BY started_at")
    assert exchanges == [
        {"operation": op, "provider": "azure.ai.openai", "beta_header": "assistants=v2",
         "azure_api_version": azure_api_version, "api_version": served}
        for op in ("assistants.create", "threads.create", "runs.create")
    ]
    assert q(con, "SELECT api_version FROM assistants") == [{"api_version": served}]
    assert q(con, "SELECT api_version FROM runs") == [{"api_version": served}]
    usage = q(con, "SELECT api_version, beta_header, exchanges FROM api_version_usage")
    assert usage == [{"api_version": served, "beta_header": "assistants=v2", "exchanges": 3}]
