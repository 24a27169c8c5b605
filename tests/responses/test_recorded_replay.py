"""Every recorded Responses/Conversations interaction of the real API (ruby-openai's cassettes,
extracted by scripts/extract_responses_cassettes.py) served from a loopback upstream and sent
through the proxy: the client gets the recorded bytes, and the store holds the facts the
recording contains (ids, statuses, tokens), read here from the recorded JSON itself."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest
from aiohttp import web

from analytics.store import connect
from proxy.config import Settings
from proxy.recording.local import build_recorder
from proxy.serving.app import make_app
from proxy.serving.fingerprint import Fingerprinter
from proxy.serving.forward import HOP_BY_HOP
from tests.recording.recorded import rows
from tests.servers import ServerThread, serve

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "recordings" / "responses_cassettes.json"
RECORDED = json.loads(FIXTURE.read_text())
REPLAY = "x-replay"  # which interaction the upstream answers with

# (method, path pattern) -> the operation the proxy must name, written out independently of its routes
OPERATIONS = [
    ("POST", r"/v1/responses", "responses.create"),
    ("GET", r"/v1/responses/[^/]+", "responses.retrieve"),
    ("DELETE", r"/v1/responses/[^/]+", "responses.delete"),
    ("GET", r"/v1/responses/[^/]+/input_items", "responses.input_items.list"),
    ("POST", r"/v1/conversations", "conversations.create"),
    ("GET", r"/v1/conversations/[^/]+", "conversations.retrieve"),
    ("POST", r"/v1/conversations/[^/]+", "conversations.update"),
    ("DELETE", r"/v1/conversations/[^/]+", "conversations.delete"),
    ("GET", r"/v1/conversations/[^/]+/items", "conversations.items.list"),
    ("POST", r"/v1/conversations/[^/]+/items", "conversations.items.create"),
    ("GET", r"/v1/conversations/[^/]+/items/[^/]+", "conversations.items.retrieve"),
    ("DELETE", r"/v1/conversations/[^/]+/items/[^/]+", "conversations.items.delete"),
]


def operation_of(method: str, path: str) -> str:
    (op,) = [op for m, pattern, op in OPERATIONS if m == method and re.fullmatch(pattern, path)]
    return op


def replay_app() -> web.Application:
    by_name = {r["name"]: r for r in RECORDED}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        recorded = by_name[request.headers[REPLAY]]
        response = web.StreamResponse(status=recorded["status"], reason=recorded["reason"])
        for name, value in recorded["response_headers"]:
            response.headers.add(name, value)
        await response.prepare(request)
        body = recorded["response_body"].encode()
        for part in re.split(rb"(?<=\n\n)", body):  # a stream arrives event by event
            if part:
                await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def fetch(port: int, recorded: dict) -> tuple[int, str, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    target = recorded["path"] + (f"?{recorded['query']}" if recorded["query"] else "")
    headers = {"Authorization": "Bearer sk-replay", REPLAY: recorded["name"]}
    if recorded["request_content_type"]:
        headers["Content-Type"] = recorded["request_content_type"]
    body = recorded["request_body"].encode() if recorded["request_body"] else None
    conn.request(recorded["method"], target, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.reason, [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], data


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """Each interaction once directly and once through the proxy, in fixture order; the store."""
    store = tmp_path_factory.mktemp("replay") / "store"
    with serve(replay_app) as upstream:
        settings = Settings(upstream=upstream.url, store=str(store), admin_listen=None).validate()
        recorder = build_recorder(settings)
        recorder.start()
        assert recorder.ready.wait(30)
        server = ServerThread(lambda: make_app(settings, recorder, fingerprinter=Fingerprinter("t"))).start()
        try:
            seen = [(fetch(upstream.port, r), fetch(server.port, r)) for r in RECORDED]
        finally:
            server.stop()
            recorder.close()
    con = connect(str(store))
    exchanges = rows(con, "SELECT * FROM exchanges ORDER BY exchange_id")
    assert len(exchanges) == len(RECORDED)
    yield {r["name"]: (direct, proxied, ex) for r, (direct, proxied), ex in zip(RECORDED, seen, exchanges)}, con
    con.close()


def facts(con, table: str, exchange_id: str, order: str = "seq") -> list[dict]:
    return rows(con, f"SELECT * FROM {table} WHERE exchange_id = ? ORDER BY {order}", exchange_id)


def usage_of(body: dict) -> tuple:
    usage = body.get("usage") or {}
    return (usage.get("input_tokens"), (usage.get("input_tokens_details") or {}).get("cached_tokens"),
            usage.get("output_tokens"), (usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
            usage.get("total_tokens"))


def snapshot_of(row: dict) -> tuple:
    return (row["response_id"], row["status"], row["model"], row["deleted"],
            (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"],
             row["total_tokens"]))


def expected_snapshot(body: dict) -> tuple:
    return (body["id"], body.get("status"), body.get("model"), body.get("deleted") is True, usage_of(body))


def stream_events(body: str) -> list[tuple[str, dict]]:
    out = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event"), json.loads(lines["data"])))
    return out


@pytest.mark.parametrize("recorded", RECORDED, ids=[r["name"] for r in RECORDED])
def test_replays_byte_for_byte_and_lands_as_its_facts(replayed, recorded):
    by_name, con = replayed
    direct, proxied, ex = by_name[recorded["name"]]
    body = recorded["response_body"]
    assert direct[0] == recorded["status"] and direct[3] == body.encode()
    assert proxied == direct  # status, reason, every end-to-end header in order, the bytes
    sent = [(k.lower(), v) for k, v in recorded["response_headers"]]
    assert [(k.lower(), v) for k, v in proxied[2] if (k.lower(), v) in sent] == sent

    operation = operation_of(recorded["method"], recorded["path"])
    request_id = dict(sent).get("x-request-id")
    assert (ex["operation"], ex["api"], ex["status_code"], ex["upstream_request_id"], ex["bytes_out"]) == (
        operation, operation.split(".")[0], recorded["status"], request_id, len(body.encode()))
    assert ex["parse_error"] is None and ex["body_truncated"] is False
    snapshots = facts(con, "response_snapshots", ex["exchange_id"])
    calls = facts(con, "response_tool_call_log", ex["exchange_id"])
    conversations = facts(con, "conversation_observations", ex["exchange_id"])
    items = facts(con, "conversation_item_observations", ex["exchange_id"])

    if recorded["status"] >= 400:
        error = json.loads(body)["error"]
        assert (ex["error_type"], ex["error_code"]) == (error["type"], error["code"])
        assert snapshots == calls == conversations == items == []
        return
    assert ex["error_type"] is None
    if body.startswith("event:"):
        carried = [(name, data["response"]) for name, data in stream_events(body) if "response" in data]
        assert [(s["event"], s["streamed"]) + snapshot_of(s) for s in snapshots] == [
            (name, True) + expected_snapshot(resp) for name, resp in carried]
        assert ex["response_id"] == carried[0][1]["id"] and ex["stream"]
        assert calls == conversations == items == []
        return
    data = json.loads(body)
    kind = data.get("object")
    if kind in ("response", "response.deleted"):
        assert [snapshot_of(s) for s in snapshots] == [expected_snapshot(data)]
        assert ex["response_id"] == data["id"]
        assert snapshots[0]["previous_response_id"] == data.get("previous_response_id")
        tool_items = [o for o in data.get("output", []) if o["type"].endswith("_call")]
        assert [(c["call_id"], c["item_id"], c["name"], c["type"], c["response_id"]) for c in calls] == [
            (o["call_id"], o["id"], o["name"], "function", data["id"]) for o in tool_items]
    elif operation == "responses.input_items.list":
        assert ex["response_id"] == recorded["path"].split("/")[3]
        assert not any(i["type"].endswith("_call_output") for i in data["data"]) and calls == []
    elif operation.startswith("conversations.items."):
        listed = data["data"] if kind == "list" else [] if operation.endswith(".delete") else [data]
        deleted = recorded["path"].rsplit("/", 1)[-1] if operation.endswith(".delete") else None
        assert [(i["item_id"], i["type"], i["deleted"]) for i in items] == (
            [(deleted, None, True)] if deleted else [(i["id"], i["type"], False) for i in listed])
        assert ex["conversation_id"] == recorded["path"].split("/")[3]
    else:
        assert kind in ("conversation", "conversation.deleted")
        (observed,) = conversations
        assert (observed["conversation_id"], observed["deleted"], observed["metadata_keys"]) == (
            data["id"], data.get("deleted") is True, len(data["metadata"]) if "metadata" in data else None)
        assert ex["conversation_id"] == data["id"]
    assert snapshots == [] or kind in ("response", "response.deleted")


def test_the_views_hold_each_recorded_response_once(replayed):
    _, con = replayed
    last: dict[str, dict] = {}
    for recorded in RECORDED:
        body = recorded["response_body"]
        if recorded["status"] >= 400:
            continue
        if body.startswith("event:"):
            for _, data in stream_events(body):
                if "response" in data:
                    last[data["response"]["id"]] = data["response"]
        elif json.loads(body).get("object") == "response":
            data = json.loads(body)
            last[data["id"]] = data
    got = {r["id"]: r for r in rows(con, "SELECT * FROM responses")}
    deleted = {json.loads(r["response_body"])["id"] for r in RECORDED if '"response.deleted"' in r["response_body"]}
    assert set(got) == set(last) | deleted
    for response_id, data in last.items():
        row = got[response_id]
        assert (row["status"], row["model"], row["created_at"].timestamp()) == (
            data["status"], data["model"], data["created_at"])
        assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"],
                row["total_tokens"]) == usage_of(data)
        assert row["api_version"] == "v1" and row["provider"] == "openai" and row["usage_invalid"] is None
    assert all(got[d]["deleted"] for d in deleted)
