"""The journal: framing, torn tails, damaged records, rotation, writer slots."""

from __future__ import annotations

import os

from proxy.recording import journal
from proxy.recording.journal import JournalWriter, Position
from tests.exchanges import exchange


def test_exchange_roundtrip_keeps_raw_bodies(tmp_path):
    body = bytes(range(256)) * 10  # not UTF-8, not JSON: stored raw
    ex = exchange(1, body=body)
    w = JournalWriter(tmp_path)
    pos = w.append(journal.encode_exchange(ex))
    w.close()
    [(got_pos, payload)] = list(journal.read_after(tmp_path, None))
    assert got_pos == pos == Position(0, 0)
    back = journal.decode_exchange(payload)
    assert back == ex
    assert back.response_body == body


def test_torn_tail_is_ignored_and_next_writer_starts_clean(tmp_path):
    w = JournalWriter(tmp_path)
    ids = []
    for i in range(5):
        ex = exchange(i)
        w.append(journal.encode_exchange(ex))
        ids.append(ex.exchange_id)
    w.close()
    seg = tmp_path / "00000000.jnl"
    size = seg.stat().st_size
    with open(seg, "r+b") as f:  # kill -9 in the middle of the 5th record
        f.truncate(size - 20)
    got = [journal.decode_exchange(p).exchange_id for _, p in journal.read_after(tmp_path, None)]
    assert got == ids[:4]
    w2 = JournalWriter(tmp_path)
    assert w2.first_seq == 1  # never appends after a torn tail
    ex = exchange(9)
    w2.append(journal.encode_exchange(ex))
    w2.close()
    got = [journal.decode_exchange(p).exchange_id for _, p in journal.read_after(tmp_path, None)]
    assert got == ids[:4] + [ex.exchange_id]


def test_damaged_record_in_the_middle_is_skipped_not_the_rest(tmp_path):
    w = JournalWriter(tmp_path)
    exs = [exchange(i) for i in range(3)]
    positions = [w.append(journal.encode_exchange(e)) for e in exs]
    w.close()
    seg = tmp_path / "00000000.jnl"
    data = bytearray(seg.read_bytes())
    data[positions[1].offset + 40] ^= 0xFF  # flip a payload byte: crc mismatch
    seg.write_bytes(bytes(data))
    got = [journal.decode_exchange(p).exchange_id for _, p in journal.read_after(tmp_path, None)]
    assert got == [exs[0].exchange_id, exs[2].exchange_id]


def test_rotation_and_read_after_checkpoint(tmp_path):
    w = JournalWriter(tmp_path, segment_bytes=2000)
    exs = [exchange(i, body=b"x" * 300) for i in range(20)]
    positions = [w.append(journal.encode_exchange(e)) for e in exs]
    w.close()
    assert len(journal.list_segments(tmp_path)) > 3
    assert positions == sorted(positions)
    after = positions[7]
    got = [journal.decode_exchange(p).exchange_id for _, p in journal.read_after(tmp_path, after)]
    assert got == [e.exchange_id for e in exs[8:]]
    journal.write_checkpoint(tmp_path, after)
    assert journal.read_checkpoint(tmp_path) == after
    removed = journal.prune(tmp_path, below_seq=after.seq)
    assert removed == after.seq
    got = [journal.decode_exchange(p).exchange_id for _, p in journal.read_after(tmp_path, after)]
    assert got == [e.exchange_id for e in exs[8:]]


def test_slots_are_exclusive_and_freed_on_close(tmp_path):
    a = journal.claim_slot(tmp_path)
    b = journal.claim_slot(tmp_path)
    assert (a.name, b.name) == ("w000", "w001")
    assert journal.try_lock(tmp_path, "w000") is None
    a.close()
    c = journal.claim_slot(tmp_path)
    assert c.name == "w000"
    b.close()
    c.close()
    assert journal.slot_names(tmp_path) == ["w000", "w001"]


def test_append_is_one_write_of_a_whole_frame(tmp_path):
    w = JournalWriter(tmp_path)
    ex = exchange(0)
    parts = journal.encode_exchange(ex)
    pos = w.append(parts)
    assert w.offset == os.path.getsize(tmp_path / "00000000.jnl") == 12 + sum(map(len, parts))
    assert pos.offset == 0
    w.close()


def test_a_record_from_another_version_still_decodes(tmp_path):
    import orjson

    ex = exchange(3)
    parts = journal.encode_exchange(ex)
    meta = orjson.loads(parts[1])
    meta["field_from_the_future"] = 1
    del meta["traceparent"]  # a field this version has and that one did not
    new_meta = orjson.dumps(meta)
    payload = b"".join([len(new_meta).to_bytes(4, "little"), new_meta, *parts[2:]])
    back = journal.decode_exchange(payload)
    assert back.exchange_id == ex.exchange_id and back.traceparent is None
    assert back.response_body == ex.response_body
