"""The recorder: rows land off the event loop, and nothing is lost or doubled across kill -9."""

from __future__ import annotations

import shutil
import time

from proxy import journal
from proxy.pipeline import AuditRecorder, basic_facts
from proxy.sinks.store import StoreSink
from tests.recording.store_helpers import kill_and_collect, make_exchange, rows, settings, spawn_writer, wait_for


def recorder(store, **kw) -> AuditRecorder:
    s = settings(store)
    r = AuditRecorder(s, [StoreSink(s.store)], parse=basic_facts, **kw)
    r.start()
    assert r.ready.wait(30)
    return r


def count(store) -> int:
    return rows(store, "SELECT count(*) FROM exchange_log")[0][0]


def ids_in_store(store) -> list[str]:
    return [r[0] for r in rows(store, "SELECT exchange_id FROM exchange_log")]


def test_rows_become_visible_while_the_recorder_runs(tmp_path):
    r = recorder(tmp_path)
    try:
        exs = [make_exchange(i) for i in range(50)]
        for ex in exs:
            r.submit(ex)
        # visible while the recorder runs (no close() needed); how soon depends on the machine's load
        assert wait_for(lambda: count(tmp_path) == 50, timeout=60)
        got = rows(tmp_path, "SELECT exchange_id, path, status_code, key_fingerprint FROM exchange_log ORDER BY path")
        assert sorted(g[0] for g in got) == sorted(e.exchange_id for e in exs)
        assert {g[2] for g in got} == {200} and {g[3] for g in got} == {"fp-test"}
    finally:
        r.close()
    assert count(tmp_path) == 50
    assert r.lost_records == 0 and r.errors == {}


def test_restart_replays_nothing_twice(tmp_path):
    r = recorder(tmp_path)
    for i in range(30):
        r.submit(make_exchange(i))
    r.close()
    r2 = recorder(tmp_path)
    r2.close()
    assert count(tmp_path) == 30 and r2.replayed == 0
    # a clean stop with every record stored leaves no segment (raw bodies do not linger on disk)
    assert [p.name for p in (tmp_path / "journal" / "w000").glob("*.jnl")] == []


def test_kill_9_during_load_loses_nothing_and_doubles_nothing(tmp_path):
    child = spawn_writer(tmp_path, pause=0.0005, segment_bytes=64 * 1024)
    answered = kill_and_collect(child, after=2.0)
    assert len(answered) > 200
    r = recorder(tmp_path)
    r.close()
    stored = ids_in_store(tmp_path)
    assert len(stored) == len(set(stored)), "duplicates after replay"
    assert set(answered) <= set(stored)
    # a record journaled but not acknowledged before the kill may be stored too: never more than one
    assert len(stored) - len(answered) <= 1


def test_a_partial_flush_before_the_crash_is_not_doubled(tmp_path):
    r = recorder(tmp_path)
    for i in range(10):
        r.submit(make_exchange(i))
    assert wait_for(lambda: count(tmp_path) == 10)
    # simulate: segments written, process killed before the checkpoint moved
    checkpoint = tmp_path / "journal" / "w000" / "checkpoint.json"
    saved = checkpoint.read_bytes()
    for i in range(10, 15):
        r.submit(make_exchange(i))
    assert wait_for(lambda: count(tmp_path) == 15)
    # the disk as the crash leaves it: every segment still there, the checkpoint not moved
    segments = {p: p.read_bytes() for p in (tmp_path / "journal" / "w000").glob("*.jnl")}
    r.journal.close()
    r._stopping.set()
    r.store.flush = lambda: False  # the crash: no more flushes
    r.close_timeout = 0.2
    r.close()
    checkpoint.write_bytes(saved)
    for path, data in segments.items():
        path.write_bytes(data)
    r2 = recorder(tmp_path)
    r2.close()
    stored = ids_in_store(tmp_path)
    assert len(stored) == 15 and len(set(stored)) == 15
    assert r2.replayed == 5


def live_rows_per_file(store) -> dict[str, int]:
    got = rows(store, "SELECT regexp_extract(filename, '[^/]+$'), count(*) FROM read_parquet('"
               + str(store / "tables/exchange_log/w*.parquet") + "', filename=true) GROUP BY 1")
    return dict(got)


