"""SSE decoder: event boundaries survive any chunking, including mid-CRLF and mid-UTF-8."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.assistants.sse import SSEDecoder, SSEEvent, decode_all

STREAM = (
    b": keep-alive comment\n"
    b"event: thread.run.created\n"
    b'data: {"id":"run_1","status":"queued"}\n'
    b"\n"
    b"event: thread.message.delta\r\n"
    + 'data: {"value":"h\u00e9llo \u2603 \U0001f600"}\r\n'.encode()
    + b"\r\n"
    b"event: multi\r"
    b"data: line one\r"
    b"data: line two\r"
    b"id: 7\r"
    b"\r"
    b"event: done\n"
    b"data: [DONE]\n"
    b"\n"
)

EXPECTED = [
    SSEEvent("thread.run.created", '{"id":"run_1","status":"queued"}'),
    SSEEvent("thread.message.delta", '{"value":"h\u00e9llo \u2603 \U0001f600"}'),
    SSEEvent("multi", "line one\nline two", "7"),
    SSEEvent("done", "[DONE]", "7"),
]


def _decode_in_pieces(body: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(body)]:
        events += decoder.feed(body[prev:cut])
        prev = cut
    events += decoder.finish()
    return events


def test_whole_stream():
    assert decode_all(STREAM) == EXPECTED


def test_every_single_split_point():
    # includes cuts between \r and \n and inside the 2-, 3- and 4-byte UTF-8 sequences
    for i in range(len(STREAM) + 1):
        assert _decode_in_pieces(STREAM, [i]) == EXPECTED, i


def test_byte_by_byte():
    assert _decode_in_pieces(STREAM, list(range(len(STREAM)))) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_arbitrary_chunkings(cuts):
    assert _decode_in_pieces(STREAM, cuts) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")), min_size=1, max_size=4),
    st.sampled_from([b"\n", b"\r", b"\r\n"]),
    st.data(),
)
def test_generated_payloads_any_line_ending(values, eol, data):
    body = b"".join(b"event: e\x20" + str(i).encode() + eol + b"data: " + json.dumps(v, ensure_ascii=False).encode() + eol + eol for i, v in enumerate(values))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=8))
    events = _decode_in_pieces(body, cuts)
    assert [json.loads(e.data) for e in events] == values
    assert [e.event for e in events] == [f"e {i}" for i in range(len(values))]


def test_unterminated_event_is_dropped_at_finish():
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n\nevent: b\ndata: {\"trunc") == [SSEEvent("a", "1")]
    assert decoder.finish() == []


def test_bom_comments_and_unknown_fields():
    body = b"\xef\xbb\xbfdata: x\n:comment\nfoo: bar\nretry: 50\n\n\n\n"
    assert decode_all(body) == [SSEEvent(None, "x", None, 50)]


def test_invalid_utf8_is_replaced_not_raised():
    assert decode_all(b"data: \xff\xfe\n\n") == [SSEEvent(None, "\ufffd\ufffd")]
