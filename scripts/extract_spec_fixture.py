"""Extract the Assistants slice of the official OpenAPI specs into compact JSON fixtures.

Writes tests/fixtures/spec/v2.json (from openai-openapi-2.3.0.yaml), v1.json (from
openai-openapi-assistants-v1-2024-04-12.yaml) and recorded_samples.json (real responses from the
ruby-openai VCR cassettes). Tests read only these fixtures, never the specs themselves. The
emulator's slice of them, every JSON request body schema with the component schemas it refers to,
goes to emulator/request_schemas.json (package data: the emulator validates request bodies with it).

Each spec fixture holds: where it came from (file, sha256, info.version), every Assistants-related
operation ("METHOD /path" -> request schema and response schema per status and content type), the
AssistantStreamEvent mapping (event name -> data schema), and the transitive closure of component
schemas those reference, under components.schemas so "#/components/schemas/X" refs resolve as is.

The schemas are normalised to JSON Schema Draft 2020-12 so the `jsonschema` package validates them
the way the API meant them:
  * OpenAPI 3.0 `nullable: true` (in v1, and still in many v2 schemas) becomes a type union with
    "null" (or anyOf [..., {"type": "null"}] when there is no `type`), including the
    `allOf: [{$ref: X}, {nullable: true}]` idiom, which otherwise could never accept null;
  * `$ref` siblings: 3.0 ignores them (v1: dropped, bar nullable), 3.1 evaluates them (v2: kept);
  * 3.0 boolean exclusiveMinimum/exclusiveMaximum become the 2020-12 numeric form;
  * annotations and vendor extensions (description, title, example(s), default, deprecated,
    discriminator, x-oaiMeta, x-stainless-*, x-oai*) are dropped: they never change validity,
    and `discriminator` is only a hint - every branch it selects already pins its `type` by enum.

Where the spec contradicts what the API was recorded sending (or itself: a required property it
never defines), ERRATA below corrects the schema; each correction is listed in the fixture.
recorded_samples.json keeps one valid real response per operation and kind, and lists the
recorded responses the (corrected) spec still rejects, with why.

Example:
    python scripts/extract_spec_fixture.py ../shared/spec --recordings ../shared/recordings/ruby-openai
"""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import os
import re
import sys
from typing import Any

import yaml

SPECS = {
    "v2": "openai-openapi-2.3.0.yaml",
    "v1": "openai-openapi-assistants-v1-2024-04-12.yaml",
}
ASSISTANTS_PATH = re.compile(r"^/(assistants|threads|files|vector_stores)(/|$)")
METHODS = ("get", "post", "delete")
REF_PREFIX = "#/components/schemas/"

# Keywords whose value is a schema, a list of schemas, or a map of name -> schema.
SCHEMA_KEYS = {"not", "items", "additionalProperties", "propertyNames", "contains", "if", "then",
               "else", "unevaluatedProperties", "unevaluatedItems"}
SCHEMA_LIST_KEYS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMA_MAP_KEYS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
DROPPED_KEYS = {"description", "title", "example", "examples", "default", "deprecated",
                "discriminator", "externalDocs", "readOnly", "writeOnly", "xml"}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_DIR = os.path.join(ROOT, "tests", "fixtures", "spec")
EMULATOR_SCHEMAS = os.path.join(ROOT, "emulator", "request_schemas.json")


def load_yaml(path: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, "rb") as f:
        return yaml.load(f, Loader=loader)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _null_union(schema: dict) -> dict:
    """`schema` or null."""
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if "null" not in types:
            schema["type"] = [*types, "null"]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
        return schema
    if not schema:
        return schema  # {} already accepts null
    return {"anyOf": [schema, {"type": "null"}]}


