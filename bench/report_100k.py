"""Benchmark: `assistants-audit report` on a store with 100k runs (target: under 5 s).

    python -m bench.report_100k [--runs 100000] [--store DIR] [--keep]

Generates a synthetic store straight as Parquet segments (DuckDB SQL, seconds), laid out as
analytics.store expects: runs with create + polls + terminal snapshots and their exchanges,
code_interpreter steps, three models (one unpriced), failures, v1 traffic from one key, 500
vector stores observed 20 times each (some deleted, some idle), v1 assistants with retrieval.
Then times the report end to end (connect, price, all queries, render) in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from analytics import store as layout
from proxy.assistants import facts as F

T0 = "2025-01-01 00:00:00+00"


def _select(cls: type, exprs: dict[str, str]) -> str:
    """A SELECT list with the table's exact columns: given expressions, NULL for the rest."""
    out = []
    for name, ctype in layout.table_columns(cls):
        if name in exprs:
            out.append(f"CAST({exprs[name]} AS {ctype}) AS {name}")
        elif ctype == "BOOLEAN":
            out.append(f"false AS {name}")
        elif ctype.endswith("[]"):
            out.append(f"CAST([] AS {ctype}) AS {name}")
        else:
            out.append(f"NULL::{ctype} AS {name}")
    return ", ".join(out)


