"""Settings: one table of options, env vars and defaults; bad values fail at start-up naming the option."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from proxy.admin import make_admin_app
from proxy.config import OPTIONS, ConfigError, Settings, settings_options
from proxy.serving.fingerprint import Fingerprinter, load_or_create_secret
from proxy.sinks.metrics import metrics_handler
from tests.clierrors import assert_one_line_error, run_cli
from tests.servers import free_port, serve

CONTRACT = {"listen", "upstream", "admin_listen", "workers", "store", "journal_fsync", "max_recorder_lag", "capture_content", "enrich", "body_cap",
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
    with pytest.raises(ConfigError) as caught:
        Settings.from_env_and_args(env=env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


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
    # the library raises; the console script's group makes it one line (tested below as people run it)
    assert isinstance(bad.exception, ConfigError) and "--body-cap: not a size" in str(bad.exception)
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
    with serve(lambda: make_admin_app(Settings(upstream=upstream.url), metrics_handler=metrics_handler(registry))) as admin:
        status, body = _get(admin.url + "/metrics")
    assert status == 200 and b"assistants_audit_test_things_total 3.0" in body


# -- refusals people read: one line naming the option or variable, exit 2 -----------------------

# Every OTEL_* variable the README lists that can hold a bad value (OTEL_SERVICE_NAME takes any text).
BAD_OTEL = [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector:4318"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization Bearer otel-secret-1234"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
    ("OTEL_TRACES_EXPORTER", "zipkin"),
    ("OTEL_SDK_DISABLED", "maybe"),
    ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment"),
    ("OTEL_TRACES_SAMPLER", "bogus"),
    ("OTEL_TRACES_SAMPLER_ARG", "half"),
    ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "-1"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"),
]


@pytest.mark.parametrize("name, value", BAD_OTEL, ids=[name for name, _ in BAD_OTEL])
def test_a_bad_otel_variable_stops_serve_with_one_line_naming_it(tmp_path, name, value):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", name: value}
    if name == "OTEL_TRACES_SAMPLER_ARG":
        env["OTEL_TRACES_SAMPLER"] = "traceidratio"
    result = run_cli("serve", "--upstream", "http://127.0.0.1:9", "--store", str(tmp_path / "audit"),
                     "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "off", env=env)
    line = assert_one_line_error(result, 2, name)
    assert "otel-secret-1234" not in line  # exporter headers carry credentials


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write to, root included (the tests run as root): a read-only tmpfs."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.parametrize("case", ["missing_parent", "file_in_the_way", "read_only", "read_only_parent"])
def test_a_store_that_cannot_work_stops_serve_with_one_line_naming_store_and_path(tmp_path, case, request):
    if case == "missing_parent":
        store = Path("/proc/audit")  # nothing can be created in /proc
        reason = "cannot create"
    elif case == "file_in_the_way":
        store = tmp_path / "audit"
        store.write_text("not a directory")
        reason = "a file is in the way"
    else:
        ro = request.getfixturevalue("read_only_dir")
        store, reason = (ro, "not writable") if case == "read_only" else (ro / "audit", "cannot create")
    result = run_cli("serve", "--upstream", "http://127.0.0.1:9", "--store", str(store),
                     "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", "off")
    assert_one_line_error(result, 2, "--store", str(store), reason)


@pytest.mark.parametrize("args, names", [
    (["--workers", "abc"], ["--workers", "not a whole number", "'abc'"]),
    (["--vector-store-gauge-limit", "many"], ["--vector-store-gauge-limit", "not a whole number"]),
    (["--listen", ":8095"], ["--listen", "0.0.0.0:8095", "127.0.0.1:8095"]),
    (["--admin-listen", ":9464"], ["--admin-listen", "0.0.0.0:9464"]),
    (["--body-cap", "lots"], ["--body-cap", "not a size"]),
])
def test_a_bad_option_value_is_one_line_without_the_usage_block(tmp_path, args, names):
    result = run_cli("serve", "--upstream", "http://127.0.0.1:9", "--store", str(tmp_path / "audit"), *args)
    assert_one_line_error(result, 2, *names)
    assert "invalid literal" not in result.stderr
