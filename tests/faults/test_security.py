"""Secrets and access, end to end: a real `assistants-audit serve` process, the real openai SDK
(OpenAI and Azure clients), the emulator upstream, a real OTLP receiver and the admin listener.

- the client's API key reaches the upstream and nothing else: not the store (every file, every
  view), not the logs (at debug level), not a span, not /metrics;
- key fingerprints are keyed hashes (HMAC under the store's secret), not plain hashes;
- the admin listener binds to loopback by default and --admin-token guards /metrics;
- --require-proxy-key refuses SDK clients without the key before anything reaches the upstream.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import io
import os
import socket
import stat
import struct
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from proxy.serving.fingerprint import Fingerprinter
from proxy.demo.workload import Workload
from tests.faults.audit_serve import serving, store_files  # noqa: F401 (fixture)
from tests.plugins.otlp import OtlpReceiver
from tests.recording.store_helpers import rows, wait_for
from tests.servers import free_port

KEY = "sk-proj-AUDITLEAKCHECK-7c1e0f9a4b2d83e6d5a0c4f1b9e27a3dQx"
ADMIN_TOKEN = "adm-LEAKCHECK-51f0c2d9e8a7"
AZURE_API_VERSION = "2024-05-01-preview"


def plain_hashes(text: str) -> set[str]:
    """Unkeyed encodings of a secret that would let anyone holding a guess confirm it."""
    raw = text.encode()
    out = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    for name in ("sha256", "sha1", "md5", "sha512", "blake2b"):
        digest = hashlib.new(name, raw).digest()
        out |= {digest.hex(), base64.b64encode(digest).decode(), base64.urlsafe_b64encode(digest).decode().rstrip("=")}
    return out


def needles(*secrets: str) -> dict[str, bytes]:
    """What must not appear: each secret, its distinctive tail, and its plain hashes."""
    found = {}
    for secret in secrets:
        found[secret] = secret.encode()
        found[f"tail of {secret[:6]}"] = secret[len(secret) // 2:].encode()
        for h in plain_hashes(secret):
            found[f"hash {h[:8]} of {secret[:6]}"] = h.encode()
    return found


def leaks(data: bytes, looking_for: dict[str, bytes]) -> list[str]:
    return [name for name, needle in looking_for.items() if needle in data]


@pytest.fixture
def otlp_raw(otlp_receiver: OtlpReceiver) -> OtlpReceiver:
    """The OTLP receiver, also keeping every export request exactly as received (resource, scope,
    spans, events, links) in `.raw`."""
    otlp_receiver.raw = []  # type: ignore[attr-defined]
    decode = otlp_receiver.add

    def add(request) -> None:
        otlp_receiver.raw.append(request.SerializeToString())  # type: ignore[attr-defined]
        decode(request)

    otlp_receiver.add = add  # type: ignore[method-assign]
    return otlp_receiver


def admin_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def azure_workload(proxy_url: str) -> None:
    """The Azure SDK: `api-key` header, /openai/... paths, ?api-version=..."""
    azure = openai.AzureOpenAI(azure_endpoint=proxy_url, api_key=KEY, api_version=AZURE_API_VERSION,
                               max_retries=0, timeout=60)
    azure.files.create(file=("azure-notes.txt", io.BytesIO(b"Azure notes for the audit.")), purpose="assistants")
    assistant = azure.beta.assistants.create(model="gpt-4o", name="Azure helper",
                                             instructions="Azure instructions, captured as content.")
    thread = azure.beta.threads.create(messages=[{"role": "user", "content": "Hello from Azure"}])
    with azure.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
    assert stream.get_final_run().status == "completed"


def test_the_api_key_reaches_no_store_file_log_span_or_metric(emulator, serving, otlp_raw, tmp_path):
    store = tmp_path / "store"
    proxy = serving(emulator.url, store, "--capture-content", "--log-level", "debug", "--workers", "2", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_raw.url, "OTEL_SERVICE_NAME": "leak-check",
        "OTEL_BSP_SCHEDULE_DELAY": "200", "ASSISTANTS_AUDIT_ADMIN_TOKEN": ADMIN_TOKEN})
    result = Workload(proxy.url + "/v1", api_key=KEY, rounds=1).run()  # v1 + v2, streams, uploads, file_search
    assert result.streamed_runs >= 1 and len(result.runs) >= 6 and result.vector_stores
    azure_workload(proxy.url)
    # the journal holds recent records only while the proxy runs (stored ones leave the disk)
    while_running = store_files(store)
    journal = b"".join(data for path, data in while_running.items() if path.suffix == ".jnl")
    # the last request (the Azure streamed run) is still there, body included: a key would show
    assert b"/openai/threads/" in journal and b'"assistant_id"' in journal

    # /metrics needs the admin token; /healthz does not
    assert admin_get(proxy.admin_port, "/metrics")[0] == 401
    assert admin_get(proxy.admin_port, "/metrics", "not-the-token")[0] == 401
    assert admin_get(proxy.admin_port, "/healthz")[0] == 200
    status, metrics = admin_get(proxy.admin_port, "/metrics", ADMIN_TOKEN)
    assert status == 200 and b"assistants_audit_exchanges_total{" in metrics
    assert proxy.stop() == 0, proxy.output()  # flushes the store and the span exporter

    secret_file = store / "fingerprint.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    fingerprint_secret = secret_file.read_bytes().strip().decode()
    looking_for = needles(KEY, ADMIN_TOKEN, fingerprint_secret)

    # every file under the store, as bytes (journal, Parquet segments, audit.duckdb, metrics files...),
    # while the proxy ran and after it stopped
    files = store_files(store)
    assert any(path.suffix == ".parquet" and data for path, data in files.items())
    for path, data in [*while_running.items(), *files.items()]:
        allowed = needles(KEY, ADMIN_TOKEN) if path == secret_file else looking_for
        assert not leaks(data, allowed), f"{leaks(data, allowed)} in {path}"
    # every column of every view (Parquet is compressed, so ask the database too)
    views = [name for (name,) in rows(store, "SELECT view_name FROM duckdb_views() WHERE NOT internal")]
    captured = 0
    for view in views:
        for (text,) in rows(store, f"SELECT to_json(t)::VARCHAR FROM {view} t"):
            assert not leaks(text.encode(), looking_for), view
            captured += "How long do refunds take?" in text or "Azure instructions" in text
    assert captured >= 2  # --capture-content put the content in the store

    # the logs, at debug level
    log = proxy.output()
    assert " DEBUG " in log and "forwarding http://" in log
    assert not leaks(log.encode(), looking_for)

    # every span attribute, event, link and resource attribute that went over the wire
    spans = otlp_raw.wait_for(20)
    exported = b"".join(otlp_raw.raw)
    assert not leaks(exported, looking_for)
    assert {s.service_name for s in spans} == {"leak-check"}
    contents = {s.attributes.get("gen_ai.system_instructions") for s in spans}
    assert {"Answer from the policy documents.", "Azure instructions, captured as content."} <= contents

    # /metrics
    assert not leaks(metrics, looking_for)

    # one keyed fingerprint for the key, whether it came as Bearer (OpenAI) or api-key (Azure)
    by_kind = rows(store, "SELECT DISTINCT path LIKE '/openai/%', key_fingerprint FROM exchange_log "
                          "WHERE origin = 'client'")
    expected = Fingerprinter(fingerprint_secret)(KEY)
    assert sorted(by_kind) == [(False, expected), (True, expected)]


def test_fingerprints_are_keyed_hashes_not_plain_hashes():
    same = Fingerprinter("secret-one")
    assert same(KEY) == Fingerprinter(b"secret-one")(KEY) == same(KEY)
    assert same(KEY).startswith("kfp_") and len(same(KEY)) == 4 + 16
    assert Fingerprinter("secret-two")(KEY) != same(KEY)
    assert same(KEY + "x") != same(KEY)
    digest = same(KEY)[4:]
    for plain in plain_hashes(KEY) | {KEY}:
        assert digest not in plain and not plain.startswith(digest)


def test_require_proxy_key_refuses_sdk_clients_before_the_upstream(emulator, serving, tmp_path):
    proxy_key, wrong = "pk-LEAKCHECK-0b8e61d2", "pk-LEAKCHECK-wrong-99"
    store = tmp_path / "store"
    proxy = serving(emulator.url, store, env={"ASSISTANTS_AUDIT_REQUIRE_PROXY_KEY": proxy_key,
                                             "ASSISTANTS_AUDIT_FINGERPRINT_SECRET": "fp-secret-A"})

    def sdk(headers: dict[str, str]) -> openai.OpenAI:
        return openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=30,
                             default_headers=headers)

    for headers in ({}, {"X-Proxy-Key": wrong}):
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk(headers).beta.assistants.create(model="gpt-4o", name="refused")
        assert refused.value.status_code == 401 and refused.value.code == "invalid_proxy_key"
        with pytest.raises(openai.AuthenticationError):
            with sdk(headers).beta.threads.create_and_run_stream(assistant_id="asst_x") as stream:
                stream.until_done()
    allowed = sdk({"X-Proxy-Key": proxy_key})
    created = allowed.beta.assistants.create(model="gpt-4o", name="allowed")
    # the upstream never saw the refused calls: it only knows the allowed assistant
    names = [a.name for a in allowed.beta.assistants.list(limit=100)]
    assert names == ["allowed"], names
    assert proxy.stop() == 0, proxy.output()
    # the store: 4 refusals answered by the proxy itself (no upstream request id), 2 forwarded calls
    logged = rows(store, "SELECT status_code, upstream_request_id IS NULL, key_fingerprint FROM exchange_log "
                         "WHERE origin = 'client' ORDER BY started_at")
    fingerprint = Fingerprinter("fp-secret-A")(KEY)
    assert logged == [(401, True, fingerprint)] * 4 + [(200, False, fingerprint)] * 2
    assert rows(store, f"SELECT count(*) FROM assistants WHERE assistant_id = '{created.id}'") == [(1,)]
    # the secret came from the option: no key file was made, and fingerprints follow the secret
    assert not (store / "fingerprint.key").exists()
    assert fingerprint != Fingerprinter("fp-secret-B")(KEY)
    # neither proxy key is kept anywhere
    looking_for = needles(proxy_key, wrong, KEY)
    for path, data in store_files(store).items():
        assert not leaks(data, looking_for), path
    assert not leaks(proxy.output().encode(), looking_for)



# --- no failure path writes a credential to a log line or an answer --------------------------------

AZURE_KEY = "9f3c2b7e5a1d4c8f0e6b2a9d7c5e3f1aLEAKCHECK"  # Azure keys have no sk- prefix
PROXY_KEY = "pk-LEAKCHECK-proxy-3e9a7c51d0b2f486"
WRONG_PROXY_KEY = "pk-LEAKCHECK-wrong-8d14f6b0c2a9e735"
COOKIE = "sess-LEAKCHECK-c0ok1e-5b7d9f1e3a"
CREDENTIALS = (f"Authorization: Bearer {KEY}\r\napi-key: {AZURE_KEY}\r\nX-Proxy-Key: {PROXY_KEY}\r\n"
               f"Cookie: session={COOKIE}\r\n").encode()


async def _upstream_by_path(conn) -> bool:
    """Each path of the upstream fails in its own way."""
    from tests.faults.faulty_upstream import respond

    path = conn.request.target.split("?")[0]
    if path == "/v1/bad-cr":  # a bare CR inside a field
        await conn.send(b"HTTP/1.1 200 OK\r\nx-bad: a\rb\r\ncontent-length: 2\r\n\r\n{}")
    elif path == "/v1/bad-nul":
        await conn.send(b"HTTP/1.1 200 OK\r\nx-bad: a\x00b\r\ncontent-length: 2\r\n\r\n{}")
    elif path == "/v1/garbage":
        await conn.send(b"this is not HTTP\r\n\r\n")
        return False
    elif path == "/v1/close":
        return False
    elif path == "/v1/reset":
        await conn.reset(pause=0)
        return False
    elif path == "/v1/reset-mid-body":
        await conn.head(200, [("content-type", "application/json"), ("content-length", "100")])
        await conn.send(b'{"object": "li')
        await conn.reset()
        return False
    elif path in ("/v1/silent", "/v1/held-stream"):
        if path == "/v1/held-stream":
            await conn.head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])
            event = b"event: thread.run.created\ndata: {}\n\n"
            await conn.send(b"%x\r\n%s\r\n" % (len(event), event))
        await conn.reader.read()  # until the proxy gives up or its client leaves
        return False
    else:
        return await respond(200, b'{"object":"list","data":[]}')(conn)
    return True


def _answer_bytes(port: int, data: bytes) -> bytes:
    """The whole response to `data` (head and body), as received."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        head = f"{response.status} {response.reason}\r\n{response.headers}".encode()
        return head + response.read()


