"""The real `azure-ai-agents` SDK pointed at a loopback server (the emulator, or the proxy in front
of it): a test credential that hands out a fixed Entra-ID-like token, and the one client option
plain-HTTP loopback needs."""

from __future__ import annotations

import time
from typing import Any

from azure.ai.agents import AgentsClient
from azure.core.credentials import AccessToken
from azure.core.pipeline import policies

PROJECT = "audit-project"
# Shaped like an Entra ID access token (a JWT) so a leak is easy to find byte for byte.
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FpLmF6dXJlLmNvbSJ9.foundry-test-signature"


class StaticTokenCredential:
    """azure.core.credentials.TokenCredential for tests: one token, never expiring within a test.
    Records the scopes asked for, so a test can check the SDK asked for Foundry's."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class _LoopbackHttp(policies.HeadersPolicy):
    """azure-core refuses to send a bearer token over plain HTTP unless the request context says
    `enforce_https=False` (its documented per-request option). This policy runs before the
    authentication policy and says so for every request: the servers in tests are on loopback
    without TLS. Headers are left as the SDK set them."""

    def on_request(self, request: Any) -> None:
        request.context["enforce_https"] = False
        super().on_request(request)


def agents_client(url: str, project: str = PROJECT, credential: StaticTokenCredential | None = None,
                  **kwargs: Any) -> AgentsClient:
    """AgentsClient(endpoint=URL/api/projects/PROJECT) as a Foundry user writes it, over HTTP."""
    kwargs.setdefault("retry_total", 0)
    return AgentsClient(endpoint=f"{url}/api/projects/{project}", credential=credential or StaticTokenCredential(),
                        headers_policy=_LoopbackHttp(), **kwargs)
