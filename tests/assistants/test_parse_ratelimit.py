"""Rate-limit headers of a response: limit, remaining and reset, for requests and tokens, from the
parser's ExchangeFact through the store's schema to the `exchanges` view."""

from __future__ import annotations

from proxy.assistants.parse import parse
from proxy.assistants.facts import ExchangeFact
from tests.analytics.storebuild import connect, write_store
from tests.recording.recorded import exchange, load

RATE_LIMITS = [
    ("x-ratelimit-limit-requests", "5000"),
    ("x-ratelimit-limit-tokens", "800000"),
    ("x-ratelimit-remaining-requests", "4999"),
    ("x-ratelimit-remaining-tokens", "799000"),
    ("x-ratelimit-reset-requests", "12ms"),
    ("x-ratelimit-reset-tokens", "6m0s"),
]
COLUMNS = ("ratelimit_limit_requests", "ratelimit_limit_tokens", "ratelimit_remaining_requests",
           "ratelimit_remaining_tokens", "ratelimit_reset_requests", "ratelimit_reset_tokens")
EXPECTED = ("5000", "800000", 4999, 799000, "12ms", "6m0s")


def _with_rate_limits():
    headers = [tuple(h) for h in load("runs_retrieve_v2")["response_headers"]] + RATE_LIMITS
    return exchange("runs_retrieve_v2", response_headers=headers)


def test_parser_keeps_every_rate_limit_header_as_received():
    facts = parse(_with_rate_limits(), capture_content=False)
    ef = facts[0]
    assert isinstance(ef, ExchangeFact)
    assert tuple(getattr(ef, c) for c in COLUMNS) == EXPECTED


def test_missing_rate_limit_headers_are_null():
    ef = parse(exchange("runs_retrieve_v2", response_headers=[]), capture_content=False)[0]
    assert all(getattr(ef, c) is None for c in COLUMNS)


def test_rate_limit_columns_reach_the_exchanges_view(tmp_path):
    store = write_store(tmp_path / "audit", parse(_with_rate_limits(), capture_content=False))
    con = connect(store)
    try:
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE exchanges)").fetchall())
        row = con.execute(f"SELECT {', '.join(COLUMNS)} FROM exchanges").fetchall()
    finally:
        con.close()
    assert row == [EXPECTED]
    assert [types[c] for c in COLUMNS] == ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "VARCHAR"]
