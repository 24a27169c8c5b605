"""Open-loop load at a fixed rate, wrk2-style: request i is due at t0 + i/rate whatever happened to
earlier ones, and its latency is measured from when it was due, so a stall shows up in the
percentiles instead of silently lowering the rate (no coordinated omission).

Every command prints one JSON object:

- `python -m bench.loadgen BASE_URL RATE SECONDS [--api responses]`: open loop (Assistants: a
  retrieved run and its steps, alternately; Responses: `POST /v1/responses`);
- `python -m bench.loadgen BASE_URL 0 COUNT [--api responses]`: COUNT streams one after another
  (a streamed run; a long streamed response), time to first and last event;
- `python -m bench.loadgen BASE_URL --push-events N | --push-output-bytes N`: one outsized
  response (the upstream makes it: `bench.upstream`), read and discarded, for the memory part."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

import aiohttp

from bench.bodies import RESPONSE_REQUEST

API_KEY_HEADER = {"Authorization": "Bearer sk-bench-not-a-real-key", "Accept-Encoding": "identity"}


@dataclass(frozen=True)
class Api:
    """What the load generator sends for one API: the open loop's requests in turn (method, path,
    body encoded once, headers) and the streamed request (path, JSON body, headers)."""

    requests: tuple[tuple[str, str, bytes | None, dict[str, str]], ...]
    stream: tuple[str, dict, dict[str, str]]


_ASSISTANTS_HEADERS = {**API_KEY_HEADER, "OpenAI-Beta": "assistants=v2"}
_JSON_HEADERS = {**API_KEY_HEADER, "Content-Type": "application/json"}
APIS = {
    "assistants": Api(
        requests=(("GET", "/v1/threads/thread_x/runs/run_x", None, _ASSISTANTS_HEADERS),
                  ("GET", "/v1/threads/thread_x/runs/run_x/steps", None, _ASSISTANTS_HEADERS)),
        stream=("/v1/threads/thread_x/runs", {"assistant_id": "asst_x", "stream": True}, _ASSISTANTS_HEADERS)),
    "responses": Api(
        requests=(("POST", "/v1/responses", json.dumps(RESPONSE_REQUEST).encode(), _JSON_HEADERS),),
        stream=("/v1/responses", {**RESPONSE_REQUEST, "stream": True}, API_KEY_HEADER)),
}
PUSH_USER_AGENT = "assistants-audit-bench/memory"


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def open_loop(base_url: str, rate: float, seconds: float, api: Api = APIS["assistants"]) -> dict:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                method, path, body, headers = api.requests[i % len(api.requests)]
                async with session.request(method, base_url + path, data=body, headers=headers) as resp:
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


async def streamed(base_url: str, count: int, api: Api = APIS["assistants"]) -> dict:
    """Time to first and last SSE event of a stream, one stream at a time."""
    first: list[float] = []
    last: list[float] = []
    path, body, headers = api.stream
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(base_url + path, json=body, headers=headers) as resp:
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


async def push(base_url: str, events: int | None, output_bytes: int | None) -> dict:
    """One outsized response through the proxy, read as it comes and discarded: the client holds
    one chunk at a time, so whatever memory grows is the proxy's."""
    if events is not None:
        asked, body = f"events={events}", {**RESPONSE_REQUEST, "stream": True}
        headers = {**API_KEY_HEADER, "X-Bench-Events": str(events)}
    else:
        asked, body = f"output-bytes={output_bytes}", RESPONSE_REQUEST
        headers = {**API_KEY_HEADER, "X-Bench-Output-Bytes": str(output_bytes)}
    # the proxy records the User-Agent: the benchmark finds this exchange's row by it
    headers["User-Agent"] = user_agent = f"{PUSH_USER_AGENT} ({asked})"
    received = frames = 0
    previous = b""
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(base_url + "/v1/responses", json=body, headers=headers) as resp:
            async for chunk in resp.content.iter_any():
                received += len(chunk)
                # an SSE frame ends with a blank line, which may straddle two chunks
                frames += chunk.count(b"\n\n") + (previous == b"\n" and chunk[:1] == b"\n")
                previous = chunk[-1:]
            status = resp.status
    return {"status": status, "bytes": received, "events": frames if events is not None else None,
            "seconds": time.perf_counter() - started, "user_agent": user_agent}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("rate", type=float, nargs="?", help="requests per second; 0: streams one after another")
    parser.add_argument("seconds", type=float, nargs="?", help="seconds of load; with rate 0, how many streams")
    parser.add_argument("--api", choices=sorted(APIS), default="assistants")
    push_size = parser.add_mutually_exclusive_group()
    push_size.add_argument("--push-events", type=int, help="one streamed response of N events")
    push_size.add_argument("--push-output-bytes", type=int, help="one response whose output text is N bytes")
    args = parser.parse_args()
    base_url, api = args.base_url.rstrip("/"), APIS[args.api]
    pushing = args.push_events is not None or args.push_output_bytes is not None
    if pushing == (args.rate is not None) or (args.rate is not None and args.seconds is None):
        parser.error("give RATE SECONDS, or one of --push-events / --push-output-bytes")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if pushing:
        result = asyncio.run(push(base_url, args.push_events, args.push_output_bytes))
    elif args.rate == 0:
        result = asyncio.run(streamed(base_url, int(args.seconds), api))
    else:
        result = asyncio.run(open_loop(base_url, args.rate, args.seconds, api))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