def generate_store(store: Path, runs: int = 100_000, seed: int = 0) -> Path:
    """Write a synthetic store of `runs` runs under `store`; returns `store`."""
    con = duckdb.connect()
    con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
    layout.ensure_schema_segments(store, con)
    ts = f"TIMESTAMPTZ '{T0}'"
    stores = max(5, min(500, runs // 200))
    # i = run number, j = 0 create, 1..2 polls, 3 terminal
    run_at = f"{ts} + to_seconds(i * 25)"
    run_model = "CASE i % 10 WHEN 0 THEN 'gpt-4o' WHEN 9 THEN 'my-finetune-x' ELSE 'gpt-4o-mini' END"
    run_status = ("CASE WHEN j < 3 THEN (CASE WHEN j = 0 THEN 'queued' ELSE 'in_progress' END) "
                  "WHEN i % 50 = 7 THEN 'failed' WHEN i % 97 = 3 THEN 'incomplete' ELSE 'completed' END")
    tables = {
        F.RunSnapshot: f"""
            SELECT {_select(F.RunSnapshot, {
                "exchange_id": "'ex_r' || i || '_' || j", "seq": "0",
                "observed_at": f"{run_at} + to_seconds(j * 2)",
                "source": "CASE WHEN j = 0 THEN 'create' ELSE 'retrieve' END",
                "run_id": "'run_' || i", "thread_id": "'thread_' || (i // 2)",
                "assistant_id": "'asst_' || (i % 50)", "model": run_model, "status": run_status,
                "api_version": "CASE WHEN i % 20 = 0 THEN 'v1' ELSE 'v2' END",
                "created_at": run_at, "started_at": f"{run_at} + INTERVAL 1 SECOND",
                "completed_at": f"CASE WHEN j = 3 THEN {run_at} + INTERVAL 6 SECOND END",
                "last_error_code": "CASE WHEN j = 3 AND i % 50 = 7 THEN 'rate_limit_exceeded' END",
                "incomplete_reason": "CASE WHEN j = 3 AND i % 97 = 3 THEN 'max_completion_tokens' END",
                "prompt_tokens": "CASE WHEN j = 3 THEN 500 + (i * 7919) % 20000 END",
                "completion_tokens": "CASE WHEN j = 3 THEN 50 + (i * 104729) % 2000 END",
                "key_fingerprint": "'kfp_' || (i % 7)",
            })} FROM range({runs}) r(i), range(4) k(j)""",
        F.ExchangeFact: f"""
            SELECT {_select(F.ExchangeFact, {
                "exchange_id": "'ex_r' || i || '_' || j", "observed_at": f"{run_at} + to_seconds(j * 2)",
                "worker": "'w0'", "origin": "'client'", "started_at": f"{run_at} + to_seconds(j * 2)",
                "duration_ms": "12.5", "proxy_overhead_ms": "0.2", "method": "CASE WHEN j = 0 THEN 'POST' ELSE 'GET' END",
                "path": "'/v1/threads/thread_' || (i // 2) || '/runs'", "route": "'/threads/{thread_id}/runs'",
                "operation": "CASE WHEN j = 0 THEN 'runs.create' ELSE 'runs.retrieve' END", "provider": "'openai'",
                "status_code": "200",
                "beta_header": "CASE WHEN i % 20 = 0 THEN 'assistants=v1' ELSE 'assistants=v2' END",
                "api_version": "CASE WHEN i % 20 = 0 THEN 'v1' ELSE 'v2' END", "stream": "false",
                "bytes_in": "100", "bytes_out": "900", "body_truncated": "false",
                "sdk": "CASE WHEN i % 20 = 0 THEN 'python 1.3.0' ELSE 'python 1.40.0' END",
                "sdk_lang": "'python'", "sdk_version": "CASE WHEN i % 20 = 0 THEN '1.3.0' ELSE '1.40.0' END",
                "key_fingerprint": "'kfp_' || (i % 7)", "run_id": "'run_' || i",
            })} FROM range({runs}) r(i), range(4) k(j)""",
        F.StepSnapshot: f"""
            SELECT {_select(F.StepSnapshot, {
                "exchange_id": "'ex_s' || i", "seq": "0", "observed_at": f"{run_at} + INTERVAL 7 SECOND",
                "step_id": "'step_' || i", "run_id": "'run_' || i", "thread_id": "'thread_' || (i // 2)",
                "type": "'tool_calls'", "status": "'completed'", "created_at": f"{run_at} + INTERVAL 2 SECOND",
            })} FROM range({runs}) r(i) WHERE i % 5 = 0""",
        F.ToolCallFact: f"""
            SELECT {_select(F.ToolCallFact, {
                "exchange_id": "'ex_s' || i", "seq": "0", "observed_at": f"{run_at} + INTERVAL 7 SECOND",
                "tool_call_id": "'call_' || i", "source": "'step'", "step_id": "'step_' || i",
                "run_id": "'run_' || i", "thread_id": "'thread_' || (i // 2)", "type": "'code_interpreter'",
            })} FROM range({runs}) r(i) WHERE i % 5 = 0""",
        F.VectorStoreObservation: f"""
            SELECT {_select(F.VectorStoreObservation, {
                "exchange_id": "'ex_v' || s || '_' || o", "seq": "0",
                "observed_at": f"{ts} + to_hours(o * 6 + s % 6)",
                "source": "CASE WHEN o = 19 AND s % 10 = 0 THEN 'delete' ELSE 'retrieve' END",
                "vector_store_id": "'vs_' || s", "name": "'store ' || s", "status": "'completed'",
                "usage_bytes": "CASE WHEN o = 19 AND s % 10 = 0 THEN NULL ELSE (s + 1) * 50000000 + o * 1000000 END",
                "created_at": ts, "last_active_at": f"{ts} + to_hours(CASE WHEN s % 4 = 0 THEN 0 ELSE o * 6 END)",
                "deleted": "o = 19 AND s % 10 = 0", "key_fingerprint": "'kfp_' || (s % 7)",
            })} FROM range({stores}) a(s), range(20) b(o)""",
        F.AssistantObservation: f"""
            SELECT {_select(F.AssistantObservation, {
                "exchange_id": "'ex_a' || a", "seq": "0", "observed_at": ts, "assistant_id": "'asst_' || a",
                "name": "'assistant ' || a", "model": "CASE a % 10 WHEN 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END",
                "api_version": "CASE WHEN a % 10 = 0 THEN 'v1' ELSE 'v2' END",
                "tools": "CASE WHEN a % 10 = 0 THEN ['retrieval'] ELSE ['code_interpreter', 'file_search'] END",
                "vector_store_ids": f"['vs_' || (a % {stores})]",
                "file_ids": "CASE WHEN a % 10 = 0 THEN ['file_' || a] ELSE [] END",
            })} FROM range(50) x(a)""",
        F.FileObservation: f"""
            SELECT {_select(F.FileObservation, {
                "exchange_id": "'ex_f' || a", "seq": "0", "observed_at": ts, "file_id": "'file_' || a",
                "bytes": "(a + 1) * 10000000", "purpose": "'assistants'",
            })} FROM range(50) x(a)""",
    }
    for cls, sql in tables.items():
        directory = layout.tables_dir(store) / cls.TABLE
        name = layout.segment_filename("bench", (0, 0), (0, 1))
        con.execute(f"COPY ({sql}) TO '{directory / name}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return store


def time_report(store: Path) -> tuple[float, dict]:
    from analytics.report import build_report, open_report_connection, render

    started = time.perf_counter()
    cpu = time.process_time()
    con = open_report_connection(str(store), None)
    try:
        data = build_report(con, None, None, 30)
        render(data, "table")
    finally:
        con.close()
    data["_cpu_seconds"] = time.process_time() - cpu
    return time.perf_counter() - started, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--store", type=Path, help="where to write the store (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    parser.add_argument("--json", action="store_true", help="also print one JSON line (bench/run.py reads it)")
    args = parser.parse_args()
    root = args.store or Path(tempfile.mkdtemp(prefix="report-bench-")) / "audit"
    try:
        started = time.perf_counter()
        generate_store(root, args.runs)
        print(f"generated {args.runs:,} runs in {time.perf_counter() - started:.1f}s at {root}")
        seconds, data = time_report(root)
        load = os.getloadavg()[0]
        print(f"report: {seconds:.2f}s wall (target < 5s), {data['_cpu_seconds']:.2f}s CPU, "
              f"load average {load:.1f} on {os.cpu_count()} CPUs; total ${data['total_usd']:,.2f}, "
              f"{data['counts']['runs']:,} runs, {data['counts']['exchanges']:,} exchanges")
        if args.json:
            print(json.dumps({"report_seconds": seconds, "cpu_seconds": data["_cpu_seconds"], "runs": args.runs}))
    finally:
        if not args.keep and args.store is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
