"""Files attached to and detached from v1 assistants with /assistants/{id}/files change what is
billed as retrieval storage at the moment of the call, not when the assistant is next seen.
The SDKs that still have `assistants.files` are old, so the v1 calls go as raw HTTP through the
current SDK's client (`client.post(...)` with `OpenAI-Beta: assistants=v1`)."""

from __future__ import annotations

import io

import pytest

from tests.recording.recorded import rows as q

V1 = {"OpenAI-Beta": "assistants=v1"}


def _v1(client, method: str, path: str, body: dict | None = None) -> dict:
    kwargs = {"body": body} if body is not None else {}
    return getattr(client, method)(path, cast_to=object, options={"headers": V1}, **kwargs)


def _answered_at(con, operation: str) -> float:
    """When the proxy saw the answer of the (single) exchange of `operation`: its facts' time."""
    (row,) = q(con, "SELECT epoch(started_at) + duration_ms / 1000 AS t FROM exchanges WHERE operation = ?", operation)
    return row["t"]


def test_v1_assistant_files_are_billed_from_attach_to_detach(recording_proxy):
    client = recording_proxy.client
    kept = client.files.create(file=("kept.md", io.BytesIO(b"kept " * 4000)), purpose="assistants")
    dropped = client.files.create(file=("dropped.md", io.BytesIO(b"drop " * 1000)), purpose="assistants")
    added = client.files.create(file=("added.md", io.BytesIO(b"added " * 3000)), purpose="assistants")
    asst = client.beta.assistants.create(model="gpt-4-turbo", tools=[{"type": "retrieval"}], extra_headers=V1,
                                         extra_body={"file_ids": [kept.id, dropped.id]})
    attached = _v1(client, "post", f"/assistants/{asst.id}/files", {"file_id": added.id})
    assert attached["object"] == "assistant.file"
    assert _v1(client, "delete", f"/assistants/{asst.id}/files/{dropped.id}")["deleted"] is True
    assert {f["id"] for f in _v1(client, "get", f"/assistants/{asst.id}/files")["data"]} == {kept.id, added.id}
    assert _v1(client, "get", f"/assistants/{asst.id}/files/{added.id}")["id"] == added.id
    con = recording_proxy.finish()

    created, attach, detach = (_answered_at(con, op) for op in
                               ("assistants.create", "assistants.files.create", "assistants.files.delete"))
    # storage: each file's bytes for exactly its attached time, whatever the day split
    intervals = q(con, """SELECT epoch(t0) AS t0, epoch(t1) AS t1, bytes FROM storage_intervals
                          WHERE scope = 'retrieval' AND subject_id = ? ORDER BY t0, bytes""", asst.id)
    by_bytes: dict[int, list[tuple[float, float]]] = {}
    for r in intervals:
        by_bytes.setdefault(r["bytes"], []).append((r["t0"], r["t1"]))
    assert by_bytes[dropped.bytes] == [(pytest.approx(created, abs=1e-3), pytest.approx(detach, abs=1e-3))]
    assert min(t0 for t0, _ in by_bytes[added.bytes]) == pytest.approx(attach, abs=1e-3)
    assert min(t0 for t0, _ in by_bytes[kept.bytes]) == pytest.approx(created, abs=1e-3)
    assert set(by_bytes) == {kept.bytes, dropped.bytes, added.bytes}
    # the daily GiB-days are those intervals (one query: one now() for the open ones)
    (check,) = q(con, """SELECT (SELECT sum(gib_days) FROM retrieval_storage_daily WHERE assistant_id = $1) AS daily,
                                (SELECT sum(bytes * (epoch(t1) - epoch(t0))) / 2^30 / 86400 FROM storage_intervals
                                 WHERE scope = 'retrieval' AND subject_id = $1) AS intervals""", asst.id)
    assert check["daily"] == pytest.approx(check["intervals"], rel=1e-9) and check["daily"] > 0

    billed = {r["file_id"]: r for r in q(con, """
        SELECT a.file_id, min(epoch(a.attached_at)) AS since, max(epoch(coalesce(a.detached_at, now()))) AS until,
               bool_or(a.detached_at IS NULL) AS still
        FROM attached_file_intervals a WHERE owner = 'assistant' AND owner_id = ? GROUP BY a.file_id""", asst.id)}
    assert billed[kept.id]["since"] == pytest.approx(created, abs=1e-3) and billed[kept.id]["still"]
    assert billed[added.id]["since"] == pytest.approx(attach, abs=1e-3) and billed[added.id]["still"]
    assert billed[dropped.id]["since"] == pytest.approx(created, abs=1e-3)
    assert billed[dropped.id]["until"] == pytest.approx(detach, abs=1e-3) and not billed[dropped.id]["still"]


def test_v1_message_files_are_folded_into_the_messages_attachments(recording_proxy):
    client = recording_proxy.client
    doc = client.files.create(file=("notes.md", io.BytesIO(b"notes " * 100)), purpose="assistants")
    thread = client.beta.threads.create(extra_headers=V1)
    message = _v1(client, "post", f"/threads/{thread.id}/messages",
                  {"role": "user", "content": "read this", "file_ids": [doc.id]})
    listed = _v1(client, "get", f"/threads/{thread.id}/messages/{message['id']}/files")
    assert [f["object"] for f in listed["data"]] == ["thread.message.file"]
    assert _v1(client, "get", f"/threads/{thread.id}/messages/{message['id']}/files/{doc.id}")["id"] == doc.id
    con = recording_proxy.finish()
    created = _answered_at(con, "messages.create")
    seen = q(con, """SELECT file_id, min(epoch(attached_at)) AS since, bool_or(detached_at IS NULL) AS still
                     FROM attached_file_intervals WHERE owner = 'message' AND owner_id = ? GROUP BY file_id""",
             message["id"])
    assert seen == [{"file_id": doc.id, "since": pytest.approx(created, abs=1e-3), "still": True}]
    calls = q(con, "SELECT file_id, attached FROM attached_file_observations WHERE owner = 'message' AND owner_id = ?",
              message["id"])
    assert calls == [{"file_id": doc.id, "attached": True}] * 2
    assert q(con, "SELECT v1_semantics FROM exchanges WHERE operation LIKE 'messages.files.%'") == [
        {"v1_semantics": True}] * 2