def _leave_after(port: int, data: bytes, until: bytes | None = None) -> None:
    """Send `data`, wait for `until` in the response (if given), then hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(data)
        received = b""
        while until is not None and until not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk


def test_no_failure_path_writes_a_credential_to_a_log_line_or_an_answer(serving, tmp_path):
    from tests.faults.faulty_upstream import FaultyUpstream

    upstream = FaultyUpstream(behaviour=_upstream_by_path).start()
    store = tmp_path / "store"
    try:
        proxy = serving(upstream.url, store, "--log-level", "debug", "--upstream-timeout", "1",
                        "--header-timeout", "1", "--max-body-size", "1000", "--max-header-size", "4096",
                        "--no-enrich", env={"ASSISTANTS_AUDIT_REQUIRE_PROXY_KEY": PROXY_KEY})
        port = proxy.port

        def request(target: bytes, extra: bytes = b"", method: bytes = b"GET", body: bytes = b"") -> bytes:
            return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + CREDENTIALS + extra
                    + b"Connection: close\r\n\r\n" + body)

        answers: dict[str, bytes] = {}
        for path in ("bad-cr", "bad-nul", "garbage", "close", "reset", "reset-mid-body", "silent"):
            try:
                answers[path] = _answer_bytes(port, request(b"/v1/" + path.encode()))
            except (http.client.IncompleteRead, ConnectionError):  # the proxy cut it, as the upstream did
                answers[path] = b""
        long_field = b"X-Pad: " + b"y" * 9000 + b"\r\n"
        refusals = {  # what the proxy or its HTTP parser refuses before the upstream
            "value with a control byte": b"GET /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                         + KEY.encode() + b"\x01\r\n\r\n",
            "api-key with NUL": b"GET /v1/files HTTP/1.1\r\nHost: x\r\napi-key: " + AZURE_KEY.encode() + b"\x00\r\n\r\n",
            "proxy key with bare CR": b"GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Proxy-Key: " + PROXY_KEY.encode()
                                      + b"\rx\r\n\r\n",
            "folded authorization": b"GET /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n "
                                    + KEY.encode() + b"\r\n\r\n",
            "bad method": b"G\x01T /v1/files HTTP/1.1\r\n" + CREDENTIALS + b"\r\n",
            "duplicate length": request(b"/v1/files", b"Content-Length: 2\r\nContent-Length: 3\r\n", b"POST", b"{}"),
            "431 line": b"GET /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
                        + b"y" * 9000 + b"\r\n\r\n",
            "431 block": request(b"/v1/files", long_field[:3000] + b"\r\n" + long_field[:1500] + b"\r\n"),
            "414": b"GET /v1/" + KEY.encode() + b"/" + b"a" * 9000 + b" HTTP/1.1\r\n" + CREDENTIALS + b"\r\n",
            "413": request(b"/v1/files", b"Content-Length: 5000\r\n", b"POST", b"x" * 5000),
            "401": request(b"/v1/files", b"", b"GET").replace(PROXY_KEY.encode(), WRONG_PROXY_KEY.encode()),
            "405": request(b"evil.example:443", method=b"CONNECT"),
            "417": request(b"/v1/files", b"Expect: " + KEY.encode() + b"\r\nContent-Length: 2\r\n", b"POST", b"{}"),
            "400 OPTIONS *": request(b"*", method=b"OPTIONS"),
            "400 absolute-form": request(b"http://evil.example/v1/files"),
            "408": b"GET /v1/files HTTP/1.1\r\nHost: x\r\n" + CREDENTIALS,  # and then nothing
        }
        for name, data in refusals.items():
            answers[name] = _answer_bytes(port, data)
        _leave_after(port, request(b"/v1/held-stream"), until=b"thread.run.created")
        _leave_after(port, request(b"/v1/files", b"Content-Length: 900\r\n", b"POST", b"x" * 100))
        assert wait_for(lambda: len([r for r in upstream.log if r.target == "/v1/held-stream"]) == 1)
    finally:
        upstream.stop()
    answers["refused"] = _answer_bytes(port, request(b"/v1/files"))  # nothing listens upstream any more
    assert proxy.stop() == 0, proxy.output()

    statuses = {name: int(data.split(b" ", 1)[0]) for name, data in answers.items() if data}
    assert {statuses[name] for name in ("bad-cr", "bad-nul", "garbage", "close", "refused")} == {502}
    assert statuses["silent"] == 504
    assert {name: statuses[name] for name in refusals} == {
        "value with a control byte": 400, "api-key with NUL": 400, "proxy key with bare CR": 400,
        "folded authorization": 400, "bad method": 400, "duplicate length": 400, "431 line": 431,
        "431 block": 431, "414": 414, "413": 413, "401": 401, "405": 405, "417": 417,
        "400 OPTIONS *": 400, "400 absolute-form": 400, "408": 408}
    recorded = {error for (error,) in rows(store, "SELECT DISTINCT error_type FROM exchange_log")}
    assert {"upstream_error", "upstream_timeout", "upstream_unreachable", "client_disconnected"} <= recorded

    log = proxy.output()
    # the lines that used to carry a key are there, at the levels they are logged at
    assert " WARNING assistants_audit.forward " in log and "upstream request failed" in log
    assert "refused a malformed request (400)" in log
    assert " DEBUG " in log
    looking_for = needles(KEY, AZURE_KEY, PROXY_KEY, WRONG_PROXY_KEY, COOKIE)
    assert not leaks(log.encode(), looking_for), [line for line in log.splitlines()
                                                 if leaks(line.encode(), looking_for)]
    for name, data in answers.items():
        assert not leaks(data, looking_for), (name, data)
    for path, data in store_files(store).items():
        assert not leaks(data, looking_for), path


SHAPES = {  # how a credential shows up in text nobody meant to log
    "header line": "Authorization: Bearer {key}",
    "headers repr": "headers=<CIMultiDictProxy('Host': 'h', 'Authorization': 'Bearer {key}', 'api-key': '{key}')>",
    "parser excerpt": "Invalid header value char:\n\n  b'api-key: {key}\\x00'\n          ^",
    "json": '{{"api_key": "{key}", "x-proxy-key": "{key}"}}',
    "query": "/openai/assistants?api-key={key}&api-version=2024-05-01-preview",
    "basic": "Proxy-Authorization: Basic {key}",
    "cookie": "Cookie: a={key}; b={key}",
    "bare sk- key": "the key {key} was refused",
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_log_line_is_redacted_whatever_shape_the_credential_takes(shape):
    import logging

    from proxy.logs import RedactingFilter

    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "seen: %s", (shape.format(key=KEY),),
                               None)
    try:
        raise ValueError(shape.format(key=KEY))
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert "seen: " in line and "ValueError" in line and "[redacted]" in line
    assert not leaks(line.encode(), needles(KEY)), line

# --- the admin listener's default address -------------------------------------------------------

DEFAULT_ADMIN_PORT = 9464  # proxy.config: admin_listen defaults to 127.0.0.1:9464


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state the process holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            address_hex, port_hex = local.split(":")
            packed = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host byte order
            words = b"".join(struct.pack("=I", int.from_bytes(packed[i:i + 4], "big")) for i in range(0, width, 4))
            family = socket.AF_INET if width == 4 else socket.AF_INET6
            found.add((socket.inet_ntop(family, words), int(port_hex, 16)))
    return found


def non_loopback_addresses() -> list[str]:
    """This machine's own IPv4 addresses outside 127/8 (traffic to them never leaves the host)."""
    found = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                found.append(address)
    finally:
        probe.close()
    return found


