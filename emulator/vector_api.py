"""HTTP handlers for files and vector stores (v1 and v2 alike; they also work without OpenAI-Beta)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator import models, vectors
from emulator.app import base_headers, send_bytes, send_json
from emulator.errors import bad_request, missing, not_found
from emulator.http_helpers import check_metadata, list_response, lookup, read_json, store_of, version_of
from emulator.state import Store, paginate


# -- files -----------------------------------------------------------------------------------------
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


async def upload_file(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    if not request.content_type.startswith("multipart/"):
        raise bad_request("Invalid Content-Type header (application/json), expected multipart/form-data.")
    reader = await request.multipart()
    purpose, filename, data = None, None, None
    async for part in reader:
        if part.name == "purpose":
            purpose = (await part.text()).strip()
        elif part.name == "file":
            filename = part.filename or "upload"
            data = bytes(await part.read())
    if data is None:
        raise missing("file")
    if not purpose:
        raise missing("purpose")
    if purpose not in FILE_PURPOSES:
        raise bad_request(f"Invalid value for 'purpose': '{purpose}'.", param="purpose", code="invalid_value")
    f = {"id": store.ids.new("file"), "purpose": purpose, "filename": filename, "bytes": declared_size(request, data),
         "created_at": store.now(), "expires_at": None, "status": "processed", "status_details": None}
    store.files[f["id"]] = f
    store.file_bytes[f["id"]] = data
    return await send_json(request, models.file(f, version))


# Test knob (not an OpenAI header): the size a file says it has, so a test can have gigabytes of
# vector store storage without uploading them. See emulator/SCRIPT.md.
FILE_BYTES_HEADER = "X-Emulator-File-Bytes"


def declared_size(request: web.Request, data: bytes) -> int:
    value = request.headers.get(FILE_BYTES_HEADER)
    if value is None:
        return len(data)
    if not value.strip().isdigit():
        raise bad_request(f"Invalid '{FILE_BYTES_HEADER}': expected a number of bytes.", param=FILE_BYTES_HEADER,
                          code="invalid_value")
    return int(value)


async def list_files(request: web.Request) -> web.StreamResponse:
    version = version_of(request)
    items = list(store_of(request).files.values())
    purpose = request.query.get("purpose")
    if purpose:
        items = [f for f in items if f["purpose"] == purpose]
    data, has_more = paginate(items, dict(request.query), default_order="desc")
    return await send_json(request, models.page([models.file(f, version) for f in data], has_more))


async def get_file(request: web.Request) -> web.StreamResponse:
    f = lookup(store_of(request).files, "file", request.match_info["file_id"])
    return await send_json(request, models.file(f, version_of(request)))


async def delete_file(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    f = lookup(store.files, "file", request.match_info["file_id"])
    del store.files[f["id"]]
    return await send_json(request, models.deleted(f["id"], "file") | {"object": "file"})


async def file_content(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    f = lookup(store.files, "file", request.match_info["file_id"])
    headers = base_headers(request)
    headers["Content-Type"] = "application/octet-stream"
    headers["Content-Disposition"] = f'attachment; filename="{f["filename"]}"'
    return await send_bytes(request, store.file_bytes.get(f["id"], b""), 200, headers)


# -- vector stores ---------------------------------------------------------------------------------
def expires_after(after: Any) -> dict | None:
    if after is None:
        return None
    if not isinstance(after, dict) or after.get("anchor") != "last_active_at":
        anchor = after.get("anchor") if isinstance(after, dict) else after
        raise bad_request(f"Invalid value: '{anchor}'. Supported values are: 'last_active_at'.",
                          param="expires_after.anchor", code="invalid_value")
    if not isinstance(after.get("days"), int) or not 1 <= after["days"] <= 365:
        raise bad_request("Invalid 'expires_after.days': expected an integer between 1 and 365.",
                          param="expires_after.days", code="integer_out_of_range")
    return {"anchor": "last_active_at", "days": after["days"]}


def create_vector_store(store: Store, body: dict) -> dict:
    after = expires_after(body.get("expires_after"))
    now = store.now()
    vs = {"id": store.ids.new("vs"), "name": body.get("name"), "status": "completed", "usage_bytes": 0,
          "created_at": now, "file_counts": vectors.counts([]), "metadata": check_metadata(body.get("metadata")),
          "expires_after": after, "expires_at": None, "last_active_at": now}
    vectors.set_expiry(vs)
    store.vector_stores[vs["id"]] = vs
    for fid in body.get("file_ids") or []:
        add_vs_file(store, vs, fid, body.get("chunking_strategy"), None)
    return vectors.refresh(store, vs)


def add_vs_file(store: Store, vs: dict, file_id: str, chunking: dict | None, attributes: dict | None) -> dict:
    lookup(store.files, "file", file_id)
    chunking = chunking_strategy(chunking)
    f = vectors.new_vs_file(store, vs["id"], file_id, chunking, attributes, store.processing_seconds)
    store.vs_files.setdefault(vs["id"], {})[file_id] = f
    return f


def chunking_strategy(spec: dict | None) -> dict | None:
    if not spec or spec.get("type") == "auto":
        return None
    if spec.get("type") != "static":
        raise bad_request(f"Invalid value: '{spec.get('type')}'. Supported values are: 'auto' and 'static'.",
                          param="chunking_strategy.type", code="invalid_value")
    static = spec.get("static") or {}
    size = int(static.get("max_chunk_size_tokens", 800))
    overlap = int(static.get("chunk_overlap_tokens", 400))
    if not 100 <= size <= 4096 or overlap > size // 2:
        raise bad_request("Invalid 'chunking_strategy.static': max_chunk_size_tokens must be between 100 and 4096 "
                          "and chunk_overlap_tokens must not exceed half of it.", param="chunking_strategy.static")
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def vector_store_of(request: web.Request) -> dict:
    store = store_of(request)
    vs = lookup(store.vector_stores, "vector store", request.match_info["vector_store_id"])
    return vectors.refresh(store, vs)


async def create_vs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = create_vector_store(store, await read_json(request))
    return await send_json(request, models.vector_store(vs, version_of(request)))


async def get_vs(request: web.Request) -> web.StreamResponse:
    return await send_json(request, models.vector_store(vector_store_of(request), version_of(request)))


async def update_vs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = vector_store_of(request)
    body = await read_json(request)
    if "name" in body:
        vs["name"] = body["name"]
    if "metadata" in body:
        vs["metadata"] = check_metadata(body["metadata"])
    if "expires_after" in body:
        vs["expires_after"] = expires_after(body["expires_after"])
        vectors.set_expiry(vs)
    return await send_json(request, models.vector_store(vectors.refresh(store, vs), version_of(request)))


async def delete_vs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = lookup(store.vector_stores, "vector store", request.match_info["vector_store_id"])
    del store.vector_stores[vs["id"]]
    store.vs_files.pop(vs["id"], None)
    return await send_json(request, models.deleted(vs["id"], "vector_store"))


async def list_vs(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    items = [vectors.refresh(store, vs) for vs in store.vector_stores.values()]
    return await send_json(request, list_response(request, items, lambda v: models.vector_store(v, version)))


async def search_vs(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = vector_store_of(request)
    body = await read_json(request)
    query = body.get("query")
    if isinstance(query, list):
        query = " ".join(str(q) for q in query)
    if not query:
        raise missing("query")
    max_results = int(body.get("max_num_results", 10))
    if not 1 <= max_results <= 50:
        raise bad_request("Invalid 'max_num_results': expected an integer between 1 and 50.",
                          param="max_num_results", code="integer_out_of_range")
    vectors.touch(store, vs)
    hits = vectors.search(store, [vs["id"]], query, max_results)
    data = [{"file_id": c.file_id, "filename": c.filename, "score": score,
             "attributes": store.vs_files[vs["id"]][c.file_id]["attributes"],
             "content": [{"type": "text", "text": c.text}]} for c, score in hits]
    return await send_json(request, {"object": "vector_store.search_results.page", "search_query": query,
                                     "data": data, "has_more": False, "next_page": None})


async def create_vs_file(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = vector_store_of(request)
    body = await read_json(request)
    if not body.get("file_id"):
        raise missing("file_id")
    f = add_vs_file(store, vs, body["file_id"], body.get("chunking_strategy"), body.get("attributes"))
    vectors.refresh(store, vs)
    return await send_json(request, models.vector_store_file(f, version_of(request)))


def vs_file_of(request: web.Request) -> dict:
    store = store_of(request)
    vs = vector_store_of(request)
    file_id = request.match_info["file_id"]
    f = store.vs_files.get(vs["id"], {}).get(file_id)
    if f is None:
        raise not_found("file", file_id)
    return f


async def get_vs_file(request: web.Request) -> web.StreamResponse:
    return await send_json(request, models.vector_store_file(vs_file_of(request), version_of(request)))


async def update_vs_file(request: web.Request) -> web.StreamResponse:
    f = vs_file_of(request)
    body = await read_json(request)
    if "attributes" not in body:
        raise missing("attributes")
    f["attributes"] = dict(body["attributes"] or {})
    return await send_json(request, models.vector_store_file(f, version_of(request)))


async def delete_vs_file(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    f = vs_file_of(request)
    del store.vs_files[f["vector_store_id"]][f["id"]]
    return await send_json(request, models.deleted(f["id"], "vector_store.file"))


async def vs_file_content(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    f = vs_file_of(request)
    data = [{"type": "text", "text": c.text} for c in vectors.chunks(store, f)] if f["status"] == "completed" else []
    return await send_json(request, {"object": "vector_store.file_content.page", "data": data,
                                     "has_more": False, "next_page": None})


async def list_vs_files(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    vs = vector_store_of(request)
    items = vectors.files_of(store, vs["id"])
    status = request.query.get("filter")
    if status:
        items = [f for f in items if f["status"] == status]
    return await send_json(request, list_response(request, items, lambda f: models.vector_store_file(f, version)))


async def create_batch(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    vs = vector_store_of(request)
    body = await read_json(request)
    file_ids = list(body.get("file_ids") or [])
    for item in body.get("files") or []:
        file_ids.append(item.get("file_id"))
    if not file_ids:
        raise missing("file_ids")
    batch = {"id": store.ids.new("vsfb"), "created_at": store.now(), "status": "in_progress",
             "vector_store_id": vs["id"], "file_counts": vectors.counts([]), "_file_ids": file_ids}
    for fid in file_ids:
        f = add_vs_file(store, vs, fid, body.get("chunking_strategy"), body.get("attributes"))
        f["_batch_id"] = batch["id"]
    store.batches[batch["id"]] = batch
    vectors.refresh(store, vs)
    return await send_json(request, models.file_batch(vectors.refresh_batch(store, batch), version_of(request)))


def batch_of(request: web.Request) -> dict:
    store = store_of(request)
    vs = vector_store_of(request)
    batch = lookup(store.batches, "file batch", request.match_info["batch_id"])
    if batch["vector_store_id"] != vs["id"]:
        raise not_found("file batch", batch["id"])
    return vectors.refresh_batch(store, batch)


async def get_batch(request: web.Request) -> web.StreamResponse:
    return await send_json(request, models.file_batch(batch_of(request), version_of(request)))


async def cancel_batch(request: web.Request) -> web.StreamResponse:
    store = store_of(request)
    batch = batch_of(request)
    if batch["status"] == "in_progress":
        for f in vectors.batch_files(store, batch):
            if f["status"] == "in_progress":
                f["status"] = "cancelled"
        batch["status"] = "cancelled"
        vectors.refresh_batch(store, batch)
    return await send_json(request, models.file_batch(batch, version_of(request)))


async def list_batch_files(request: web.Request) -> web.StreamResponse:
    store, version = store_of(request), version_of(request)
    batch = batch_of(request)
    items = vectors.batch_files(store, batch)
    status = request.query.get("filter")
    if status:
        items = [f for f in items if f["status"] == status]
    return await send_json(request, list_response(request, items, lambda f: models.vector_store_file(f, version)))


BUCKET_SECONDS = {"1m": 60, "1h": 3600, "1d": 86_400}


async def usage_vector_stores(request: web.Request) -> web.StreamResponse:
    """GET /organization/usage/vector_stores: billed bytes per time bucket."""
    store = store_of(request)
    query = request.query
    if "start_time" not in query:
        raise missing("start_time")
    width = query.get("bucket_width", "1d")
    if width not in BUCKET_SECONDS:
        raise bad_request(f"Invalid value: '{width}'. Supported values are: '1m', '1h', and '1d'.",
                          param="bucket_width", code="invalid_value")
    try:
        start = int(query["start_time"])
        end = int(query.get("end_time", store.now()))
        limit = int(query.get("limit", {"1m": 60, "1h": 24, "1d": 7}[width]))
        first = int(query.get("page", start))
    except ValueError:
        raise bad_request("Invalid integer in start_time, end_time, limit or page.", code="invalid_type") from None
    step = BUCKET_SECONDS[width]
    buckets, t = [], first
    while t < end and len(buckets) < limit:
        bucket_end = min(t + step, end)
        buckets.append({"object": "bucket", "start_time": t, "end_time": bucket_end, "results": [{
            "object": "organization.usage.vector_stores.result",
            "usage_bytes": vectors.usage_at(store, min(bucket_end, store.clock.now())), "project_id": None}]})
        t += step
    more = t < end
    return await send_json(request, {"object": "page", "data": buckets, "has_more": more,
                                     "next_page": str(t) if more else None})
