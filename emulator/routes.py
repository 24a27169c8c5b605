"""The route table: every endpoint under /v1 (OpenAI), /openai (Azure OpenAI) and a Foundry project
(/api/projects/{project}: the Assistants protocol only), plus the control endpoint."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator import handlers as h
from emulator import responses_api
from emulator import vector_api as v
from emulator.app import ENGINE, FOUNDRY_PREFIX, STORE


# -- control (not part of the OpenAI API) ----------------------------------------------------------
async def advance_clock(request: web.Request) -> web.Response:
    """POST /_emulator/advance?seconds=N moves the emulated clock forward (expiry tests)."""
    store = request.app[STORE]
    store.clock.advance(float(request.query.get("seconds", "0")))
    request.app[ENGINE].advance_all()
    return web.json_response({"now": store.clock.now()})


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/assistants", h.create_assistant),
    ("GET", "/assistants", h.list_assistants),
    ("GET", "/assistants/{assistant_id}", h.get_assistant),
    ("POST", "/assistants/{assistant_id}", h.update_assistant),
    ("DELETE", "/assistants/{assistant_id}", h.delete_assistant),
    ("POST", "/assistants/{assistant_id}/files", h.create_assistant_file),
    ("GET", "/assistants/{assistant_id}/files", h.list_assistant_files),
    ("GET", "/assistants/{assistant_id}/files/{file_id}", h.get_assistant_file),
    ("DELETE", "/assistants/{assistant_id}/files/{file_id}", h.delete_assistant_file),
    ("POST", "/threads", h.create_thread),
    ("POST", "/threads/runs", h.create_thread_and_run),
    ("GET", "/threads/{thread_id}", h.get_thread),
    ("POST", "/threads/{thread_id}", h.update_thread),
    ("DELETE", "/threads/{thread_id}", h.delete_thread),
    ("POST", "/threads/{thread_id}/messages", h.create_message),
    ("GET", "/threads/{thread_id}/messages", h.list_messages),
    ("GET", "/threads/{thread_id}/messages/{message_id}", h.get_message),
    ("POST", "/threads/{thread_id}/messages/{message_id}", h.update_message),
    ("DELETE", "/threads/{thread_id}/messages/{message_id}", h.delete_message),
    ("GET", "/threads/{thread_id}/messages/{message_id}/files", h.list_message_files),
    ("GET", "/threads/{thread_id}/messages/{message_id}/files/{file_id}", h.get_message_file),
    ("POST", "/threads/{thread_id}/runs", h.create_run),
    ("GET", "/threads/{thread_id}/runs", h.list_runs),
    ("GET", "/threads/{thread_id}/runs/{run_id}", h.get_run),
    ("POST", "/threads/{thread_id}/runs/{run_id}", h.update_run),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", h.cancel_run),
    ("POST", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", h.submit_tool_outputs),
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps", h.list_steps),
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps/{step_id}", h.get_step),
    ("POST", "/files", v.upload_file),
    ("GET", "/files", v.list_files),
    ("GET", "/files/{file_id}", v.get_file),
    ("DELETE", "/files/{file_id}", v.delete_file),
    ("GET", "/files/{file_id}/content", v.file_content),
    ("POST", "/vector_stores", v.create_vs),
    ("GET", "/vector_stores", v.list_vs),
    ("GET", "/vector_stores/{vector_store_id}", v.get_vs),
    ("POST", "/vector_stores/{vector_store_id}", v.update_vs),
    ("DELETE", "/vector_stores/{vector_store_id}", v.delete_vs),
    ("POST", "/vector_stores/{vector_store_id}/search", v.search_vs),
    ("POST", "/vector_stores/{vector_store_id}/files", v.create_vs_file),
    ("GET", "/vector_stores/{vector_store_id}/files", v.list_vs_files),
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}", v.get_vs_file),
    ("POST", "/vector_stores/{vector_store_id}/files/{file_id}", v.update_vs_file),
    ("DELETE", "/vector_stores/{vector_store_id}/files/{file_id}", v.delete_vs_file),
    ("GET", "/vector_stores/{vector_store_id}/files/{file_id}/content", v.vs_file_content),
    ("POST", "/vector_stores/{vector_store_id}/file_batches", v.create_batch),
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}", v.get_batch),
    ("POST", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", v.cancel_batch),
    ("GET", "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", v.list_batch_files),
    ("GET", "/organization/usage/vector_stores", v.usage_vector_stores),
]

# What a Foundry project serves beyond the Assistants API.
FOUNDRY_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/threads", h.list_threads),
]


def add_routes(app: web.Application) -> None:
    for prefix in ("/v1", "/openai"):
        for method, path, handler in ROUTES:
            app.router.add_route(method, prefix + path, handler)
    for method, path, handler in ROUTES + FOUNDRY_ROUTES:
        if not path.startswith("/organization/"):  # a project has no organization endpoints
            app.router.add_route(method, FOUNDRY_PREFIX + path, handler)
    responses_api.add_routes(app)
    app.router.add_post("/_emulator/advance", advance_clock)
