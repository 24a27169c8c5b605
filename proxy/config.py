"""Every option of every command that serves, in one table: name, environment variable, default.

`Settings` is built once at start-up (`Settings.from_env_and_args`) from, in order of precedence,
command-line arguments, `ASSISTANTS_AUDIT_<NAME>` environment variables and the defaults below,
then validated; a bad value raises ConfigError naming the option, which the command line turns
into one line and exit 2. Nothing else in the project reads the environment for configuration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from yarl import URL

ENV_PREFIX = "ASSISTANTS_AUDIT_"
MiB = 1024 * 1024

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": MiB, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A bad or missing option value; the message is one line naming the option."""


def parse_size(text: str) -> int:
    """'8MiB', '512MB', '65536' -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 65536, 64KiB, 8MiB, 512MB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def parse_seconds(text: str) -> float:
    value = float(text)
    if value != value or value < 0:
        raise ValueError(f"not a non-negative number of seconds: {text!r}")
    return value


def parse_optional_seconds(text: str) -> float | None:
    if str(text).strip().lower() in {"", "off", "none", "0"}:
        return None
    return parse_seconds(text)


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true/false)")


def parse_hostport(text: str) -> str:
    """'127.0.0.1:8080', '0.0.0.0:8080', '[::1]:8080' -> the same text, checked.

    ':8080' is refused: it would listen on every interface, which nobody should get by
    leaving out a word."""
    host, port = split_hostport(text)
    if not host:
        raise ValueError(f"no host in {text!r}: write 127.0.0.1:{port} (this machine only) "
                         f"or 0.0.0.0:{port} (every interface)")
    return text


def parse_optional_hostport(text: str) -> str | None:
    if str(text).strip().lower() in {"", "off", "none"}:
        return None
    return parse_hostport(text)


def split_hostport(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def parse_upstream(text: str) -> str:
    """An origin only (scheme://host[:port]): the proxy appends the client's path verbatim."""
    url = URL(str(text).strip().rstrip("/"))
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"not an http(s) URL: {text!r}")
    if url.path not in {"", "/"} or url.query_string or url.fragment or url.user:
        raise ValueError(f"must be an origin like https://api.example.com, got {text!r}")
    return str(url.origin())


def parse_log_level(text: str) -> str:
    lowered = str(text).strip().lower()
    if lowered not in {"debug", "info", "warning", "error"}:
        raise ValueError(f"not a log level: {text!r} (debug, info, warning, error)")
    return lowered


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not a whole number: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise ValueError(f"must not be negative, got {text!r}")
    return value


def _text(text: str) -> str | None:
    return str(text) if str(text) != "" else None


