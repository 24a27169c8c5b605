#!/usr/bin/env python3
"""Copy every recorded Responses and Conversations interaction into one compact fixture the
replay test serves byte for byte (tests/responses/test_recorded_replay.py).

Source: ruby-openai's VCR cassettes of the real Responses and Conversations APIs, by default in
../shared/recordings/ruby-openai-responses. Output: tests/fixtures/recordings/responses_cassettes.json,
a list of interactions, each with what a client sent (method, path, query, body, content type)
and everything the API answered: status, reason, end-to-end response headers in order (not
Set-Cookie, which is a secret, nor the framing fields Transfer-Encoding, Content-Length and
Connection, which the replaying server sets for the bytes it sends) and the body exactly as
recorded. An interaction repeated across cassettes (the *_setup ones) is kept once.

(tests/fixtures/spec/responses_recorded.json, made by scripts/extract_responses_fixture.py for
the emulator, keeps only parsed JSON bodies and a stream's event names: not enough to replay.)

Usage: python scripts/extract_responses_cassettes.py [--source DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "recordings" / "ruby-openai-responses"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "recordings" / "responses_cassettes.json"
DROPPED_RESPONSE_HEADERS = {"set-cookie", "transfer-encoding", "content-length", "connection"}


def _body(raw: dict | None) -> str:
    value = (raw or {}).get("string") or ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _headers(raw: dict | None) -> list[list[str]]:
    out = []
    for name, values in (raw or {}).items():
        if name.lower() in DROPPED_RESPONSE_HEADERS:
            continue
        for value in values if isinstance(values, list) else [values]:
            out.append([name, str(value)])
    return out


def interactions(source: Path) -> list[dict]:
    out: list[dict] = []
    seen: set[str] = set()
    for cassette in sorted(source.glob("*.yml")):
        for index, item in enumerate(yaml.safe_load(cassette.read_text())["http_interactions"]):
            req, resp = item["request"], item["response"]
            url = urlsplit(req["uri"])
            request_headers = {k.lower(): v for k, v in (req.get("headers") or {}).items()}
            entry = {
                "name": f"{cassette.stem}_{index}",
                "source": f"ruby-openai-responses/{cassette.name}#{index}",
                "method": req["method"].upper(),
                "path": url.path,
                "query": url.query,
                "request_content_type": (request_headers.get("content-type") or [None])[0],
                "request_body": _body(req.get("body")),
                "status": resp["status"]["code"],
                "reason": resp["status"].get("message") or "",
                "response_headers": _headers(resp.get("headers")),
                "response_body": _body(resp.get("body")),
            }
            key = json.dumps({k: v for k, v in entry.items() if k not in ("name", "source")}, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of the VCR cassettes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture file to write")
    args = parser.parse_args()
    found = interactions(args.source)
    if not found:
        parser.error(f"no cassettes in {args.source}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(found)} interactions -> {args.out}")


if __name__ == "__main__":
    main()