def test_compaction_bounds_files_and_never_removes_a_name_a_reader_may_hold(tmp_path):
    r = recorder(tmp_path)
    r.store.compact_after = 4
    seg_dir = tmp_path / "tables" / "exchange_log"
    names_seen: set[str] = set()
    for i in range(12):
        r.submit(make_exchange(i))
        assert wait_for(lambda: count(tmp_path) == i + 1)
        names_seen |= {p.name for p in seg_dir.glob("w000-*.parquet")}
        r.store.compact()
        # every name ever handed out still exists (replaced atomically, never unlinked)
        assert names_seen <= {p.name for p in seg_dir.glob("w000-*.parquet")}
        assert count(tmp_path) == i + 1
    r.close()
    assert len(live_rows_per_file(tmp_path)) <= 4  # live segments stay bounded
    assert len(names_seen) <= 6  # and so do file names
    assert count(tmp_path) == 12


def test_a_crash_mid_compaction_is_repaired_at_restart(tmp_path):
    r = recorder(tmp_path)
    for i in range(3):
        r.submit(make_exchange(i))
        assert wait_for(lambda: count(tmp_path) == i + 1)
    r.close()
    seg_dir = tmp_path / "tables" / "exchange_log"
    # the merged file was renamed in, then the process died before the manifest named it
    stray = seg_dir / "w000-000042.parquet"
    merged = ", ".join(f"'{p}'" for p in sorted(seg_dir.glob("w000-*.parquet")))
    import duckdb

    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet([{merged}])) TO '{stray}' (FORMAT parquet)")
    assert count(tmp_path) == 6
    r2 = recorder(tmp_path)
    r2.close()
    assert count(tmp_path) == 3
    assert not stray.exists()  # no reader about at the restart: removed, not left as a placeholder


def test_two_writers_share_one_store(tmp_path):
    a, b = recorder(tmp_path), recorder(tmp_path)
    assert (a.slot.name, b.slot.name) == ("w000", "w001")
    try:
        for i in range(20):
            a.submit(make_exchange(i))
            b.submit(make_exchange(100 + i))
        assert wait_for(lambda: count(tmp_path) == 40)
    finally:
        a.close()
        b.close()
    assert count(tmp_path) == 40
    writers = rows(tmp_path, "SELECT count(DISTINCT regexp_extract(filename, '/(w\\d+)-', 1)) FROM read_parquet('"
                   + str(tmp_path / "tables/exchange_log/w*.parquet") + "', filename=true)")
    assert writers == [(2,)]


def test_orphan_journal_of_a_dead_writer_is_replayed_by_a_survivor(tmp_path):
    w0 = spawn_writer(tmp_path, pause=0.002)
    w1 = spawn_writer(tmp_path, pause=0.002)
    assert {w0.slot, w1.slot} == {"w000", "w001"}
    answered = kill_and_collect(w1, after=1.0) + kill_and_collect(w0, after=0.0)
    r = recorder(tmp_path)  # one survivor claims w000 and finds w001 orphaned
    r.close()
    stored = ids_in_store(tmp_path)
    assert len(stored) == len(set(stored))
    assert set(answered) <= set(stored)
    assert not list((tmp_path / "journal" / "w001").glob("*.jnl"))


def test_past_the_high_water_mark_records_are_read_back_from_the_journal(tmp_path):
    parsed = []

    def parse(exchange, *, capture_content):
        parsed.append(exchange)
        return basic_facts(exchange)

    s = settings(tmp_path)
    r = AuditRecorder(s, [StoreSink(s.store)], parse=parse, queue_high_water=0)
    r.start()
    assert r.ready.wait(30)
    exs = [make_exchange(i, body=bytes([i]) * 1000) for i in range(40)]
    try:
        for ex in exs:
            r.submit(ex)
        assert wait_for(lambda: count(tmp_path) == 40)
    finally:
        r.close()
    # the queue held positions only: what was parsed was read back from the journal, equal to what was sent
    assert parsed == exs
    assert not any(p is e for p, e in zip(parsed, exs))
    got = rows(tmp_path, "SELECT exchange_id, bytes_out FROM exchange_log")
    assert sorted(got) == sorted((e.exchange_id, 1000) for e in exs)