def normalise(schema: Any, *, openapi30: bool) -> Any:
    """One OpenAPI schema object -> Draft 2020-12 (see the module docstring)."""
    if isinstance(schema, bool) or not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED_KEYS or key.startswith("x-") or key == "nullable":
            continue
        if key in SCHEMA_KEYS:
            out[key] = (normalise(value, openapi30=openapi30) if not isinstance(value, list)
                        else [normalise(v, openapi30=openapi30) for v in value])
        elif key in SCHEMA_LIST_KEYS:
            out[key] = [normalise(v, openapi30=openapi30) for v in value]
        elif key in SCHEMA_MAP_KEYS:
            out[key] = {name: normalise(v, openapi30=openapi30) for name, v in value.items()}
        else:
            out[key] = copy.deepcopy(value)
    if "$ref" in out and openapi30:
        out = {"$ref": out["$ref"]}  # 3.0: siblings of $ref are ignored
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            if out.pop(bound) and plain in out:
                out[bound] = out.pop(plain)
    nullable = schema.get("nullable") is True
    # allOf: [X, {nullable: true}] means "X or null"; the bare branch normalises to {}.
    if "allOf" in out and isinstance(schema.get("allOf"), list):
        markers = [i for i, s in enumerate(schema["allOf"])
                   if isinstance(s, dict) and s.get("nullable") is True
                   and not (set(s) - DROPPED_KEYS - {"nullable"} - {k for k in s if k.startswith("x-")})]
        if markers:
            nullable = True
            out["allOf"] = [s for i, s in enumerate(out["allOf"]) if i not in markers]
            if not out["allOf"]:
                del out["allOf"]
            elif len(out["allOf"]) == 1 and len(out) == 1:
                out = out["allOf"][0]
    if nullable:
        # With a composition or $ref, a type union alone would still fail null in the branches.
        if any(k in out for k in ("$ref", "allOf", "oneOf", "anyOf", "not")):
            out = {"anyOf": [out, {"type": "null"}]}
        else:
            out = _null_union(out)
    return out


