"""Extract the Responses and Conversations slice of the official OpenAPI spec, and the shapes the
real API was recorded sending, into compact JSON the project owns (nothing reads ../shared at run
or test time).

Writes:
  * tests/fixtures/spec/responses_spec.json: the /responses and /conversations operations
    ("METHOD /path" -> request and response schemas), the ResponseStreamEvent mapping (event type
    -> schema) and the closure of component schemas they reference, normalised to Draft 2020-12
    the same way scripts/extract_spec_fixture.py normalises the Assistants slice;
  * emulator/responses_request_schemas.json: only the request schemas (and their closure), which
    the emulator validates request bodies against at run time, so it ships in the package;
  * tests/fixtures/spec/responses_recorded.json: one real response per kind from the ruby-openai
    responses/conversations cassettes (JSON bodies, and a streamed create's event names plus the
    first event of each name).

Example:
    python scripts/extract_responses_fixture.py ../shared/spec/openai-openapi-2.3.0.yaml \
        --recordings ../shared/recordings/ruby-openai-responses
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

from extract_spec_fixture import load_yaml, normalise, parse_sse, refs_in, schema_name, sha256_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_OUT = os.path.join(ROOT, "tests", "fixtures", "spec", "responses_spec.json")
REQUESTS_OUT = os.path.join(ROOT, "emulator", "responses_request_schemas.json")
RECORDED_OUT = os.path.join(ROOT, "tests", "fixtures", "spec", "responses_recorded.json")

# The beta variants ("/responses?beta=true") and compaction are not emulated.
PATH = re.compile(r"^/(responses|conversations)(/|$)(?!compact)[^?]*$")
METHODS = ("get", "post", "delete")

# name -> (cassette, interaction index); the *_setup cassettes repeat these
RECORDED = {
    "response": ("responses_create.yml", 0),
    "response_function_call": ("responses_create_with_tool_call.yml", 0),
    "response_followup": ("responses_create_with_followup.yml", 1),
    "response_deleted": ("responses_delete.yml", 0),
    "input_items": ("responses_input_items.yml", 0),
    "conversation": ("conversations_create.yml", 0),
    "conversation_updated": ("conversations_modify.yml", 0),
    "conversation_deleted": ("conversations_delete.yml", 0),
    "conversation_item": ("conversations_create_items.yml", 0),
    "conversation_items": ("conversations_list_items.yml", 0),
    "conversation_item_deleted": ("conversations_delete_item.yml", 0),
    "error_401": ("conversations_retrieve.yml", 1),
}
STREAM = ("responses_stream.yml", 0)

# Where the spec contradicts what the API was recorded sending or accepting, the schemas are
# corrected (each correction listed in the fixtures' "errata").
ERRATA = [
    {"schema": "ModelResponseProperties", "at": "/properties/user", "op": "nullable",
     "why": "responses_*.yml: every recorded response carries user null"},
    {"schema": "Response", "at": "/allOf/2/properties/usage", "op": "nullable",
     "why": "responses_stream.yml: response.created and response.in_progress carry usage null"},
    {"schema": "FunctionTool", "at": "/required", "op": "set", "value": ["type", "name"],
     "why": "responses_create_with_tool_call.yml: a function tool without strict and parameters was accepted"},
    {"schema": "InputItem", "at": "/oneOf", "op": "any_of",
     "why": "conversations_create_items.yml: a full message item (valid as both EasyInputMessage and Item) "
            "was accepted"},
]


def closure(schemas: dict[str, Any], roots: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    todo = sorted(schema_name(r) for r in refs_in(roots))
    while todo:
        name = todo.pop()
        if name not in out:
            out[name] = normalise(schemas[name], openapi30=False)
            todo.extend(schema_name(r) for r in refs_in(out[name]) if schema_name(r) not in out)
    return dict(sorted(out.items()))


def operations(spec: dict) -> dict[str, dict]:
    ops: dict[str, dict] = {}
    for path, item in spec["paths"].items():
        if not PATH.match(path):
            continue
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            request = {ctype: normalise(body.get("schema", {}), openapi30=False)
                       for ctype, body in op.get("requestBody", {}).get("content", {}).items()}
            responses = {str(status): {ctype: normalise(body.get("schema", {}), openapi30=False)
                                       for ctype, body in (resp.get("content") or {}).items()}
                         for status, resp in op.get("responses", {}).items()}
            ops[f"{method.upper()} {path}"] = {
                "operation_id": op.get("operationId"),
                "query": sorted(p["name"] for p in op.get("parameters", []) if p.get("in") == "query"),
                "request": request,
                "responses": responses,
            }
    return dict(sorted(ops.items()))


def stream_events(schemas: dict[str, Any]) -> dict[str, Any]:
    """ResponseStreamEvent is an anyOf of $refs, each pinning `type` by enum -> {type: $ref}."""
    events: dict[str, Any] = {}
    for branch in schemas["ResponseStreamEvent"]["anyOf"]:
        target = schemas[schema_name(branch["$ref"])]
        for name in target["properties"]["type"]["enum"]:
            events[name] = {"$ref": branch["$ref"]}
    return dict(sorted(events.items()))


def recorded(rec_dir: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (cassette, index) in RECORDED.items():
        it = load_yaml(os.path.join(rec_dir, cassette))["http_interactions"][index]
        sent = (it["request"].get("body") or {}).get("string") or ""
        out[name] = {
            "source": f"{cassette}#{index}",
            "method": it["request"]["method"].upper(),
            "path": re.sub(r"^https://[^/]+", "", it["request"]["uri"]),
            "request": json.loads(sent) if sent.startswith("{") else None,
            "status": it["response"]["status"]["code"],
            "body": json.loads(it["response"]["body"]["string"]),
        }
    it = load_yaml(os.path.join(rec_dir, STREAM[0]))["http_interactions"][STREAM[1]]
    events = [(name, json.loads(data)) for name, data in parse_sse(it["response"]["body"]["string"])]
    first: dict[str, Any] = {}
    for name, data in events:
        first.setdefault(name, data)
    out["stream"] = {"source": f"{STREAM[0]}#{STREAM[1]}",
                     "request": json.loads(it["request"]["body"]["string"]),
                     "event_names": [name for name, _ in events],
                     "first_of_each": first}
    return out


def apply_errata(schemas: dict[str, Any]) -> list[dict]:
    applied = []
    for fix in ERRATA:
        if fix["schema"] not in schemas:
            continue
        node = schemas[fix["schema"]]
        *parents, key = fix["at"].strip("/").split("/")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if fix["op"] == "any_of":
            node["anyOf"] = node.pop(key)
        elif fix["op"] == "nullable":
            node[key] = normalise({**node[key], "nullable": True}, openapi30=False)
        else:
            node[key] = fix["value"]
        applied.append({k: v for k, v in fix.items() if k != "value"})
    return applied


def write(path: str, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="openai-openapi-2.3.0.yaml")
    parser.add_argument("--recordings", required=True, help="the ruby-openai-responses cassette folder")
    args = parser.parse_args()
    spec = load_yaml(args.spec)
    schemas = spec["components"]["schemas"]
    ops = operations(spec)
    events = stream_events(schemas)
    source = {"file": os.path.basename(args.spec), "sha256": sha256_of(args.spec),
              "openapi": str(spec["openapi"]), "info_version": str(spec["info"]["version"])}
    response_schemas = closure(schemas, [ops, events, {"$ref": "#/components/schemas/ErrorResponse"}])
    errata = apply_errata(response_schemas)
    write(SPEC_OUT, {"source": source, "errata": errata, "operations": ops, "stream_events": events,
                     "components": {"schemas": response_schemas}})
    requests = {op: body["request"]["application/json"] for op, body in ops.items()
                if "application/json" in body["request"]}
    request_schemas = closure(schemas, requests)
    write(REQUESTS_OUT, {"source": source, "errata": apply_errata(request_schemas), "operations": requests,
                         "components": {"schemas": request_schemas}})
    write(RECORDED_OUT, recorded(args.recordings))


if __name__ == "__main__":
    main()