def test_hostile_text_is_journaled_and_stored(tmp_path):
    r = recorder(tmp_path)
    bad = [make_exchange(0, path="/v1/threads/\udcff\udcfe"), make_exchange(1, path="/v1/threads/\ud800x")]
    try:
        for ex in bad:
            r.submit(ex)
        assert wait_for(lambda: count(tmp_path) == 2)
        # what a replay of the journal would store (read before a clean stop empties it)
        replayed = [journal.decode_exchange(p).path for _, p in journal.read_after(tmp_path / "journal" / "w000", None)]
    finally:
        r.close()
    assert r.journal_errors == 0 and r.errors == {}
    paths = sorted(p for (p,) in rows(tmp_path, "SELECT path FROM exchange_log"))
    assert paths == ["/v1/threads/?x", "/v1/threads/\ufffd\ufffd"]
    # a replay of the journal stores the very same text
    assert sorted(replayed) == paths


def test_uncaptured_content_leaves_the_journal_soon_after_it_is_stored(tmp_path):
    """Raw bodies are journaled for crash safety only: once stored, their segment is closed
    (journal_rotate_seconds) and deleted while the recorder keeps running."""
    secret_text = b"the customer's private question about invoice 4711"
    r = recorder(tmp_path, journal_rotate_seconds=0.3)
    journal_dir = tmp_path / "journal" / "w000"

    def journal_holds_text() -> bool:
        return any(secret_text in p.read_bytes() for p in journal_dir.glob("*.jnl"))

    try:
        for i in range(5):
            r.submit(make_exchange(i, body=b'{"object":"thread.message","content":"' + secret_text + b'"}'))
        assert journal_holds_text()  # journaled first: a crash now would replay it
        assert wait_for(lambda: count(tmp_path) == 5)
        assert wait_for(lambda: not journal_holds_text(), timeout=5.0)
        r.submit(make_exchange(5))  # and the recorder keeps journaling afterwards
        assert wait_for(lambda: count(tmp_path) == 6)
    finally:
        r.close()


READER = ("import sys\n"
          "from analytics.store import connect\n"
          "con = connect(sys.argv[1])\n"
          "print('reading', flush=True)\n"
          "sys.stdin.readline()\n")


def test_a_reader_held_for_long_defers_compaction_only_within_bounds(tmp_path):
    import subprocess
    import sys

    from analytics.store import readers_present
    from tests.recording.store_helpers import ROOT

    s = settings(tmp_path)
    sink = StoreSink(s.store, compact_after=4, compact_every=0.0, compact_limit=8, placeholder_limit=8)
    r = AuditRecorder(s, [sink], parse=basic_facts, flush_interval=0.01)
    r.start()
    assert r.ready.wait(30)
    # another process reads the store for as long as the test writes (a `sql` session left open)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    seg_dir = tmp_path / "tables" / "exchange_log"
    most = 0
    try:
        assert reader.stdout.readline().strip() == "reading"
        assert readers_present(tmp_path)
        for i in range(120):  # each one stored before the next: one segment per flush
            r.submit(make_exchange(i))
            assert wait_for(lambda: count(tmp_path) == i + 1)
            most = max(most, len(list(seg_dir.glob("w000-*.parquet"))))
        assert sink.compactions_deferred > 0  # the reader was seen and respected for a while
    finally:
        reader.stdin.close()
        reader.wait(30)
        r.close()
    assert most <= 2 * 8 + 8 + 2, most  # live segments, placeholders and one round's parts
    assert count(tmp_path) == 120 and len(set(ids_in_store(tmp_path))) == 120
    # stopped with no reader left: no empty placeholder stays behind
    files = {p.name for p in seg_dir.glob("w000-*.parquet")}
    assert files == set(live_rows_per_file(tmp_path)), files - set(live_rows_per_file(tmp_path))
    r2 = recorder(tmp_path)
    r2.close()
    assert count(tmp_path) == 120 and r2.replayed == 0
