"""The recorder: journaled exchanges become rows while it runs, and nothing is lost or doubled
across kill -9 (of the process that journals them or of the one that stores them)."""

from __future__ import annotations

import subprocess
import sys
import threading

import duckdb

from analytics.store import readers_present
from proxy.recording import journal
from proxy.recording.recorder import basic_facts
from tests.exchanges import exchange
from tests.recording.store_helpers import ROOT, kill_and_collect, recorder, rows, spawn_writer, wait_for


def count(store) -> int:
    return rows(store, "SELECT count(*) FROM exchange_log")[0][0]


def ids_in_store(store) -> list[str]:
    return [r[0] for r in rows(store, "SELECT exchange_id FROM exchange_log")]


def segments(store, slot: str = "w000") -> list[str]:
    return sorted(p.name for p in (store / "journal" / slot).glob("*.jnl"))


def test_rows_become_visible_while_the_recorder_runs(tmp_path):
    r = recorder(tmp_path)
    try:
        exs = [exchange(i) for i in range(50)]
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
        r.submit(exchange(i))
    r.close()
    # a clean stop with every record stored leaves no segment (raw bodies do not linger on disk)
    assert segments(tmp_path) == []
    r2 = recorder(tmp_path)
    r2.close()
    assert count(tmp_path) == 30 and r2.records == 0


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


def test_a_segment_written_after_the_checkpoint_is_not_doubled(tmp_path):
    """The recorder died between writing a Parquet segment and moving the checkpoint: the next
    one replaces that segment and stores its records again from the journal, once."""
    r = recorder(tmp_path)
    for i in range(10):
        r.submit(exchange(i))
    assert wait_for(lambda: count(tmp_path) == 10)
    checkpoint = tmp_path / "journal" / "w000" / "checkpoint.json"
    saved = checkpoint.read_bytes()
    for i in range(10, 15):
        r.submit(exchange(i))
    assert wait_for(lambda: count(tmp_path) == 15)
    # the disk as that crash leaves it: every journal segment still there, the checkpoint not moved
    journaled = {p: p.read_bytes() for p in (tmp_path / "journal" / "w000").glob("*.jnl")}
    r.close()
    checkpoint.write_bytes(saved)
    for path, data in journaled.items():
        path.write_bytes(data)
    assert count(tmp_path) == 15
    r2 = recorder(tmp_path)
    r2.close()
    stored = ids_in_store(tmp_path)
    assert len(stored) == 15 and len(set(stored)) == 15
    assert r2.records == 5


def live_rows_per_file(store) -> dict[str, int]:
    got = rows(store, "SELECT regexp_extract(filename, '[^/]+$'), count(*) FROM read_parquet('"
               + str(store / "tables/exchange_log/w*.parquet") + "', filename=true) GROUP BY 1")
    return dict(got)


def test_compaction_bounds_files_and_never_removes_a_name_a_reader_may_hold(tmp_path):
    # the recorder compacts after every flush; each exchange is stored before the next is sent
    r = recorder(tmp_path, store_options=dict(compact_after=4, compact_every=0.0), flush_interval=0.05)
    seg_dir = tmp_path / "tables" / "exchange_log"
    names_seen: set[str] = set()
    for i in range(12):
        r.submit(exchange(i))
        assert wait_for(lambda: count(tmp_path) == i + 1)
        # every name ever handed out still exists (replaced atomically, never unlinked)
        names = {p.name for p in seg_dir.glob("w000-*.parquet")}
        assert names_seen <= names
        names_seen |= names
    r.close()
    assert sum(s.flushes for s in r.stores) >= 12
    assert len(live_rows_per_file(tmp_path)) <= 4  # live segments stay bounded
    assert len(names_seen) <= 6  # and so do file names
    assert count(tmp_path) == 12


def test_a_crash_mid_compaction_is_repaired_at_restart(tmp_path):
    r = recorder(tmp_path)
    for i in range(3):
        r.submit(exchange(i))
        assert wait_for(lambda: count(tmp_path) == i + 1)
    r.close()
    seg_dir = tmp_path / "tables" / "exchange_log"
    # the merged file was renamed in, then the process died before the manifest named it
    stray = seg_dir / "w000-000042.parquet"
    merged = ", ".join(f"'{p}'" for p in sorted(seg_dir.glob("w000-*.parquet")))
    duckdb.connect().execute(f"COPY (SELECT * FROM read_parquet([{merged}])) TO '{stray}' (FORMAT parquet)")
    assert count(tmp_path) == 6
    r2 = recorder(tmp_path)
    r2.close()
    assert count(tmp_path) == 3
    assert not stray.exists()  # no reader about at the restart: removed, not left as a placeholder


