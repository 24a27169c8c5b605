"""End to end, both API generations at once: the official openai SDK through the proxy (the real
recording pipeline) to the emulator, a team still on Assistants v1 and v2 and a team moving to the
Responses API over the same vector store; then the cost views, the migration views and
`assistants-audit report --migration` (a subprocess, every format) against what the clients saw.

Expected figures come from the clients alone: the usage the SDK returned, the tool call items in
its outputs, the requests it sent (counted by an httpx hook on the client), times the prices of
analytics/data/prices.json and the model prices below (genai-prices' list prices)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

import analytics
from analytics.prices import Prices, install_report_prices
from analytics.store import connect
from proxy.config import Settings
from proxy.recording.local import build_recorder
from proxy.serving.app import make_app
from tests.emulator.responses_support import upload_store
from tests.plugins.emulator import FAST, start_emulator
from tests.recording.recorded import rows
from tests.servers import ServerThread

# (input, cached input, output) USD per million tokens
PRICES = {"gpt-4o": (2.50, 1.25, 10.00), "o4-mini": (1.10, 0.275, 4.40)}
V1 = {"OpenAI-Beta": "assistants=v1"}
SDK = f"python {openai.__version__}"
TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


def tool_price(kind: str) -> dict:
    """The version of `kind` in force today, read from the bundled price file itself."""
    versions = json.loads((Path(analytics.__file__).parent / "data" / "prices.json").read_text())["items"][kind]
    today = date.today().isoformat()
    return [v for v in versions if v["effective_from"] <= today][-1]


def generation(request: httpx.Request) -> str:
    """What API generation a request belongs to, as the client sees it."""
    resource = request.url.path.split("/v1/", 1)[1].split("/")[0]
    if resource in ("responses", "conversations"):
        return "responses"
    if request.headers.get("OpenAI-Beta") == "assistants=v1":
        return "assistants_v1"
    return "shared" if resource in ("files", "uploads", "vector_stores") else "assistants_v2"


class Team:
    """A client with its own key, counting the requests it sends by API generation."""

    def __init__(self, url: str, key: str) -> None:
        self.calls: Counter[str] = Counter()
        hook = {"request": [lambda request: self.calls.update([generation(request)])]}
        self.client = openai.OpenAI(api_key=key, base_url=url + "/v1", max_retries=0,
                                    http_client=httpx.Client(event_hooks=hook))
        self.tokens: Counter[str] = Counter()  # api -> tokens of priced runs and responses
        self.usd: defaultdict[str, float] = defaultdict(float)  # api -> expected cost


def token_usd(model: str, inp: int, cached: int, out: int) -> float:
    p_in, p_cached, p_out = PRICES[model]
    return ((inp - cached) * p_in + cached * p_cached + out * p_out) / 1e6


def poll_v1(client, thread_id: str, run_id: str):
    for _ in range(200):
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id, extra_headers=V1)
        if run.status in TERMINAL:
            return run
    raise AssertionError("v1 run did not finish")


def code_interpreter_threads(client, run, headers=None) -> int:
    """1 when the run's steps (listed as a client does) hold a code_interpreter call: one session."""
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=run.thread_id, extra_headers=headers)
    return int(any(c.type == "code_interpreter" for s in steps.data if s.type == "tool_calls"
                   for c in s.step_details.tool_calls))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    # the emulator's clock starts now, so the store's days and weeks are this week's
    emulator = start_emulator(replace(FAST, start_time=time.time()))
    store = tmp_path_factory.mktemp("mixed") / "store"
    settings = Settings(upstream=emulator.url, store=str(store), admin_listen=None, fingerprint_secret="s",
                        enrich=False).validate()
    recorder = build_recorder(settings)
    recorder.start()
    server = ServerThread(lambda: make_app(settings, recorder)).start()
    legacy, moving = Team(server.url, "sk-legacy-team"), Team(server.url, "sk-moving-team")
    seen: dict = {"responses": [], "tool_items": [], "v1_run": None, "v2_run": None}
    try:
        shared = upload_store(moving.client)  # the vector store both teams read
        seen["shared"] = shared

        # -- the legacy team: a v1 assistant (retrieval + code_interpreter), a v2 one over the shared store
        beta = legacy.client.beta
        doc = legacy.client.files.create(file=("policy.txt", io.BytesIO(b"Refunds within 14 days. " * 50)),
                                         purpose="assistants")
        a1 = beta.assistants.create(model="gpt-4o", name="legacy-v1", extra_headers=V1,
                                    tools=[{"type": "retrieval"}, {"type": "code_interpreter"}],  # type: ignore[list-item]
                                    extra_body={"file_ids": [doc.id]})
        t1 = beta.threads.create(messages=[{"role": "user", "content": "What is the refund policy?"}],
                                 extra_headers=V1)
        run1 = poll_v1(legacy.client, t1.id, beta.threads.runs.create(thread_id=t1.id, assistant_id=a1.id,
                                                                      extra_headers=V1).id)
        a2 = beta.assistants.create(model="gpt-4o", name="legacy-v2",
                                    tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
                                    tool_resources={"file_search": {"vector_store_ids": [shared]}})
        run2 = beta.threads.create_and_run_poll(
            assistant_id=a2.id, poll_interval_ms=1,
            thread={"messages": [{"role": "user", "content": "Where do capybaras live?"}]})
        for run, api, headers in ((run1, "assistants_v1", V1), (run2, "assistants_v2", None)):
            assert run.status == "completed" and run.usage.prompt_tokens > 0
            inp, out = run.usage.prompt_tokens, run.usage.completion_tokens
            legacy.tokens[api] += inp + out
            legacy.usd[api] += (inp * PRICES["gpt-4o"][0] + out * PRICES["gpt-4o"][2]) / 1e6
            legacy.usd[api] += code_interpreter_threads(legacy.client, run, headers) * 0.03
        seen["v1_run"], seen["v2_run"], seen["assistants"] = run1, run2, (a1, a2)

        # -- the moving team: responses, tools, the same vector store, containers
        rs = moving.client.responses
        made = [
            rs.create(model="gpt-4o", input="Hello, what can you do?"),
            rs.create(model="o4-mini", input="Think about capybaras"),
            rs.create(model="gpt-4o", input="Where do capybaras live?", include=["file_search_call.results"],
                      tools=[{"type": "file_search", "vector_store_ids": [shared]}]),
            rs.create(model="gpt-4o", input="Latest capybara news", tools=[{"type": "web_search"}]),
        ]
        made.append(rs.create(model="gpt-4o", input="And again?", previous_response_id=made[0].id))
        code = rs.create(model="gpt-4o", input="Sum the numbers below ten",
                         tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
        container = code.output[0].container_id
        again = rs.create(model="gpt-4o", input="again",
                          tools=[{"type": "code_interpreter", "container": container}])
        # 21 emulated minutes later the same container is used again: a second 20-minute session
        httpx.post(f"{emulator.url}/_emulator/advance", params={"seconds": 21 * 60}).raise_for_status()
        later = rs.create(model="gpt-4o", input="once more",
                          tools=[{"type": "code_interpreter", "container": container}])
        other = rs.create(model="gpt-4o", input="a fresh container",
                          tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
        with rs.create(model="gpt-4o", input="Where do capybaras live, streamed?", stream=True,
                       tools=[{"type": "file_search", "vector_store_ids": [shared]}]) as stream:
            streamed = [e for e in stream][-1].response
        made += [code, again, later, other, streamed]
        assert made[4].usage.input_tokens_details.cached_tokens > 0  # chained: cached input
        assert made[1].usage.output_tokens_details.reasoning_tokens > 0
        for resp in made:
            assert resp.status == "completed"
            u = resp.usage
            moving.tokens["responses"] += u.total_tokens
            moving.usd["responses"] += token_usd(resp.model, u.input_tokens, u.input_tokens_details.cached_tokens,
                                                 u.output_tokens)
            seen["tool_items"] += [(resp, item) for item in resp.output if item.type.endswith("_call")]
        seen["responses"] = made
    finally:
        server.stop()
        recorder.close()
        emulator.server.stop()
    return store, legacy, moving, seen


def tool_fees(seen) -> dict[str, tuple[int, float]]:
    """kind -> (items, usd) the clients' tool call items cost at the price file's prices."""
    fees = {}
    for kind, item_type in (("file_search_call", "file_search_call"), ("web_search_call", "web_search_call")):
        n = sum(item.type == item_type for _resp, item in seen["tool_items"])
        fees[kind] = (n, n * tool_price(kind)["usd"])
    # container sessions: per container, a session opens at a call and lasts session_seconds
    price = tool_price("code_interpreter_container")
    starts: defaultdict[str, list[int]] = defaultdict(list)
    for resp, item in sorted(seen["tool_items"], key=lambda pair: pair[0].created_at):
        if item.type == "code_interpreter_call":
            opened = starts[item.container_id]
            if not opened or resp.created_at - opened[-1] >= price["session_seconds"]:
                opened.append(resp.created_at)
    sessions = sum(len(v) for v in starts.values())
    fees["code_interpreter_container"] = (sessions, sessions * price["usd"])
    return fees


def open_store(store):
    con = connect(store)
    install_report_prices(con, Prices.load())
    return con


def fingerprints(con, seen) -> tuple[str, str]:
    legacy = con.execute("SELECT key_fingerprint FROM runs WHERE run_id = ?", [seen["v1_run"].id]).fetchone()[0]
    moving = con.execute("SELECT key_fingerprint FROM responses WHERE response_id = ?",
                         [seen["responses"][0].id]).fetchone()[0]
    assert legacy.startswith("kfp_") and moving.startswith("kfp_") and legacy != moving
    return legacy, moving


def test_costs_of_both_apis_match_what_the_clients_saw(mixed):
    store, legacy, moving, seen = mixed
    con = open_store(store)
    tokens = {r["response_id"]: r for r in rows(con, "SELECT * FROM costs WHERE kind = 'tokens' AND api = 'responses'")}
    assert set(tokens) == {r.id for r in seen["responses"]}
    for resp in seen["responses"]:
        u = resp.usage
        row = tokens[resp.id]
        assert row["usd"] == pytest.approx(token_usd(resp.model, u.input_tokens, u.input_tokens_details.cached_tokens,
                                                     u.output_tokens), abs=1e-12)
        assert (row["quantity"], row["model"], row["sdk"]) == (u.total_tokens, resp.model, SDK)

    fees = tool_fees(seen)
    assert fees["file_search_call"][0] == 2 and fees["web_search_call"][0] == 1
    assert fees["code_interpreter_container"][0] == 3  # container A: two sessions, container B: one
    got = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT kind, count(*), sum(usd) FROM costs WHERE api = 'responses' AND kind <> 'tokens' GROUP BY kind").fetchall()}
    assert got == {kind: (n, pytest.approx(usd, abs=1e-12)) for kind, (n, usd) in fees.items()}

    runs = dict(con.execute("SELECT run_id, api FROM costs WHERE kind = 'tokens' AND run_id IS NOT NULL").fetchall())
    assert runs == {seen["v1_run"].id: "assistants_v1", seen["v2_run"].id: "assistants_v2"}
    assert {r[0] for r in con.execute("SELECT DISTINCT api FROM costs WHERE kind = 'vector_store_storage'").fetchall()} \
        <= {"shared"}

    by_api = dict(con.execute("SELECT api, sum(usd) FROM costs GROUP BY api").fetchall())
    expected = {**legacy.usd, "responses": moving.usd["responses"] + sum(usd for _n, usd in fees.values())}
    assert {api: usd for api, usd in by_api.items() if api != "shared"} == pytest.approx(expected, abs=1e-9)
    total = con.execute("SELECT sum(usd) FROM costs").fetchone()[0]
    for view in ("cost_by_day", "cost_by_key"):
        assert dict(con.execute(f"SELECT api, sum(usd) FROM {view} GROUP BY api").fetchall()) == pytest.approx(by_api)
        assert con.execute(f"SELECT sum(usd) FROM {view}").fetchone()[0] == pytest.approx(total)
    models = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT api, model, runs, responses, usd FROM cost_by_model").fetchall()}
    by_model: defaultdict[str, float] = defaultdict(float)
    for resp in seen["responses"]:
        u = resp.usage
        by_model[resp.model] += token_usd(resp.model, u.input_tokens, u.input_tokens_details.cached_tokens,
                                          u.output_tokens)
    for model, usd in by_model.items():
        n = sum(r.model == model for r in seen["responses"])
        assert models[("responses", model)] == (0, n, pytest.approx(usd, abs=1e-12))
    assert models[("assistants_v1", "gpt-4o")][:2] == (1, 0) and models[("assistants_v2", "gpt-4o")][:2] == (1, 0)
    legacy_key, moving_key = fingerprints(con, seen)
    keys = {(r[0], r[1]): r[2] for r in con.execute(
        "SELECT key_fingerprint, api, sum(usd) FROM cost_by_key GROUP BY ALL").fetchall()}
    assert keys[(moving_key, "responses")] == pytest.approx(expected["responses"], abs=1e-9)
    assert keys[(legacy_key, "assistants_v1")] == pytest.approx(legacy.usd["assistants_v1"], abs=1e-9)


def test_migration_views_match_what_the_clients_did(mixed):
    store, legacy, moving, seen = mixed
    con = open_store(store)
    legacy_key, moving_key = fingerprints(con, seen)
    weekly = rows(con, "SELECT * FROM migration_weekly")
    assert {r["sdk"] for r in weekly if r["calls"]} == {SDK}
    for team, key in ((legacy, legacy_key), (moving, moving_key)):
        mine = [r for r in weekly if r["key_fingerprint"] == key]
        calls = Counter()
        for r in mine:
            calls[r["api"]] += r["calls"]
        assert +calls == team.calls  # every request the client sent, by generation
        for api, tokens in team.tokens.items():
            assert sum(r["tokens"] for r in mine if r["api"] == api) == tokens
    responses_usd = sum(r["usd"] for r in weekly if r["key_fingerprint"] == moving_key and r["api"] == "responses")
    assert responses_usd == pytest.approx(moving.usd["responses"] + sum(u for _n, u in tool_fees(seen).values()),
                                          abs=1e-9)
    assert {r["iso_week"] for r in weekly if r["api"] == "responses" and r["usd"]} == {
        datetime.fromtimestamp(r.created_at, UTC).strftime("%G-W%V") for r in seen["responses"]}

    a1, a2 = seen["assistants"]
    tools = {(r["assistant_id"], r["tool"]): r for r in rows(con, "SELECT * FROM migration_assistants")}
    assert set(tools) == {(a1.id, "retrieval"), (a1.id, "code_interpreter"), (a2.id, "file_search"),
                          (a2.id, "code_interpreter")}
    assert (tools[(a1.id, "retrieval")]["responses_tool"], tools[(a1.id, "retrieval")]["api"]) == (
        "file_search", "assistants_v1")
    assert json.loads(tools[(a2.id, "file_search")]["responses_tool_json"]) == {
        "type": "file_search", "vector_store_ids": [seen["shared"]]}
    assert json.loads(tools[(a2.id, "code_interpreter")]["responses_tool_json"])["container"]["type"] == "auto"
    assert all(r["runs"] == 1 and r["sdk"] == SDK for r in tools.values())

    stores = {r["vector_store_id"]: r for r in rows(con, "SELECT * FROM migration_vector_stores")}
    shared = stores[seen["shared"]]
    file_searches = [resp.id for resp, item in seen["tool_items"] if item.type == "file_search_call"]
    assert (shared["used_by"], shared["assistants"], shared["runs"], shared["responses"],
            shared["file_search_calls"]) == ("both", 1, 1, len(set(file_searches)), len(file_searches))
    assert [s for s, r in stores.items() if r["used_by"] == "both"] == [seen["shared"]]


def report(store, *args: str) -> str:
    cmd = [sys.executable, "-m", "proxy.cli", "report", "--store", str(store), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_report_migration_in_every_format(mixed):
    store, legacy, moving, seen = mixed
    data = json.loads(report(store, "--migration", "--format", "json"))
    model_calls = sum(t.calls[a] for t in (legacy, moving) for a in ("assistants_v1", "assistants_v2", "responses"))
    assert (data["responses_calls"], data["model_api_calls"]) == (moving.calls["responses"], model_calls)
    assert data["responses_share"] == round(moving.calls["responses"] / model_calls, 4)
    by_api = {r["api"]: r for r in data["by_api"]}
    assert by_api["responses"]["calls"] == moving.calls["responses"]
    assert by_api["assistants_v1"]["tokens"] == legacy.tokens["assistants_v1"]
    assert data["assistants_still_called"] == 2 and data["vector_stores_both_sides"] == 1
    assert {r["responses_tool"] for r in data["assistants"]} == {"file_search", "code_interpreter"}

    table = report(store, "--migration")
    assert f"{data['responses_share']:.0%} of model API calls on the Responses API" in table
    for a in seen["assistants"]:
        assert a.id in table
    assert "Vector stores and the side that reads them" in table and seen["shared"] in table

    parsed = [r for r in csv.reader(io.StringIO(report(store, "--migration", "--format", "csv"))) if r]
    assert parsed[0] == ["section", "column", "row", "value"]
    assert ["summary", "responses_calls", "0", str(moving.calls["responses"])] in parsed
    weekly_calls = sum(int(r[3]) for r in parsed if r[0] == "weekly" and r[1] == "calls")
    assert weekly_calls == sum(legacy.calls.values()) + sum(moving.calls.values())


def test_a_price_override_of_a_tool_fee_changes_the_cost(mixed, tmp_path):
    store, _legacy, _moving, seen = mixed
    fees = tool_fees(seen)
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"file_search_usd_per_call": 0.5,
                                    "web_search_call": {"usd": 0.025, "unit": "call", "source": "preview rate"}}))
    plain = json.loads(report(store, "--format", "json"))
    priced = json.loads(report(store, "--format", "json", "--prices", str(override)))
    kinds = {r["kind"]: r for r in priced["spend_by_kind"]}
    assert kinds["file_search_call"]["usd"] == pytest.approx(0.5 * fees["file_search_call"][0])
    assert kinds["web_search_call"]["usd"] == pytest.approx(0.025 * fees["web_search_call"][0])
    before = {r["kind"]: r["usd"] for r in plain["spend_by_kind"]}
    assert before["file_search_call"] == pytest.approx(fees["file_search_call"][1])
    assert priced["total_usd"] - plain["total_usd"] == pytest.approx(
        (0.5 - tool_price("file_search_call")["usd"]) * fees["file_search_call"][0]
        + (0.025 - tool_price("web_search_call")["usd"]) * fees["web_search_call"][0], abs=2e-6)
    migration = json.loads(report(store, "--migration", "--format", "json", "--prices", str(override)))
    responses = {r["api"]: r["usd"] for r in migration["by_api"]}["responses"]
    plain_migration = json.loads(report(store, "--migration", "--format", "json"))
    assert responses > {r["api"]: r["usd"] for r in plain_migration["by_api"]}["responses"]


def test_report_migration_on_a_store_without_traffic_is_one_clear_line(tmp_path):
    from tests.analytics.storebuild import write_store

    store = write_store(tmp_path / "audit", [])
    done = subprocess.run([sys.executable, "-m", "proxy.cli", "report", "--store", str(store), "--migration"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "no Assistants, Responses or Foundry agents traffic" in done.stderr