def refs_in(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return found


def schema_name(ref: str) -> str:
    if not ref.startswith(REF_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(REF_PREFIX):]


def content_schemas(content: dict, *, openapi30: bool) -> dict[str, Any]:
    return {ctype: normalise(body.get("schema", {}), openapi30=openapi30)
            for ctype, body in (content or {}).items()}


def extract_operations(spec: dict, *, openapi30: bool) -> dict[str, dict]:
    shared_responses = spec.get("components", {}).get("responses", {})
    operations: dict[str, dict] = {}
    for path, item in spec["paths"].items():
        if not ASSISTANTS_PATH.match(path):
            continue
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses: dict[str, dict] = {}
            for status, resp in op.get("responses", {}).items():
                if "$ref" in resp:
                    resp = shared_responses[resp["$ref"].rsplit("/", 1)[-1]]
                responses[str(status)] = content_schemas(resp.get("content"), openapi30=openapi30)
            request = content_schemas(op.get("requestBody", {}).get("content"), openapi30=openapi30)
            query = sorted(p["name"] for p in op.get("parameters", []) if p.get("in") == "query")
            operations[f"{method.upper()} {path}"] = {
                "operation_id": op.get("operationId"),
                "query": query,
                "request": request,
                "responses": responses,
            }
    return operations


def extract_stream_events(spec: dict, *, openapi30: bool) -> dict[str, Any]:
    """AssistantStreamEvent: each branch is {event: enum[name], data: schema} -> {name: schema}."""
    schemas = spec["components"]["schemas"]
    events: dict[str, Any] = {}
    pending = [schemas["AssistantStreamEvent"]]
    while pending:
        node = pending.pop(0)
        if "$ref" in node:
            pending.append(schemas[schema_name(node["$ref"])])
            continue
        if "oneOf" in node or "anyOf" in node:
            pending.extend(node.get("oneOf") or node.get("anyOf"))
            continue
        props = node.get("properties", {})
        names = props.get("event", {}).get("enum") or [props.get("event", {}).get("const")]
        for name in names:
            events[name] = normalise(props["data"], openapi30=openapi30)
    return events


# Where the spec contradicts what the API really sent, as the ruby-openai cassettes recorded it,
# the schema is corrected here (and each correction listed in the fixture's "errata"). Only
# contradictions of the spec's own intent or of every recording are patched; fields the API added
# after a cassette was recorded (e.g. run.parallel_tool_calls) stay required.
ERRATA: list[dict[str, Any]] = [
    {"version": "v1", "schema": "TruncationObject", "at": "/required", "op": "set", "value": ["type"],
     "why": "spec requires 'strategy', a property it never defines; runs_*.yml carry truncation_strategy.type"},
    {"version": "v1", "schema": "ListAssistantFilesResponse", "at": "/required", "op": "remove", "value": "items",
     "why": "spec requires 'items', a property it never defines (the list is in 'data')"},
    {"version": "v1", "schema": "ListMessageFilesResponse", "at": "/required", "op": "remove", "value": "items",
     "why": "spec requires 'items', a property it never defines (the list is in 'data')"},
    {"version": "v1", "schema": "CreateRunRequest", "at": "/required", "op": "remove", "value": "thread_id",
     "why": "thread_id is a path parameter; runs_create.yml (v1) sent only assistant_id and got 200"},
    {"version": "v1", "schema": "CreateThreadAndRunRequest", "at": "/required", "op": "remove", "value": "thread_id",
     "why": "the thread is created by this call; runs_create_thread_and_run.yml (v1) sent no thread_id and got 200"},
    {"version": "v1", "schema": "RunObject", "at": "/properties/instructions", "op": "nullable",
     "why": "runs_create.yml (v1): instructions is null when neither run nor assistant set any"},
    {"version": "*", "schema": "(RunObject|CreateRunRequest|CreateThreadAndRunRequest)",
     "at": "/properties/max_completion_tokens", "op": "set", "value": {"type": ["integer", "null"]},
     "why": "runs_*_setup.yml: the API took max_completion_tokens 16 (200) and echoed it; 256 is not enforced"},
    {"version": "*", "schema": "(RunObject|CreateRunRequest|CreateThreadAndRunRequest)",
     "at": "/properties/max_prompt_tokens", "op": "set", "value": {"type": ["integer", "null"]},
     "why": "documented with the same unenforced minimum as max_completion_tokens"},
    {"version": "*", "schema": "List*Response", "at": "/properties/first_id", "op": "nullable",
     "why": "run_steps_list.yml: an empty page has first_id null"},
    {"version": "*", "schema": "List*Response", "at": "/properties/last_id", "op": "nullable",
     "why": "run_steps_list.yml: an empty page has last_id null"},
    {"version": "*", "schema": "OpenAIFile", "at": "/properties/status_details", "op": "nullable",
     "why": "files_upload_*.yml: status_details is null"},
    {"version": "v2", "schema": "OpenAIFile", "at": "/properties/expires_at", "op": "nullable",
     "why": "files that never expire carry expires_at null (the openai SDK types it Optional[int])"},
    {"version": "v2", "schema": "VectorStoreObject", "at": "/properties/name", "op": "nullable",
     "why": "vector_stores_*.yml: name is null when none was given"},
    {"version": "v2", "schema": "VectorStoreObject", "at": "/properties/expires_after", "op": "nullable",
     "why": "vector_stores_*.yml: expires_after is null when no expiry policy is set"},
    {"version": "v2", "schema": "VectorStoreFileBatchObject", "at": "/properties/object/enum", "op": "set",
     "value": ["vector_store.files_batch", "vector_store.file_batch"],
     "why": "vector_store_file_batches_*.yml: the API sends object 'vector_store.file_batch'"},
    {"version": "v2", "schema": "VectorStoreSearchResultsPage", "at": "/properties/search_query", "op": "set",
     "value": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
     "why": "vector_stores_search.yml: search_query is echoed as the string that was sent"},
]


def _walk_to(schema: dict, pointer: str) -> tuple[Any, str]:
    parts = pointer.strip("/").split("/")
    node = schema
    for part in parts[:-1]:
        node = node[part]
    return node, parts[-1]


def apply_errata(schemas: dict[str, Any], version: str) -> list[dict]:
    """Patch `schemas` in place; return one entry per correction with the schemas it touched."""
    applied = []
    for fix in ERRATA:
        if fix["version"] not in ("*", version):
            continue
        touched = []
        for name in (n for n in schemas if re.fullmatch(fix["schema"].replace("*", ".*"), n)):
            try:
                parent, key = _walk_to(schemas[name], fix["at"])
                current = parent[key]
            except (KeyError, TypeError):
                continue  # e.g. a list response without first_id
            if fix["op"] == "set":
                parent[key] = copy.deepcopy(fix["value"])
            elif fix["op"] == "remove":
                parent[key] = [v for v in current if v != fix["value"]]
            elif fix["op"] == "nullable":
                parent[key] = normalise({**current, "nullable": True}, openapi30=False)
            touched.append(name)
        if not touched:
            raise SystemExit(f"erratum for {fix['schema']} ({version}) matches nothing: spec changed?")
        applied.append({"schemas": touched, "at": fix["at"], "op": fix["op"], "why": fix["why"]})
    return applied


def build_fixture(spec_path: str, version: str) -> dict:
    spec = load_yaml(spec_path)
    openapi30 = str(spec["openapi"]).startswith("3.0")
    operations = extract_operations(spec, openapi30=openapi30)
    events = extract_stream_events(spec, openapi30=openapi30)
    all_schemas = spec["components"]["schemas"]
    wanted = {"ErrorResponse", "AssistantStreamEvent"}
    wanted |= {schema_name(r) for r in refs_in([operations, events])}
    closure: dict[str, Any] = {}
    todo = sorted(wanted)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure[name] = normalise(all_schemas[name], openapi30=openapi30)
        todo.extend(schema_name(r) for r in refs_in(closure[name]) if schema_name(r) not in closure)
    errata = apply_errata(closure, version)
    return {
        "source": {
            "file": os.path.basename(spec_path),
            "sha256": sha256_of(spec_path),
            "openapi": str(spec["openapi"]),
            "info_version": str(spec["info"]["version"]),
        },
        "errata": errata,
        "operations": dict(sorted(operations.items())),
        "stream_events": dict(sorted(events.items())),
        "components": {"schemas": dict(sorted(closure.items()))},
    }


def request_schemas(fixture: dict) -> dict:
    """The emulator's slice of one fixture: "METHOD /path" -> its JSON request body schema, and the
    component schemas those refer to (so "#/components/schemas/X" still resolves)."""
    operations = {op: spec["request"]["application/json"] for op, spec in fixture["operations"].items()
                  if "application/json" in spec["request"]}
    schemas = fixture["components"]["schemas"]
    closure: dict[str, Any] = {}
    todo = sorted(schema_name(r) for r in refs_in(operations))
    while todo:
        name = todo.pop()
        if name not in closure:
            closure[name] = schemas[name]
            todo.extend(schema_name(r) for r in refs_in(schemas[name]))
    return {"source": fixture["source"], "operations": operations,
            "components": {"schemas": dict(sorted(closure.items()))}}


# --- recorded samples ------------------------------------------------------------------------

def _header(headers: dict, name: str) -> str | None:
    for key, values in (headers or {}).items():
        if key.lower() == name.lower():
            return values[0] if isinstance(values, list) else values
    return None


def template_for(method: str, path: str, operations: dict) -> str | None:
    """Concrete path -> the "METHOD /template" key of the operation it matches."""
    for key in operations:
        m, template = key.split(" ", 1)
        if m != method.upper():
            continue
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return key
    return None


def parse_sse(text: str) -> list[tuple[str, str]]:
    events = []
    for block in re.split(r"\r?\n\r?\n", text):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if name is not None:
            events.append((name, "\n".join(data)))
    return events


def collect_recordings(rec_dir: str, fixtures: dict[str, dict]) -> list[dict]:
    """Every JSON/SSE response in the cassettes, tagged with its API version and operation."""
    samples = []
    for path in sorted(glob.glob(os.path.join(rec_dir, "*.yml"))):
        cassette = load_yaml(path)
        for n, interaction in enumerate(cassette.get("http_interactions", [])):
            req, resp = interaction["request"], interaction["response"]
            beta = _header(req.get("headers"), "OpenAI-Beta") or ""
            version = "v1" if "assistants=v1" in beta else "v2"
            url_path = re.sub(r"^https?://[^/]+/v1", "", req["uri"]).split("?", 1)[0]
            op = template_for(req["method"], url_path, fixtures[version]["operations"])
            if op is None:
                continue
            ctype = _header(resp.get("headers"), "Content-Type") or ""
            body = resp.get("body", {}).get("string", "")
            sample = {
                "cassette": os.path.basename(path),
                "interaction": n,
                "recorded_at": interaction.get("recorded_at"),
                "version": version,
                "operation": op,
                "status": int(resp["status"]["code"]),
            }
            sent = (req.get("body") or {}).get("string") or ""
            if sent.startswith("{"):
                sample["request"] = json.loads(sent)
            if ctype.startswith("text/event-stream"):
                sample["events"] = [
                    {"event": name, "data": data if data == "[DONE]" else json.loads(data)}
                    for name, data in parse_sse(body)
                ]
            elif ctype.startswith("application/json"):
                sample["body"] = json.loads(body)
            else:
                continue
            samples.append(sample)
    return samples


def sample_errors(sample: dict, validators: dict) -> list[str]:
    """Validation errors of one recorded JSON exchange against its version's fixture (empty = valid):
    the response, and the request when it was a JSON body the API accepted."""
    spec = validators[sample["version"]]
    errors = spec.response_errors(sample["operation"], sample["status"], sample["body"])
    if "request" in sample and sample["status"] < 400:
        errors += [f"request {e}" for e in spec.request_errors(sample["operation"], sample["request"])]
    return errors


def _mismatch(sample: dict, errors: list[str]) -> dict:
    keep = ("cassette", "interaction", "recorded_at", "version", "operation", "status")
    return {**{k: sample[k] for k in keep}, "errors": errors[:5]}


def pick_samples(samples: list[dict], validators: dict) -> dict:
    """Keep one valid sample per (version, operation, kind) and note each recorded mismatch.

    A stream keeps the first valid event of each name, so one recording that has a few events
    the spec rejects still contributes the rest."""
    chosen: dict[tuple, dict] = {}
    mismatches = []
    for sample in samples:
        if "events" in sample:
            spec = validators[sample["version"]]
            kept: dict[str, dict] = {}
            errors = []
            for i, ev in enumerate(sample["events"]):
                ev_errors = spec.stream_event_errors(ev["event"], ev["data"])
                errors += [f"events[{i}] {ev['event']}: {e}" for e in ev_errors]
                if not ev_errors:
                    kept.setdefault(ev["event"], ev)
            if errors:
                mismatches.append(_mismatch(sample, errors))
            key = (sample["version"], sample["operation"], "stream")
            if kept and key not in chosen:
                # The whole recorded sequence of event names, runs of deltas collapsed to one.
                order = [ev["event"] for i, ev in enumerate(sample["events"])
                         if i == 0 or ev["event"] != sample["events"][i - 1]["event"]]
                chosen[key] = {**sample, "events": list(kept.values()), "order": order}
            continue
        errors = sample_errors(sample, validators)
        key = (sample["version"], sample["operation"], "error" if sample["status"] >= 400 else "json")
        if errors:
            mismatches.append(_mismatch(sample, errors))
        elif key not in chosen:
            chosen[key] = sample
    return {
        "note": ("Real responses recorded by ruby-openai's test suite (VCR cassettes), each valid "
                 "against the spec fixture of its OpenAI-Beta version. `spec_mismatches` lists "
                 "recorded responses the spec rejects (older API behaviour or spec drift): the "
                 "emulator follows the spec, not these."),
        "samples": list(chosen.values()),
        "spec_mismatches": mismatches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python scripts/extract_spec_fixture.py ../shared/spec",
    )
    parser.add_argument("spec_dir", nargs="?", default="../shared/spec",
                        help="folder holding the OpenAPI YAML files (default ../shared/spec)")
    parser.add_argument("--recordings", default=None,
                        help="ruby-openai VCR cassettes (default SPEC_DIR/../recordings/ruby-openai)")
    parser.add_argument("--out", default=FIXTURE_DIR, help="output folder (default tests/fixtures/spec)")
    parser.add_argument("--emulator-out", default=EMULATOR_SCHEMAS,
                        help="the emulator's request schemas (default emulator/request_schemas.json)")
    args = parser.parse_args(argv)
    rec_dir = args.recordings or os.path.join(args.spec_dir, "..", "recordings", "ruby-openai")
    for name in SPECS.values():
        if not os.path.isfile(os.path.join(args.spec_dir, name)):
            print(f"error: {name} not found in {args.spec_dir}", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    fixtures = {version: build_fixture(os.path.join(args.spec_dir, name), version)
                for version, name in SPECS.items()}
    for version, fixture in fixtures.items():
        out = os.path.join(args.out, f"{version}.json")
        with open(out, "w") as f:
            json.dump(fixture, f, separators=(",", ":"), sort_keys=False)
            f.write("\n")
        print(f"{out}: {len(fixture['operations'])} operations, "
              f"{len(fixture['components']['schemas'])} schemas, "
              f"{len(fixture['stream_events'])} stream events, {os.path.getsize(out)} bytes")
    emulator_schemas = {version: request_schemas(fixture) for version, fixture in fixtures.items()}
    with open(args.emulator_out, "w") as f:
        json.dump(emulator_schemas, f, separators=(",", ":"))
        f.write("\n")
    print(f"{args.emulator_out}: {sum(len(v['operations']) for v in emulator_schemas.values())} request schemas, "
          f"{os.path.getsize(args.emulator_out)} bytes")
    if os.path.isdir(rec_dir):
        # Validate with the test helper itself, reading the fixtures just written.
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.spec_validation import SpecSchemas

        validators = {version: SpecSchemas(fixture, version) for version, fixture in fixtures.items()}
        picked = pick_samples(collect_recordings(rec_dir, fixtures), validators)
        out = os.path.join(args.out, "recorded_samples.json")
        with open(out, "w") as f:
            json.dump(picked, f, indent=1)
            f.write("\n")
        print(f"{out}: {len(picked['samples'])} samples, "
              f"{len(picked['spec_mismatches'])} recorded responses the spec rejects")
    else:
        print(f"warning: no recordings at {rec_dir}; recorded_samples.json left as is", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
