"""Open-loop load at a fixed rate, wrk2-style: request i is due at t0 + i/rate whatever happened to
earlier ones, and its latency is measured from when it was due, so a stall shows up in the
percentiles instead of silently lowering the rate (no coordinated omission).

`python -m bench.loadgen BASE_URL RATE SECONDS` prints one JSON object."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

PATHS = ("/v1/threads/thread_x/runs/run_x", "/v1/threads/thread_x/runs/run_x/steps")
HEADERS = {"Authorization": "Bearer sk-bench-not-a-real-key", "OpenAI-Beta": "assistants=v2",
           "Accept-Encoding": "identity"}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def open_loop(base_url: str, rate: float, seconds: float) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                async with session.get(base_url + PATHS[i % len(PATHS)], headers=HEADERS) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append(time.perf_counter() - due)

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, due), name=f"req-{i}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": rate,
        "sent": total,
        "ok": len(latencies),
        "errors": errors,
        "achieved_rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def streamed(base_url: str, count: int) -> dict:
    """Time to first and last SSE event of a streamed run, one stream at a time."""
    first: list[float] = []
    last: list[float] = []
    body = {"assistant_id": "asst_x", "stream": True}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(base_url + "/v1/threads/thread_x/runs", json=body, headers=HEADERS) as resp:
                got_first = False
                async for chunk in resp.content.iter_any():
                    if not got_first and b"event:" in chunk:
                        first.append(time.perf_counter() - started)
                        got_first = True
                last.append(time.perf_counter() - started)
    first.sort()
    last.sort()
    return {"count": count, "first_event_p50_ms": percentile(first, 0.5) * 1000,
            "last_event_p50_ms": percentile(last, 0.5) * 1000}


def main() -> None:
    base_url, rate, seconds = sys.argv[1].rstrip("/"), float(sys.argv[2]), float(sys.argv[3])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if rate == 0:
        print(json.dumps(asyncio.run(streamed(base_url, int(seconds)))))
    else:
        print(json.dumps(asyncio.run(open_loop(base_url, rate, seconds))))


if __name__ == "__main__":
    main()
