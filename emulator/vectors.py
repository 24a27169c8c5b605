"""Vector stores as OpenAI bills them: files are processed after a delay, then count towards
`usage_bytes`; activity moves `last_active_at` and with it `expires_at`; a store whose
`expires_at` has passed is `expired`. Search scores chunks of the uploaded text by term overlap."""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.state import Store

DAY = 86_400
DEFAULT_CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
# file_search only indexes text-like documents; anything else fails as OpenAI's did.
SEARCHABLE = (".txt", ".md", ".pdf", ".json", ".html", ".htm", ".py", ".c", ".cpp", ".cs", ".java", ".js", ".ts",
              ".rb", ".go", ".php", ".sh", ".tex", ".css", ".docx", ".doc", ".pptx")
_WORD = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class Chunk:
    file_id: str
    filename: str
    index: int
    text: str


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def file_text(store: Store, file_id: str) -> str:
    return store.file_bytes.get(file_id, b"").decode("utf-8", errors="replace")


def chunks(store: Store, vs_file: dict) -> list[Chunk]:
    file_id = vs_file["id"]
    static = vs_file["chunking_strategy"]["static"]
    size = max(1, int(static["max_chunk_size_tokens"]))
    step = max(1, size - int(static["chunk_overlap_tokens"]))
    tokens = file_text(store, file_id).split()
    name = store.files[file_id]["filename"] if file_id in store.files else file_id
    out = []
    for i, start in enumerate(range(0, max(1, len(tokens)), step)):
        out.append(Chunk(file_id, name, i, " ".join(tokens[start:start + size])))
        if start + size >= len(tokens):
            break
    return out


def new_vs_file(store: Store, vs_id: str, file_id: str, chunking: dict | None, attributes: dict | None,
                processing_seconds: float) -> dict:
    f = store.files[file_id]
    supported = f["filename"].lower().endswith(SEARCHABLE)
    return {
        "id": file_id,
        "usage_bytes": 0,
        "created_at": store.now(),
        "vector_store_id": vs_id,
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": chunking or DEFAULT_CHUNKING,
        "attributes": attributes or {},
        "_ready_at": store.clock.now() + processing_seconds,
        "_outcome": "completed" if supported else "failed",
        "_usage": f["bytes"],
        "_batch_id": None,
    }


def refresh_file(vs_file: dict, now: float) -> None:
    if vs_file["status"] == "in_progress" and now >= vs_file["_ready_at"]:
        if vs_file["_outcome"] == "completed":
            vs_file["status"] = "completed"
            vs_file["usage_bytes"] = vs_file["_usage"]
        else:
            vs_file["status"] = "failed"
            vs_file["last_error"] = {"code": "unsupported_file", "message": "The file type is not supported."}


def files_of(store: Store, vs_id: str) -> list[dict]:
    return list(store.vs_files.get(vs_id, {}).values())


def counts(files: list[dict]) -> dict:
    c = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
    for f in files:
        c[f["status"]] += 1
    c["total"] = len(files)
    return c


def refresh(store: Store, vs: dict) -> dict:
    """Bring a vector store up to the clock: finished files, usage, expiry."""
    now = store.clock.now()
    files = files_of(store, vs["id"])
    for f in files:
        refresh_file(f, now)
    vs["file_counts"] = counts(files)
    vs["usage_bytes"] = sum(f["usage_bytes"] for f in files)
    if vs["expires_at"] is not None and now >= vs["expires_at"]:
        vs["status"] = "expired"
    elif vs["file_counts"]["in_progress"]:
        vs["status"] = "in_progress"
    else:
        vs["status"] = "completed"
    return vs


def touch(store: Store, vs: dict) -> None:
    """The store was used (search, a run's file_search): it is active now."""
    vs["last_active_at"] = store.now()
    set_expiry(vs)


def set_expiry(vs: dict) -> None:
    after = vs.get("expires_after")
    if after:
        anchor = vs["last_active_at"] if after["anchor"] == "last_active_at" else vs["created_at"]
        vs["expires_at"] = anchor + int(after["days"]) * DAY
    else:
        vs["expires_at"] = None


def batch_files(store: Store, batch: dict) -> list[dict]:
    owned = store.vs_files.get(batch["vector_store_id"], {})
    return [owned[fid] for fid in batch["_file_ids"] if fid in owned]


def refresh_batch(store: Store, batch: dict) -> dict:
    now = store.clock.now()
    files = batch_files(store, batch)
    for f in files:
        refresh_file(f, now)
    batch["file_counts"] = counts(files)
    if batch["status"] == "in_progress" and not batch["file_counts"]["in_progress"]:
        batch["status"] = "completed"
    return batch


def search(store: Store, vs_ids: list[str], query: str, max_results: int,
           file_ids: list[str] | None = None) -> list[tuple[Chunk, float]]:
    """Chunks scored by the share of query terms they contain; best first, ties in upload order."""
    terms = set(words(query))
    scored: list[tuple[float, int, Chunk]] = []
    order = 0
    for vs_id in vs_ids:
        vs = store.vector_stores.get(vs_id)
        if vs is None:
            continue
        refresh(store, vs)
        for f in files_of(store, vs_id):
            if f["status"] != "completed" or (file_ids is not None and f["id"] not in file_ids):
                continue
            for chunk in chunks(store, f):
                order += 1
                hits = terms & set(words(chunk.text))
                if terms and hits:
                    scored.append((round(len(hits) / len(terms), 4), order, chunk))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(chunk, score) for score, _, chunk in scored[:max_results]]


def search_v1_files(store: Store, file_ids: list[str], query: str, max_results: int) -> list[tuple[Chunk, float]]:
    """v1 retrieval searches the files attached to the assistant/message directly."""
    terms = set(words(query))
    scored: list[tuple[float, int, Chunk]] = []
    for order, fid in enumerate(file_ids):
        if fid not in store.files:
            continue
        fake = {"id": fid, "chunking_strategy": DEFAULT_CHUNKING}
        for chunk in chunks(store, fake):
            hits = terms & set(words(chunk.text))
            if terms and hits:
                scored.append((round(len(hits) / len(terms), 4), order, chunk))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(chunk, score) for score, _, chunk in scored[:max_results]]


def usage_at(store: Store, t: float) -> int:
    """Bytes billed at time t: completed files of stores that existed and had not expired then.
    Deleted stores are forgotten, so they do not count (a simplification)."""
    total = 0
    for vs in store.vector_stores.values():
        if vs["created_at"] > t or (vs["expires_at"] is not None and vs["expires_at"] <= t):
            continue
        for f in files_of(store, vs["id"]):
            if f["_outcome"] == "completed" and f["status"] != "cancelled" and f["_ready_at"] <= t:
                total += f["_usage"]
    return total
