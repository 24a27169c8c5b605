"""OpenTelemetry configuration, read from the standard OTEL_* environment variables in this one
place and validated at start-up. No endpoint, no exporter: `tracer_provider_from_env` returns
None and the pipeline installs no tracing sink.

Also the W3C trace-context helpers the forwarder and the tracing sink share: the forwarder
picks the span id of the proxy's SERVER span when it forwards (so upstream sees the proxy as
the parent), and the tracing sink later creates that span with exactly those ids.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider

from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from proxy.config import ConfigError

DEFAULT_SERVICE_NAME = "assistants-audit"
_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)


class TelemetryConfigError(ConfigError):
    """A bad OTEL_* value; the message names the variable."""


_BSP_POSITIVE = ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")


def _check_key_values(env: Mapping[str, str], name: str) -> None:
    """`key1=value1,key2=value2` (W3C baggage form), as the headers and resource variables take."""
    for number, item in enumerate(env.get(name, "").split(","), 1):
        key, sep, _ = item.partition("=")
        if item.strip() and (not sep or not key.strip()):
            # not echoed: exporter headers carry credentials
            raise TelemetryConfigError(f"{name}: item {number} is not key=value (expected key1=value1,key2=value2)")


def _check_batching(env: Mapping[str, str]) -> None:
    """The OTEL_BSP_* integers, checked here because the SDK raises a bare ValueError (or logs and
    ignores the value) only once the first span processor is built."""
    values: dict[str, int] = {}
    for name in (*_BSP_POSITIVE, "OTEL_BSP_EXPORT_TIMEOUT"):
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise TelemetryConfigError(f"{name}: not a whole number: {raw!r}") from None
        if values[name] < (1 if name in _BSP_POSITIVE else 0):
            raise TelemetryConfigError(f"{name}: must be {'at least 1' if name in _BSP_POSITIVE else 'at least 0'}, got {raw!r}")
    batch = values.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
    if batch > values.get("OTEL_BSP_MAX_QUEUE_SIZE", 2048):
        raise TelemetryConfigError(f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {batch} is more than OTEL_BSP_MAX_QUEUE_SIZE")


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    traces_endpoint: str | None  # full URL of the OTLP/HTTP traces endpoint
    service_name: str
    sampler: str | None
    sampler_arg: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TelemetryConfig:
        env = os.environ if environ is None else environ
        disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower()
        if disabled not in ("true", "false", ""):
            raise TelemetryConfigError(f"OTEL_SDK_DISABLED: not a boolean: {disabled!r} (use true or false)")
        exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        if exporter not in ("otlp", "none"):
            raise TelemetryConfigError(f"OTEL_TRACES_EXPORTER: unsupported exporter {exporter!r} (use otlp or none)")
        name = next((n for n in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
                     if env.get(n, "").strip()), None)  # the traces-specific variable wins
        if name is not None and (protocol := env[name].strip()) != "http/protobuf":
            raise TelemetryConfigError(f"{name}: unsupported protocol {protocol!r} (use http/protobuf)")
        for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_RESOURCE_ATTRIBUTES"):
            _check_key_values(env, name)
        _check_batching(env)
        endpoint = None
        for name, suffix in (("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""), ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces")):
            value = env.get(name, "").strip()
            if value and not re.match(r"^https?://[^/]+", value):
                raise TelemetryConfigError(f"{name}: not an http(s) URL: {value!r}")
            if value and endpoint is None:
                endpoint = value.rstrip("/") + suffix if suffix else value
        sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or None
        if sampler is not None and sampler not in _SAMPLERS:
            raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER: unknown sampler {sampler!r}")
        sampler_arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or None
        if sampler_arg is not None and sampler in ("traceidratio", "parentbased_traceidratio"):
            try:
                ratio = float(sampler_arg)
            except ValueError:
                ratio = -1.0
            if not 0.0 <= ratio <= 1.0:
                raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER_ARG: expected a ratio in [0, 1], got {sampler_arg!r}")
        return cls(
            traces_endpoint=None if disabled == "true" or exporter == "none" else endpoint,
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME,
            sampler=sampler,
            sampler_arg=sampler_arg,
        )


    def make_sampler(self) -> Sampler:
        """OTEL_TRACES_SAMPLER as the spec defines it; default parentbased_always_on."""
        name = self.sampler or "parentbased_always_on"
        ratio = float(self.sampler_arg) if self.sampler_arg is not None and name.endswith("traceidratio") else 1.0
        root: Sampler = {"always_on": ALWAYS_ON, "always_off": ALWAYS_OFF}.get(
            name.removeprefix("parentbased_"), TraceIdRatioBased(ratio)
        )
        return ParentBased(root) if name.startswith("parentbased_") else root


class ExchangeIdGenerator(IdGenerator):
    """Random ids, except while `forced()` is active on this thread: then the next root trace
    id and the next span id are the given ones. This is how a recorded exchange's span gets the
    span id the forwarder already sent upstream in `traceparent`."""

    def __init__(self, fallback: IdGenerator | None = None) -> None:
        self._fallback = fallback or RandomIdGenerator()
        self._local = threading.local()

    @contextmanager
    def forced(self, trace_id: int, span_id: int) -> Iterator[None]:
        self._local.ids = [trace_id, span_id]
        try:
            yield
        finally:
            self._local.ids = None

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids else self._fallback.generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids and ids[1]:
            span_id, ids[1] = ids[1], 0  # only the exchange span itself, never a child
            return span_id
        return self._fallback.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return True


def tracer_provider(config: TelemetryConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider with our id generator, the configured resource and sampler, exporting in
    batches to `exporter` or the OTLP endpoint."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    provider = TracerProvider(
        sampler=config.make_sampler(),
        resource=Resource.create({SERVICE_NAME: config.service_name}),
        id_generator=ExchangeIdGenerator(),
    )
    if exporter is None and config.traces_endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=config.traces_endpoint)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer_provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """The provider the OTEL_* variables describe, or None when no endpoint is configured."""
    config = TelemetryConfig.from_env(environ)
    if config.traces_endpoint is None:
        return None
    return tracer_provider(config)
