"""The emulator's aiohttp application: `make_app(EmulatorSettings(...))`.

Serves the Assistants API under /v1/... (OpenAI), /openai/...?api-version=... (Azure OpenAI) and
/api/projects/{project}/...?api-version=v1 (Azure AI Foundry Agent Service, classic agents)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from emulator import errors, faults
from emulator.clock import DEFAULT_EPOCH, Clock, ScaledClock, StepClock
from emulator.errors import ApiError
from emulator.models import V1, V2
from emulator.request_schema import operation_schemas, parse_body
from emulator.runs import Engine
from emulator.state import Ids, Store


@dataclass(frozen=True)
class EmulatorSettings:
    """`time_scale=None` (the default) uses a step clock: every request moves time `step_seconds`
    forward, so runs advance with polling and identical calls give identical responses.
    A number makes the clock follow wall time, `time_scale` emulated seconds per real second.
    `seed=None` (the default) draws one per app: ids then never repeat across restarts, which a
    proxy store kept across them relies on (same id = same object)."""

    seed: int | None = None
    time_scale: float | None = None
    step_seconds: float = 1.0
    start_time: float | None = None
    phase_seconds: float = 1.0  # how long each run phase (queued, a tool step, a message) lasts
    file_processing_seconds: float = 2.0
    poll_after_ms: int = 1000
    latency_ms: int = 0
    faults_enabled: bool = True
    default_fault: str | None = None
    max_body_bytes: int = 512 * 1024 * 1024

    def make_clock(self) -> Clock:
        if self.time_scale is None:
            return StepClock(DEFAULT_EPOCH if self.start_time is None else self.start_time, self.step_seconds)
        return ScaledClock(self.start_time, self.time_scale)


SETTINGS = web.AppKey("settings", EmulatorSettings)
STORE = web.AppKey("store", Store)
ENGINE = web.AppKey("engine", Engine)
REQUEST_IDS = web.AppKey("request_ids", Ids)
BODY = "json_body"  # request key: the JSON body, valid against its operation's schema

ASSISTANTS_ROOTS = ("assistants", "threads")
AZURE_V2_FROM = "2024-05-01"
# Azure AI Foundry Agent Service: the Assistants v2 protocol under a project, one api-version
FOUNDRY_PREFIX = "/api/projects/{project}"
FOUNDRY_API_VERSIONS = ("v1",)


def api_path(request: web.Request) -> tuple[str, bool]:
    path = request.path
    if path.startswith("/openai/"):
        return path[len("/openai"):], True
    if path.startswith("/v1/"):
        return path[len("/v1"):], False
    project = request.match_info.get("project")
    if project is not None and path.startswith("/api/projects/"):
        return path[len("/api/projects/") + len(project):], True
    return path, False


def requested_version(request: web.Request, root: str, azure: bool) -> str:
    api_version = request.query.get("api-version", "") if azure else ""
    if api_version:  # Azure serves what its api-version names and ignores OpenAI-Beta
        return V1 if api_version < AZURE_V2_FROM else V2
    beta = request.headers.get("OpenAI-Beta", "")
    for item in beta.split(","):
        name, _, value = item.strip().partition("=")
        if name == "assistants":
            if value in (V1, V2):
                return value
            raise ApiError(400, f"Invalid value for 'OpenAI-Beta' header: '{item.strip()}'. "
                                "Supported values are 'assistants=v1' and 'assistants=v2'.", code="invalid_beta")
    if azure:
        return V2
    if root in ASSISTANTS_ROOTS:
        raise errors.missing_beta()
    return V2


def dumps(obj: object) -> bytes:
    return json.dumps(obj, indent=2, ensure_ascii=False).encode()


def base_headers(request: web.Request) -> dict[str, str]:
    req_id = request.get("request_id", "req_0")
    processing = 20 + int(hashlib.sha256(req_id.encode()).hexdigest()[:4], 16) % 200
    headers = {
        "openai-version": "2020-10-01",
        "openai-organization": "user-emulator",
        "openai-processing-ms": str(processing),
        "x-request-id": req_id,
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "800000",
        "x-ratelimit-remaining-tokens": "799000",
        "x-ratelimit-reset-tokens": "75ms",
    }
    if request.get("azure"):
        headers["apim-request-id"] = req_id
    return headers


async def send_json(request: web.Request, obj: object, status: int = 200,
                    extra_headers: dict[str, str] | None = None) -> web.StreamResponse:
    body = dumps(obj)
    headers = base_headers(request)
    headers.update(extra_headers or {})
    headers["Content-Type"] = "application/json"
    return await send_bytes(request, body, status, headers)


async def send_bytes(request: web.Request, body: bytes, status: int, headers: dict[str, str]) -> web.StreamResponse:
    fault: faults.Fault | None = request.get("fault")
    if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 0:
        body = gzip.compress(body, compresslevel=5, mtime=0)
        headers["Content-Encoding"] = "gzip"
    resp = web.StreamResponse(status=status, headers=headers)
    if fault is not None and fault.truncate:
        # Promise the whole body, send half of it, then drop the connection.
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return resp
    resp.content_length = len(body)
    await resp.prepare(request)
    if fault is not None and fault.slow_body_ms and len(body) > 1:
        quarter = max(1, len(body) // 4)
        for i in range(0, len(body), quarter):
            await resp.write(body[i:i + quarter])
            await asyncio.sleep(fault.slow_body_ms / 1000)
    else:
        await resp.write(body)
    await resp.write_eof()
    return resp


def error_response(request: web.Request, err: ApiError) -> Awaitable[web.StreamResponse]:
    return send_json(request, err.body(), err.status, err.headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    request["request_id"] = app[REQUEST_IDS].new("req")
    path, azure = api_path(request)
    request["azure"] = azure
    request["api_path"] = path
    started = time.monotonic()
    try:
        spec = request.headers.get(faults.HEADER) if settings.faults_enabled else None
        fault = faults.parse(spec or settings.default_fault)
        retry_count = int(request.headers.get("x-stainless-retry-count", "0") or 0)
        if fault is not None and not fault.applies(retry_count):
            fault = None
        request["fault"] = fault
        delay_ms = settings.latency_ms + (fault.latency_ms if fault else 0)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if request.path.startswith("/_emulator/"):
            return await handler(request)
        foundry = "project" in request.match_info
        if foundry:
            request["version"] = foundry_version(request)
        elif azure and "api-version" not in request.query and not path.startswith("/v1/"):
            raise ApiError(404, "Resource not found", type="invalid_request_error", code="404")
        key = _bearer_token(request) if foundry else _api_key(request, azure)
        if not key:
            raise errors.missing_bearer_token() if foundry else errors.missing_key()
        if key.startswith("sk-invalid"):
            raise errors.invalid_key(key)
        if not foundry:
            root = path.strip("/").split("/", 1)[0]
            request["version"] = requested_version(request, root, azure)
        if fault is not None and fault.status:
            raise fault.error()
        app[STORE].clock.tick()
        app[ENGINE].advance_all()
        await check_body(request)
        return await handler(request)
    except ApiError as err:
        return await error_response(request, err)
    except web.HTTPNotFound:
        return await error_response(request, errors.invalid_url(request.method, request.path))
    except web.HTTPMethodNotAllowed:
        return await error_response(request, errors.invalid_url(request.method, request.path))
    finally:
        request["elapsed"] = time.monotonic() - started


async def check_body(request: web.Request) -> None:
    """Validate the body against the spec's schema for this operation before any handler reads it,
    so no handler ever sees a field of a type it does not expect."""
    resource = request.match_info.route.resource
    if resource is None:
        return
    template = resource.canonical.removeprefix("/v1").removeprefix("/openai").removeprefix(FOUNDRY_PREFIX)
    operation = f"{request.method} {template}"
    schemas = operation_schemas(request["version"], operation)
    if schemas is not None:
        body = parse_body(await request.read())
        schemas.check(operation, body)
        request[BODY] = body


def foundry_version(request: web.Request) -> str:
    """The Assistants version a Foundry project request gets: Foundry serves Assistants v2 under
    its own api-version (only `v1` so far) and ignores OpenAI-Beta."""
    api_version = request.query.get("api-version")
    if not api_version:
        raise errors.missing_api_version()
    if api_version not in FOUNDRY_API_VERSIONS:
        raise errors.unsupported_api_version(api_version, FOUNDRY_API_VERSIONS)
    return V2


def _bearer_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return ""


def _api_key(request: web.Request, azure: bool) -> str:
    return _bearer_token(request) or request.headers.get("api-key", "").strip()


def make_app(settings: EmulatorSettings | None = None) -> web.Application:
    from emulator import routes  # noqa: PLC0415 - the handlers need the app keys above

    settings = settings or EmulatorSettings()
    app = web.Application(middlewares=[api_middleware], client_max_size=settings.max_body_bytes)
    seed = secrets.randbits(64) if settings.seed is None else settings.seed
    store = Store(clock=settings.make_clock(), ids=Ids(seed), processing_seconds=settings.file_processing_seconds)
    app[SETTINGS] = settings
    app[STORE] = store
    app[ENGINE] = Engine(store)
    app[REQUEST_IDS] = Ids(seed + 1_000_003)
    routes.add_routes(app)
    return app