def test_admin_listener_binds_to_loopback_by_default(tmp_path):
    try:  # the default port must be free to start a proxy that uses it
        with socket.create_server(("127.0.0.1", DEFAULT_ADMIN_PORT)):
            pass
    except OSError:
        pytest.skip(f"port {DEFAULT_ADMIN_PORT} (the default admin port) is in use on this machine")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANTS_AUDIT_", "OTEL_", "LD_PRELOAD"))}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(  # no --admin-listen: the default
        [sys.executable, "-m", "proxy.cli", "serve", "--upstream", "http://127.0.0.1:9", "--listen",
         f"127.0.0.1:{port}", "--store", str(tmp_path / "store")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return admin_get(DEFAULT_ADMIN_PORT, "/healthz")[0] == 200
            except OSError:
                return False

        assert wait_for(up, timeout=30, interval=0.1)
        listening = listening_sockets(proc.pid)
        assert ("127.0.0.1", DEFAULT_ADMIN_PORT) in listening
        assert {address for address, _ in listening} == {"127.0.0.1"}, listening
        # and from this machine's other addresses, nothing answers on the admin port
        for address in non_loopback_addresses():
            with socket.create_server((address, 0)) as control:  # the address itself is reachable...
                socket.create_connection(control.getsockname(), timeout=5).close()
            with pytest.raises(ConnectionRefusedError):  # ...but the admin listener is not there
                socket.create_connection((address, DEFAULT_ADMIN_PORT), timeout=5).close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        log.close()
