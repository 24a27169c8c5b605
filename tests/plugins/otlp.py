"""An OTLP/HTTP trace receiver on loopback (owned by the observability work).

`otlp_receiver` serves POST /v1/traces, decodes each ExportTraceServiceRequest protobuf (gzip or
not) and keeps the spans as plain `ReceivedSpan`s, so tests check what really went over the wire.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.servers import ServerThread


def _value(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # hex
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int  # opentelemetry.proto SpanKind: 2 = SERVER, 3 = CLIENT, 1 = INTERNAL
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    links: list[tuple[str, str, dict[str, object]]]  # (trace_id, span_id, attributes)
    status_code: int  # 0 unset, 1 ok, 2 error
    service_name: str | None = None


@dataclass
class OtlpReceiver:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    received.append(
                        ReceivedSpan(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            links=[
                                (ln.trace_id.hex(), ln.span_id.hex(), {a.key: _value(a.value) for a in ln.attributes})
                                for ln in s.links
                            ],
                            status_code=s.status.code,
                            service_name=resource.get("service.name"),  # type: ignore[arg-type]
                        )
                    )
        with self._cond:
            self.requests += 1
            self.spans.extend(received)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 15) -> list[ReceivedSpan]:
        """Block until at least `count` spans arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.spans) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"OTLP receiver got {len(self.spans)} spans, expected {count}")
                self._cond.wait(left)
            return list(self.spans)

    def clear(self) -> None:
        with self._cond:
            self.spans.clear()

    def make_app(self) -> web.Application:
        async def traces(request: web.Request) -> web.Response:
            body = await request.read()
            if request.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            if request.content_type != "application/x-protobuf":
                return web.Response(status=415, text="expected application/x-protobuf")
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            self.add(message)
            return web.Response(
                body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
            )

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return app


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    server = ServerThread(receiver.make_app).start()
    receiver.url = server.url
    try:
        yield receiver
    finally:
        server.stop()
