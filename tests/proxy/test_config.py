"""Settings: one table of options, env vars and defaults; bad values fail at start-up naming the option."""

from __future__ import annotations

import dataclasses
import os
import stat
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from proxy.admin import make_admin_app
from proxy.config import OPTIONS, Settings, settings_options
from proxy.fingerprint import Fingerprinter, load_or_create_secret
from tests.servers import free_port, serve

CONTRACT = {"listen", "upstream", "admin_listen", "workers", "store", "journal_fsync", "capture_content", "enrich", "body_cap",
            "connect_timeout", "upstream_timeout", "grace_period", "header_timeout", "body_timeout",
            "max_upstream_connections", "keepalive_timeout",
            "admin_token", "require_proxy_key",
            "max_body_size", "max_header_size", "prices", "sample_vector_stores", "sampler_key",
            "fingerprint_secret", "log_level", "vector_store_gauge_limit"}


def test_every_contract_option_is_in_the_table_and_on_settings():
    assert {o.name for o in OPTIONS} == CONTRACT
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert CONTRACT <= fields
    assert all(o.env == "ASSISTANTS_AUDIT_" + o.name.upper() for o in OPTIONS)


def test_precedence_args_then_env_then_default():
    env = {"ASSISTANTS_AUDIT_UPSTREAM": "http://127.0.0.1:1", "ASSISTANTS_AUDIT_BODY_CAP": "1MiB",
           "ASSISTANTS_AUDIT_ENRICH": "false", "ASSISTANTS_AUDIT_WORKERS": "3"}
    settings = Settings.from_env_and_args({"workers": "2", "body_cap": None}, env=env)
    assert settings.workers == 2 and settings.body_cap == 1024 * 1024 and settings.enrich is False
    assert settings.store == "./audit" and settings.vector_store_gauge_limit == 50
    assert settings.sample_vector_stores is None and settings.tracing is False


@pytest.mark.parametrize("given, timeout", [("off", None), ("0", None), ("2.5", 2.5), (None, 30.0)])
def test_body_timeout_and_connection_cap_from_the_environment(given, timeout):
    env = {"ASSISTANTS_AUDIT_UPSTREAM": "http://127.0.0.1:1", "ASSISTANTS_AUDIT_MAX_UPSTREAM_CONNECTIONS": "8"}
    if given is not None:
        env["ASSISTANTS_AUDIT_BODY_TIMEOUT"] = given
    settings = Settings.from_env_and_args(env=env)
    assert (settings.body_timeout, settings.max_upstream_connections) == (timeout, 8)
    assert Settings.from_env_and_args({"max_upstream_connections": "3"}, env=env).max_upstream_connections == 3


def test_tracing_follows_the_otlp_endpoint():
    env = {"ASSISTANTS_AUDIT_UPSTREAM": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert Settings.from_env_and_args(env=env).tracing is True


@pytest.mark.parametrize("env, message", [
    ({}, "--upstream (ASSISTANTS_AUDIT_UPSTREAM): required"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "https://api.example.com/v1"}, "ASSISTANTS_AUDIT_UPSTREAM: must be an origin"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_WORKERS": "0"}, "ASSISTANTS_AUDIT_WORKERS: must be at least 1"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_LISTEN": "nowhere"}, "ASSISTANTS_AUDIT_LISTEN: not HOST:PORT"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_MAX_UPSTREAM_CONNECTIONS": "0"},
     "ASSISTANTS_AUDIT_MAX_UPSTREAM_CONNECTIONS: must be at least 1"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_BODY_TIMEOUT": "soon"}, "ASSISTANTS_AUDIT_BODY_TIMEOUT:"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_SAMPLE_VECTOR_STORES": "60"}, "needs --sampler-key"),
    ({"ASSISTANTS_AUDIT_UPSTREAM": "http://h", "ASSISTANTS_AUDIT_PRICES": "/no/such.yaml"}, "--prices"),
])
def test_bad_values_fail_with_one_line_naming_the_option(env, message):
    with pytest.raises(click.UsageError) as caught:
        Settings.from_env_and_args(env=env)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_secrets_are_not_echoed():
    settings = Settings(upstream="http://h", admin_token="tok-123", sampler_key="sk-sampler")
    assert "tok-123" not in repr(settings) and "sk-sampler" not in repr(settings)


def test_settings_options_decorator_gives_a_command_every_option():
    @click.command()
    @settings_options
    def cmd(**kwargs):
        settings = Settings.from_env_and_args(kwargs, env={})
        click.echo(f"{settings.upstream} {settings.workers} {settings.capture_content}")

    result = CliRunner().invoke(cmd, ["--upstream", "http://127.0.0.1:5", "--workers", "4", "--capture-content"])
    assert result.exit_code == 0 and result.output.strip() == "http://127.0.0.1:5 4 True"
    bad = CliRunner().invoke(cmd, ["--upstream", "http://127.0.0.1:5", "--body-cap", "lots"])
    assert bad.exit_code == 2 and "--body-cap: not a size" in bad.output
    help_text = CliRunner().invoke(cmd, ["--help"]).output
    for option in OPTIONS:
        assert option.usage in help_text, option.name  # click shows a flag as `--name / --no-name`


def test_fingerprint_secret_file_is_private_and_stable(tmp_path):
    secret = load_or_create_secret(str(tmp_path))
    path = tmp_path / "fingerprint.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(str(tmp_path)) == secret
    fp = Fingerprinter(secret)
    assert fp("sk-abc") == fp("sk-abc") != fp("sk-abd") and fp("sk-abc").startswith("kfp_")
    assert len(fp("sk-abc")) == 4 + 16 and fp(None) is None
    assert Fingerprinter(b"other")("sk-abc") != fp("sk-abc")  # keyed: unguessable without the secret


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_admin_health_readiness_and_token(upstream):
    async def fake_metrics(request):
        from aiohttp import web
        return web.Response(text="assistants_audit_exchanges_total 1\n")

    ready = Settings(upstream=upstream.url, admin_token="adm-tok")
    down = Settings(upstream=f"http://127.0.0.1:{free_port()}", connect_timeout=1)
    with serve(lambda: make_admin_app(ready, metrics_handler=fake_metrics)) as admin, \
            serve(lambda: make_admin_app(down)) as admin_down:
        assert _get(admin.url + "/healthz")[0] == 200
        assert _get(admin.url + "/readyz")[0] == 200
        assert _get(admin_down.url + "/readyz")[0] == 503
        assert _get(admin.url + "/metrics")[0] == 401
        assert _get(admin.url + "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        status, body = _get(admin.url + "/metrics", {"Authorization": "Bearer adm-tok"})
        assert status == 200 and b"assistants_audit_exchanges_total" in body
        assert _get(admin_down.url + "/metrics")[0] == 200  # no token configured: open (loopback)


def readme_section(name: str) -> str:
    """The README's text between `<!-- section:NAME -->` and `<!-- /section:NAME -->`."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    return readme.split(f"<!-- section:{name} -->")[1].split(f"<!-- /section:{name} -->")[0]


def test_readme_usage_section_documents_every_option():
    usage = readme_section("usage")
    for option in OPTIONS:
        assert f"| `{option.usage}` | `{option.env}` | {option.default_text} |" in usage, option.name


def test_admin_metrics_from_a_registry(upstream):
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    Counter("assistants_audit_test_things", "things", registry=registry).inc(3)
    with serve(lambda: make_admin_app(Settings(upstream=upstream.url), registry=registry)) as admin:
        status, body = _get(admin.url + "/metrics")
    assert status == 200 and b"assistants_audit_test_things_total 3.0" in body