@dataclass(frozen=True)
class Option:
    """One row of the option table."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    flag: bool = False  # --name/--no-name
    secret: bool = False  # never echoed back in errors or logs
    metavar: str | None = None

    @property
    def default_text(self) -> str:
        if self.name == "upstream":
            return "required"
        if self.default is None:
            return "unset" if self.secret else "off"
        if self.parse is parse_size:
            for unit, factor in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
                if self.default % factor == 0:
                    return f"{self.default // factor}{unit}"
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def cli(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def cli_forms(self) -> tuple[str, ...]:
        """Every command-line spelling: `--name`, and `--no-name` too for a flag."""
        return (self.cli, "--no-" + self.cli[2:]) if self.flag else (self.cli,)

    @property
    def usage(self) -> str:
        """The option as help and README show it: `--name` or `--name / --no-name`."""
        return " / ".join(self.cli_forms)


OPTIONS: tuple[Option, ...] = (
    Option("listen", "127.0.0.1:8080", parse_hostport, "Address the proxy listens on.", metavar="HOST:PORT"),
    Option("upstream", None, parse_upstream,
           "Upstream origin, e.g. https://api.openai.com or https://NAME.openai.azure.com (required).",
           metavar="URL"),
    Option("admin_listen", "127.0.0.1:9464", parse_optional_hostport,
           "Admin listener (/healthz, /readyz, /metrics); 'off' disables it.", metavar="HOST:PORT"),
    Option("workers", 1, _positive_int, "Worker processes sharing the port (SO_REUSEPORT).", metavar="N"),
    Option("store", "./audit", str, "Audit store directory (journal, Parquet segments, audit.duckdb).",
           metavar="DIR"),
    Option("journal_fsync", False, parse_bool,
           "fsync the journal after every record (survives power loss, not only a process crash; slower).",
           flag=True),
    Option("max_recorder_lag", 1024 * MiB, parse_size,
           "Journal bytes a worker may hold that the recorder has not stored yet; past it, exchanges are "
           "journaled without their bodies (counted) until the recorder catches up.", metavar="SIZE"),
    Option("capture_content", False, parse_bool,
           "Record message text, instructions, tool arguments/outputs and chunk text.", flag=True),
    Option("enrich", True, parse_bool,
           "Fetch the steps of finished runs no client looked at, with that client's key (held in memory only).", flag=True),
    Option("body_cap", 8 * MiB, parse_size, "Bytes of each request/response body kept for parsing.",
           metavar="SIZE"),
    Option("connect_timeout", 10.0, parse_seconds, "Seconds to connect to the upstream (then 504).",
           metavar="SECONDS"),
    Option("upstream_timeout", 600.0, parse_seconds,
           "Seconds the upstream may stay silent (before the response head or between body chunks).",
           metavar="SECONDS"),
    Option("grace_period", 30.0, parse_seconds, "Seconds SIGTERM waits for in-flight requests.",
           metavar="SECONDS"),
    Option("header_timeout", 10.0, parse_optional_seconds,
           "Seconds a client may take to send a request's headers (then 408 and close); 'off' disables it.",
           metavar="SECONDS"),
    Option("body_timeout", 30.0, parse_optional_seconds,
           "Seconds a client may pause between bytes of a request body (then 408 and close); 'off' disables it.",
           metavar="SECONDS"),
    Option("max_upstream_connections", 256, _positive_int,
           "Upstream connections a worker process holds at once; more requests wait up to --connect-timeout (then 503).",
           metavar="N"),
    Option("keepalive_timeout", 75.0, parse_seconds,
           "Seconds an idle keep-alive client connection stays open.", metavar="SECONDS"),
    Option("admin_token", None, _text, "Bearer token required by the admin /metrics endpoint.",
           secret=True, metavar="TOKEN"),
    Option("require_proxy_key", None, _text,
           "Only clients sending this key in X-Proxy-Key may use the proxy (the header is not forwarded).",
           secret=True, metavar="KEY"),
    Option("max_body_size", 512 * MiB, parse_size, "Largest request body accepted (else 413).",
           metavar="SIZE"),
    Option("max_header_size", 64 * 1024, parse_size, "Largest total request header size (else 431).",
           metavar="SIZE"),
    Option("prices", None, _text, "Price override file (YAML/JSON) for the cost audit.", metavar="FILE"),
    Option("sample_vector_stores", None, parse_optional_seconds,
           "Poll vector store usage every N seconds (with --sampler-key or OPENAI_API_KEY).",
           metavar="SECONDS"),
    Option("sampler_key", None, _text, "API key the vector store sampler uses.", secret=True, metavar="KEY"),
    Option("fingerprint_secret", None, _text,
           "Secret for API key fingerprints (default: random, kept in STORE/fingerprint.key).",
           secret=True, metavar="SECRET"),
    Option("log_level", "info", parse_log_level, "debug, info, warning or error.", metavar="LEVEL"),
    Option("vector_store_gauge_limit", 50, _non_negative_int,
           "Per-store gauges are exported for the N largest vector stores only.", metavar="N"),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}
_TRACING_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def option_error(name: str, message: str) -> ConfigError:
    """`--name (ASSISTANTS_AUDIT_NAME): message`: the one line a bad value of option `name` stops with."""
    option = OPTIONS_BY_NAME[name]
    return ConfigError(f"{option.cli} ({option.env}): {message}")


@dataclass(frozen=True)
class Settings:
    """The configuration of one proxy process; the same for every worker."""

    upstream: str = "http://127.0.0.1:9"
    listen: str = "127.0.0.1:8080"
    admin_listen: str | None = "127.0.0.1:9464"
    workers: int = 1
    store: str = "./audit"
    journal_fsync: bool = False
    max_recorder_lag: int = 1024 * MiB
    capture_content: bool = False
    enrich: bool = True
    body_cap: int = 8 * MiB
    connect_timeout: float = 10.0
    upstream_timeout: float = 600.0
    grace_period: float = 30.0
    header_timeout: float | None = 10.0
    body_timeout: float | None = 30.0
    max_upstream_connections: int = 256
    keepalive_timeout: float = 75.0
    admin_token: str | None = None
    require_proxy_key: str | None = None
    max_body_size: int = 512 * MiB
    max_header_size: int = 64 * 1024
    prices: str | None = None
    sample_vector_stores: float | None = None
    sampler_key: str | None = None
    fingerprint_secret: str | None = None
    log_level: str = "info"
    vector_store_gauge_limit: int = 50
    # Not an option: true when an OTLP endpoint is configured (or the app is given a tracer),
    # so the forwarder mints a span id per request and sends it upstream in `traceparent`.
    tracing: bool = False

    def __repr__(self) -> str:  # secrets never reach a log line through repr()
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            option = OPTIONS_BY_NAME.get(f.name)
            if option is not None and option.secret and value is not None:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def listen_address(self) -> tuple[str, int]:
        return split_hostport(self.listen)

    @property
    def admin_address(self) -> tuple[str, int] | None:
        return split_hostport(self.admin_listen) if self.admin_listen else None

    @classmethod
    def from_env_and_args(
        cls, args: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> "Settings":
        """Arguments (None = not given) beat `ASSISTANTS_AUDIT_*` variables, which beat defaults.

        Raises ConfigError naming the option when a value is invalid or missing.
        """
        env = os.environ if env is None else env
        given = {**(args or {}), **overrides}
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = given.get(option.name)
            source = option.cli
            if raw is None and option.env in env:
                raw, source = env[option.env], option.env
            if raw is None:
                values[option.name] = option.default
                continue
            if isinstance(raw, str) or option.parse is str:
                try:
                    raw = option.parse(raw)
                except (ValueError, TypeError) as exc:
                    detail = "invalid value" if option.secret else str(exc)
                    raise ConfigError(f"{source}: {detail}") from None
            values[option.name] = raw
        tracing = given.get("tracing")
        values["tracing"] = bool(tracing) if tracing is not None else any(env.get(k) for k in _TRACING_ENV)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> "Settings":
        def fail(name: str, message: str) -> None:
            raise option_error(name, message)

        if not self.upstream:
            fail("upstream", "required, e.g. --upstream https://api.openai.com")
        try:
            parse_upstream(self.upstream)
        except ValueError as exc:
            fail("upstream", str(exc))
        for name in ("listen", "admin_listen"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_hostport(value)
                except ValueError as exc:
                    fail(name, str(exc))
        for name in ("workers", "max_upstream_connections"):
            if getattr(self, name) < 1:
                fail(name, "must be at least 1")
        for name in ("body_cap", "max_body_size", "max_header_size"):
            if getattr(self, name) < 0:
                fail(name, "must not be negative")
        if self.max_header_size < 1024:
            fail("max_header_size", "must be at least 1KiB")
        for name in ("connect_timeout", "upstream_timeout", "keepalive_timeout"):
            if getattr(self, name) <= 0:
                fail(name, "must be more than 0 seconds")
        if self.sample_vector_stores is not None and not (self.sampler_key or os.environ.get("OPENAI_API_KEY")):
            fail("sample_vector_stores", "needs --sampler-key (ASSISTANTS_AUDIT_SAMPLER_KEY) or OPENAI_API_KEY")
        if self.prices is not None:
            from analytics.prices import Prices, PricesError

            try:  # a bad price file stops start-up here, not the recorder later
                Prices.load(self.prices)
            except PricesError as exc:
                raise ConfigError(str(exc)) from None
        if self.admin_listen and self.admin_listen == self.listen:
            fail("admin_listen", "must differ from --listen")
        return self


F = TypeVar("F", bound=Callable[..., Any])


def settings_options(fn: F) -> F:
    """Add every serving option to a click command (shared by `serve` and `demo`).

    Each option defaults to None so `Settings.from_env_and_args(kwargs)` can tell "not given"
    (then the environment variable or the default applies) from a value.
    """
    for option in reversed(OPTIONS):
        default_text = option.default_text
        help_text = f"{option.help} [env: {option.env}; default: {default_text}]"
        if option.flag:
            fn = click.option("/".join(option.cli_forms), option.name, default=None, help=help_text)(fn)
        else:
            fn = click.option(option.cli, option.name, default=None, metavar=option.metavar,
                              help=help_text)(fn)
    return fn


def settings_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the serving options out of a command's kwargs (leaving the command's own)."""
    return {name: kwargs.pop(name) for name in list(kwargs) if name in OPTIONS_BY_NAME}
