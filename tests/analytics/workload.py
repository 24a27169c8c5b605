"""A scripted workload as store facts, with its cost worked out by hand.

Day 1 = 2025-03-10 (UTC). Prices: gpt-4o $2.50 / $10 per million input / output tokens,
gpt-4o-mini $0.15 / $0.60 (genai-prices, both flat all of 2025); file_search storage
$0.10 per GiB-day with 1 GiB free org-wide; code interpreter $0.03 a session; v1 retrieval
$0.20 per GiB per assistant per day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.analytics.storebuild import F, fact

T = datetime(2025, 3, 10, tzinfo=UTC)
GIB = 1 << 30
H = timedelta(hours=1)
KEY_A, KEY_B = "fp-key-a", "fp-key-b"

# --- tokens ----------------------------------------------------------------------------------
# run        model          prompt     completion   usd
# run_1      gpt-4o         200,000    50,000       0.50 + 0.50 = 1.00
# run_2      gpt-4o         100,000    10,000       0.25 + 0.10 = 0.35
# run_3      gpt-4o-mini    1,000,000  500,000      0.15 + 0.30 = 0.45
# run_4      gpt-4o (failed, server_error) 40,000 0 0.10
# run_5      my-finetune-x  1,000      1,000        unpriced (NULL)
TOKENS_USD = 1.00 + 0.35 + 0.45 + 0.10
GPT4O_USD = 1.45
MINI_USD = 0.45
FAILED_USD = 0.10

# --- code interpreter: thread_1 calls at T+1h and T+1h30 (one session), thread_2 at T+2h -----
CI_SESSIONS = 2
CI_USD = 2 * 0.03

# --- vector stores -----------------------------------------------------------------------------
# vs_1: 1 GiB at T, 3 GiB from T+6h, deleted at T+36h.  vs_2: 0.5 GiB from T+12h, expires T+24h.
# Org total: [0,6h) 1 GiB, [6h,12h) 3 GiB, [12h,24h) 3.5 GiB, [24h,36h) 3 GiB.
# Billable = integral of max(0, total - 1 GiB):
#   day 1: 0 + 2*0.25 + 2.5*0.5 = 1.75 GiB-days -> $0.175 ; day 2: 2*0.5 = 1.0 -> $0.10
# Shares on day 1: vs_1 2.5 GiB-days, vs_2 0.25 -> vs_2 gets 1.75*0.25/2.75.
STORAGE_DAY1_USD = 0.175
STORAGE_DAY2_USD = 0.10
STORAGE_USD = STORAGE_DAY1_USD + STORAGE_DAY2_USD
VS2_USD = 0.1 * 1.75 * 0.25 / 2.75
VS1_USD = STORAGE_USD - VS2_USD

# --- v1 retrieval: asst_v1 (key B) has retrieval + a 2 GiB file from T to T+24h -> 2 GiB-days * 0.20
RETRIEVAL_USD = 0.40

# --- by key: A ran run_1, run_2, run_4, run_5 (unpriced), both code interpreter sessions and both
# vector stores; B ran run_3 and owns the v1 assistant.
KEY_A_TOKENS_USD = 1.00 + 0.35 + 0.10
KEY_B_TOKENS_USD = 0.45

TOTAL_USD = TOKENS_USD + CI_USD + STORAGE_USD + RETRIEVAL_USD


def _run(run_id: str, model: str, prompt: int, completion: int, at: datetime, *, thread: str,
         assistant: str = "asst_1", status: str = "completed", error: str | None = None,
         key: str = KEY_A) -> object:
    return fact(F.RunSnapshot, exchange_id=f"ex_{run_id}", observed_at=at + H / 60, source="retrieve",
                run_id=run_id, thread_id=thread, assistant_id=assistant, model=model, status=status,
                api_version="v2", created_at=at, started_at=at, completed_at=at + H / 60,
                last_error_code=error, prompt_tokens=prompt, completion_tokens=completion,
                total_tokens=prompt + completion, key_fingerprint=key)


def _ci_call(n: int, run_id: str, thread: str, at: datetime) -> list[object]:
    return [
        fact(F.StepSnapshot, exchange_id=f"ex_step_{n}", observed_at=at, step_id=f"step_{n}", run_id=run_id,
             thread_id=thread, type="tool_calls", status="completed", created_at=at, completed_at=at),
        fact(F.ToolCallFact, exchange_id=f"ex_step_{n}", observed_at=at, tool_call_id=f"call_{n}",
             source="step", step_id=f"step_{n}", run_id=run_id, thread_id=thread, type="code_interpreter"),
    ]


def _vs(vs_id: str, at: datetime, size: float | None, **extra: object) -> object:
    return fact(F.VectorStoreObservation, exchange_id=f"ex_{vs_id}_{at.isoformat()}", observed_at=at,
                source=extra.pop("source", "retrieve"), vector_store_id=vs_id, name=vs_id,
                status=extra.pop("status", "completed"),
                usage_bytes=None if size is None else int(size * GIB), created_at=T, key_fingerprint=KEY_A,
                **extra)


def workload_facts() -> list[object]:
    facts: list[object] = [
        _run("run_1", "gpt-4o", 200_000, 50_000, T + H, thread="thread_1"),
        _run("run_2", "gpt-4o", 100_000, 10_000, T + 2 * H, thread="thread_2"),
        _run("run_3", "gpt-4o-mini", 1_000_000, 500_000, T + 3 * H, thread="thread_3", assistant="asst_2",
             key=KEY_B),
        _run("run_4", "gpt-4o", 40_000, 0, T + 4 * H, thread="thread_4", status="failed", error="server_error"),
        _run("run_5", "my-finetune-x", 1_000, 1_000, T + 5 * H, thread="thread_5", assistant="asst_2"),
        *_ci_call(1, "run_1", "thread_1", T + H),
        *_ci_call(2, "run_1", "thread_1", T + 1.5 * H),
        *_ci_call(3, "run_2", "thread_2", T + 2 * H),
        _vs("vs_1", T, 1.0, source="create"),
        _vs("vs_1", T + 6 * H, 3.0),
        _vs("vs_1", T + 36 * H, None, source="delete", deleted=True, status=None),
        _vs("vs_2", T + 12 * H, 0.5, expires_at=T + 24 * H),
        fact(F.FileObservation, exchange_id="ex_f1", observed_at=T, file_id="file_big", bytes=2 * GIB,
             purpose="assistants"),
        fact(F.AssistantObservation, exchange_id="ex_a1", observed_at=T, assistant_id="asst_v1", name="legacy",
             model="gpt-4o", api_version="v1", tools=("retrieval",), file_ids=("file_big",), key_fingerprint=KEY_B),
        fact(F.AssistantObservation, exchange_id="ex_a2", observed_at=T + 24 * H, assistant_id="asst_v1",
             deleted=True),
        fact(F.AssistantObservation, exchange_id="ex_a3", observed_at=T, assistant_id="asst_1", name="helper",
             model="gpt-4o", api_version="v2", tools=("code_interpreter", "file_search"),
             vector_store_ids=("vs_1",), key_fingerprint=KEY_A),
    ]
    return facts


def _exchange(n: int, api_version: str | None, key: str, sdk: str, *, v1_semantics: bool = False,
              origin: str = "client") -> object:
    lang, version = sdk.split()
    return fact(F.ExchangeFact, exchange_id=f"ex_http_{n}", observed_at=T + n * H, worker="w0", origin=origin,
                started_at=T + n * H, duration_ms=10.0, proxy_overhead_ms=0.1, method="GET",
                path="/v1/assistants", route="/assistants", operation="assistants.list", provider="openai",
                status_code=200, beta_header=None if api_version is None else f"assistants={api_version}",
                api_version=api_version, v1_semantics=v1_semantics, stream=False, bytes_in=0, bytes_out=10,
                body_truncated=False, sdk=sdk, sdk_lang=lang, sdk_version=version, key_fingerprint=key)


def exchange_facts() -> list[object]:
    """Traffic: key B still on v1 (python 1.3.0), key A on v2, one v2-header call with v1 fields,
    one call without a beta header; the sampler's own v1 call is not client traffic."""
    return [
        _exchange(1, "v1", KEY_B, "python 1.3.0"),
        _exchange(2, "v1", KEY_B, "python 1.3.0"),
        _exchange(3, "v2", KEY_A, "python 1.40.0"),
        _exchange(4, "v2", KEY_A, "node 4.50.0", v1_semantics=True),
        _exchange(5, "v1", KEY_A, "python 1.40.0", origin="sampler"),
        _exchange(6, None, KEY_A, "python 1.40.0"),
    ]
