"""Where recording's CPU goes, per exchange, measured stage by stage in one thread.

The side-by-side benchmark says *how much* recording costs under load; this says *where*, without
the noise of a shared machine: it builds the exchange the benchmark's upstream answers (a
retrieved run, ~1.5 KB of JSON), then times each stage of the pipeline on its own with the
thread's CPU clock (`time.thread_time`), over N exchanges:

- `submit` (serving process, event loop): journal frame encode + one writev, what the hot path pays;
- `journal read + decode` (recorder process): the record back from the journal as an Exchange;
- `parse` (recorder): exchange -> facts;
- one line per sink's `on_exchange` (store, prices, metrics, spans), the sinks the recorder
  process feeds (`proxy.recording.local.standard_sinks` and a `StoreSink`);
- `store flush` (recorder): buffered rows -> a Parquet segment, amortized per exchange.

`python -m bench.breakdown [-n N]` prints a table; `--json` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.bodies import RUN_JSON


def _exchange(i: int):
    from proxy.serving.exchange import Exchange, new_exchange_id

    return Exchange(
        exchange_id=new_exchange_id(), worker="w0", origin="client", started_at=time.time(), ttfb_s=0.0012,
        duration_s=0.0015, proxy_overhead_s=0.0002, method="GET",
        path="/v1/threads/thread_zLTcdCfBOWhdA16mh490ukiZ/runs/run_OHJXOmN3ujL9negG5WStzEVq", query="",
        key_fingerprint="kfp_0123456789abcdef",
        request_headers=(("openai-beta", "assistants=v2"), ("user-agent", "OpenAI/Python 1.54.0"),
                         ("x-stainless-retry-count", "0"), ("accept", "application/json")),
        request_body=b"", request_body_size=0, status=200,
        response_headers=(("content-type", "application/json"), ("openai-version", "2020-10-01"),
                          ("openai-processing-ms", "23"), ("x-request-id", f"req_{i:032d}")),
        response_body=RUN_JSON, response_body_size=len(RUN_JSON), error_type=None,
        upstream="http://127.0.0.1:8081", traceparent=None, extra={"upstream_s": "0.001200"},
    )


def measure(n: int = 20_000, flush_every: int = 1_000) -> dict[str, float]:
    """CPU microseconds per exchange for each stage."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from prometheus_client import CollectorRegistry

    from proxy.recording import journal
    from proxy.assistants.parse import parse
    from proxy.config import Settings
    from proxy.recording.local import standard_sinks
    from proxy.sinks.store import StoreSink
    from proxy.sinks.telemetry import TelemetryConfig, tracer_provider

    class Discard(SpanExporter):
        def export(self, spans):  # noqa: ANN001
            return SpanExportResult.SUCCESS

    work = Path(tempfile.mkdtemp(prefix="aa-breakdown-"))
    settings = Settings(upstream="http://127.0.0.1:8081", store=str(work / "store"), admin_listen=None).validate()
    provider = tracer_provider(TelemetryConfig(None, "assistants-audit", None, None), exporter=Discard())
    shared, _ = standard_sinks(settings, registry=CollectorRegistry(), tracer_provider=provider)
    store = StoreSink(settings.store)
    store.open()
    sinks = [store, *shared]
    exchanges = [_exchange(i) for i in range(n)]
    costs: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], None]) -> None:
        t = time.thread_time()
        fn()
        costs[name] = costs.get(name, 0.0) + (time.thread_time() - t)

    writer = journal.JournalWriter(work / "journal")
    timed("submit: journal encode + writev (event loop)",
          lambda: [writer.append(journal.encode_exchange(e)) for e in exchanges])
    writer.close()
    read: list = []
    timed("journal read + decode (recorder)",
          lambda: read.extend(journal.decode_exchange(p) for _, p in journal.read_after(work / "journal", None)))
    assert len(read) == n
    facts: list = []
    timed("parse", lambda: facts.extend(parse(e, capture_content=False) for e in exchanges))
    flush_time = 0.0
    for sink in sinks:
        name = f"sink: {type(sink).__name__}.on_exchange"
        for start in range(0, n, flush_every):
            timed(name, lambda s=sink, a=start: [s.on_exchange(e, f) for e, f in
                                                 zip(exchanges[a:a + flush_every], facts[a:a + flush_every])])
            if sink is store:
                t = time.thread_time()
                store.flush()
                flush_time += time.thread_time() - t
    costs["store flush (amortized)"] = flush_time
    for sink in sinks:
        sink.close()
    provider.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    return {name: seconds / n * 1e6 for name, seconds in costs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="exchanges to time (default 20,000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    result = measure(args.n)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"recording cost per exchange (CPU µs, {args.n:,} exchanges)")
    table.add_column("stage")
    table.add_column("µs", justify="right")
    for name, us in result.items():
        table.add_row(name, f"{us:.1f}")
    table.add_row("total", f"{sum(result.values()):.1f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