def close_together(*recorders) -> None:
    """Each recorder waits at close for the writers of the slots it follows: stop them at once."""
    threads = [threading.Thread(target=r.close) for r in recorders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


def test_two_proxies_share_one_store_each_slot_followed_once(tmp_path):
    a, b = recorder(tmp_path), recorder(tmp_path)
    assert (a.appender.name, b.appender.name) == ("w000", "w001")
    try:
        for i in range(20):
            a.submit(exchange(i))
            b.submit(exchange(100 + i))
        assert wait_for(lambda: count(tmp_path) == 40)
        # each journal slot is followed by exactly one of the two recorders
        assert wait_for(lambda: sorted(a.slots() + b.slots()) == ["w000", "w001"])
    finally:
        close_together(a, b)
    stored = ids_in_store(tmp_path)
    assert len(stored) == 40 and len(set(stored)) == 40
    writers = rows(tmp_path, "SELECT count(DISTINCT regexp_extract(filename, '/(w\\d+)-', 1)) FROM read_parquet('"
                   + str(tmp_path / "tables/exchange_log/w*.parquet") + "', filename=true)")
    assert writers == [(2,)]


def test_a_dead_writers_journal_is_stored_by_a_running_recorder(tmp_path):
    w0 = spawn_writer(tmp_path, pause=0.002)
    w1 = spawn_writer(tmp_path, pause=0.002)
    assert {w0.slot, w1.slot} == {"w000", "w001"}
    dead = kill_and_collect(w1, after=1.0)
    assert dead
    # w0's recorder takes the dead process's slot over and stores its journal while w0 keeps serving
    assert wait_for(lambda: set(dead) <= set(ids_in_store(tmp_path)), timeout=60)
    answered = dead + kill_and_collect(w0, after=0.0)
    r = recorder(tmp_path)  # claims w000 again and finds w001 without a writer
    r.close()
    stored = ids_in_store(tmp_path)
    assert len(stored) == len(set(stored))
    assert set(answered) <= set(stored)
    assert segments(tmp_path, w1.slot) == []  # nobody writes it any more: stored, then deleted


def test_what_is_parsed_is_read_back_from_the_journal_equal_to_what_was_sent(tmp_path):
    parsed = []

    def parse(exchange, *, capture_content):
        parsed.append(exchange)
        return basic_facts(exchange)

    r = recorder(tmp_path, parse=parse)
    exs = [exchange(i, body=bytes([i]) * 1000) for i in range(40)]
    try:
        for ex in exs:
            r.submit(ex)
        assert wait_for(lambda: count(tmp_path) == 40)
    finally:
        r.close()
    # nothing crosses from the appender to the recorder but the journal
    assert parsed == exs
    assert not any(p is e for p, e in zip(parsed, exs))
    got = rows(tmp_path, "SELECT exchange_id, bytes_out FROM exchange_log")
    assert sorted(got) == sorted((e.exchange_id, 1000) for e in exs)


def test_hostile_text_is_journaled_and_stored(tmp_path):
    r = recorder(tmp_path)
    bad = [exchange(0, path="/v1/threads/\udcff\udcfe"), exchange(1, path="/v1/threads/\ud800x")]
    try:
        for ex in bad:
            r.submit(ex)
        assert wait_for(lambda: count(tmp_path) == 2)
        # what a replay of the journal would store (read before a clean stop empties it)
        replayed = [journal.decode_exchange(p).path for _, p in journal.read_after(tmp_path / "journal" / "w000", None)]
    finally:
        r.close()
    assert r.appender.journal_errors == 0 and r.errors == {}
    paths = sorted(p for (p,) in rows(tmp_path, "SELECT path FROM exchange_log"))
    assert paths == ["/v1/threads/?x", "/v1/threads/\ufffd\ufffd"]
    # a replay of the journal stores the very same text
    assert sorted(replayed) == paths


def test_uncaptured_content_leaves_the_journal_soon_after_it_is_stored(tmp_path):
    """Raw bodies are journaled for crash safety only: once stored, their segment is closed
    (the appender's rotate_seconds) and deleted while the recorder keeps running."""
    secret_text = b"the customer's private question about invoice 4711"
    r = recorder(tmp_path, journal_options=dict(rotate_seconds=0.3))
    journal_dir = tmp_path / "journal" / "w000"

    def journal_holds_text() -> bool:
        return any(secret_text in p.read_bytes() for p in journal_dir.glob("*.jnl"))

    try:
        for i in range(5):
            r.submit(exchange(i, body=b'{"object":"thread.message","content":"' + secret_text + b'"}'))
        assert journal_holds_text()  # journaled first: a crash now would replay it
        assert wait_for(lambda: count(tmp_path) == 5)
        assert wait_for(lambda: not journal_holds_text(), timeout=10.0)
        r.submit(exchange(5))  # and the proxy keeps journaling afterwards
        assert wait_for(lambda: count(tmp_path) == 6)
    finally:
        r.close()


READER = ("import sys\n"
          "from analytics.store import connect\n"
          "con = connect(sys.argv[1])\n"
          "print('reading', flush=True)\n"
          "sys.stdin.readline()\n")


def test_a_reader_held_for_long_defers_compaction_only_within_bounds(tmp_path):
    r = recorder(tmp_path, store_options=dict(compact_after=4, compact_every=0.0, compact_limit=8,
                                              placeholder_limit=8), flush_interval=0.01)
    # another process reads the store for as long as the test writes (a `sql` session left open)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    seg_dir = tmp_path / "tables" / "exchange_log"
    most = 0
    try:
        assert reader.stdout.readline().strip() == "reading"
        assert readers_present(tmp_path)
        for i in range(120):  # each one stored before the next: one segment per flush
            r.submit(exchange(i))
            assert wait_for(lambda: count(tmp_path) == i + 1)
            most = max(most, len(list(seg_dir.glob("w000-*.parquet"))))
        [sink] = r.stores
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
    assert count(tmp_path) == 120 and r2.records == 0
