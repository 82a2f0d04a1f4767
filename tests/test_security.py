"""Issue #5, "safe to expose": tokens, TLS, origins, hosts and limits, each against a real server.

Every test runs a real `logtv serve` (in-process or as a subprocess) on loopback and a real client:
the websockets client, `logtv tail`, or a raw socket speaking HTTP and WebSocket frames by hand
when a test needs to send what a well-behaved client never would.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus

from logtv.client.connection import Connected, Disconnected, LogClient
from logtv.config import ConfigError, ServerConfig, is_loopback_host, load_config
from logtv.protocol import PATH
from logtv.server import policy
from logtv.server.policy import (
    Access,
    HandshakePolicy,
    MessageLimiter,
    Refusal,
    exposure_warnings,
    host_header_is_local,
)
from logtv.server.server import LogServer
from tests.conftest import ServerProcess, write_lines

TOKEN = "s3cret-token-0123456789abcdef"
OTHER_TOKEN = "another-token-fedcba9876543210"


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def one_log(tmp_path: Path, name: str = "app.log") -> Path:
    log = tmp_path / name
    log.write_text("")
    return log


# -- raw HTTP and WebSocket, for what a proper client never sends --------------------------------


@dataclass
class RawPeer:
    """One TCP connection that did an HTTP request by hand; frames are read and sent raw."""

    status: int
    headers: Headers
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: list[tuple[int, bytes]] = field(default_factory=list)

    def send_frame(
        self, payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv1: bool = False
    ) -> None:
        self.writer.write(client_frame(payload, opcode, fin=fin, rsv1=rsv1))

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next server frame as (opcode, payload); EOFError when the server closed TCP."""
        return await asyncio.wait_for(read_server_frame(self.reader), timeout)

    async def read_until_close(self, timeout: float = 5.0) -> int | None:
        """Skip frames until the close frame; its code (None if TCP ended without one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                opcode, payload = await self.read_frame(max(0.01, deadline - time.monotonic()))
            except (EOFError, ConnectionError):
                return None
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005

    async def json(self, timeout: float = 5.0) -> dict:  # type: ignore[type-arg]
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x1:
                return json.loads(payload)

    def close(self) -> None:
        self.writer.transport.abort()


def client_frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """A masked client frame (RFC 6455 §5.2), with whatever bits the test wants set."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    repeated = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        size, "big"
    )
    return header + mask + masked


async def read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    try:
        first, second = await reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await reader.readexactly(8))[0]
        return first & 0x0F, await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise EOFError from None


def upgrade_request(
    port: int,
    *,
    path: str = PATH,
    host: str | None = "default",
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    lines = [f"GET {path} HTTP/1.1"]
    if host == "default":
        lines.append(f"Host: 127.0.0.1:{port}")
    elif host is not None:
        lines.append(f"Host: {host}")
    lines += [
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in extra or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_upgrade(port: int, **request: object) -> RawPeer:
    """Send a hand-made upgrade request; the response's status, headers and body."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(upgrade_request(port, **request))  # type: ignore[arg-type]
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = Headers()
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name] = value.strip()
    status = int(status_line.split()[1])
    body = b""
    if status != 101 and "Content-Length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 5)
    return RawPeer(status, headers, body, reader, writer)


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def refused_status(url: str, **options: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5, **options):  # type: ignore[arg-type]
            pass
    return refused.value.response.status_code


# -- subprocesses ----------------------------------------------------------------------------------


def Served(*args: str, env: dict[str, str] | None = None) -> ServerProcess:  # noqa: N802
    """`logtv serve ARGS` as a subprocess (ws:// or wss://), from the shared fixture class."""
    return ServerProcess(list(args), env)


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    """Start `logtv serve --port 0 ARGS` subprocesses; stopped after the test."""
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        server = Served(*args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_logtv(*args: str, env: dict[str, str] | None = None, timeout: float = 20):
    return subprocess.run(
        [sys.executable, "-m", "logtv", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if k != "LOGTV_TOKEN"}, **(env or {})},
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("logtv: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def read_lines(process: subprocess.Popen[str], count: int, timeout: float = 10) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def write_token(path: Path, token: str = TOKEN) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


# -- certificates ----------------------------------------------------------------------------------

HAVE_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
OPENSSL = shutil.which("openssl")


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    if HAVE_CRYPTOGRAPHY:
        _make_with_cryptography(cert, key)
    elif OPENSSL:
        subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
            + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"]
            + ["-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    else:  # pragma: no cover - the fixture skips first
        raise RuntimeError("no way to make a certificate")
    return cert, key


def _make_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def certificates(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """Make self-signed certificates (cryptography, else openssl); skip when neither is here."""
    if not HAVE_CRYPTOGRAPHY and not OPENSSL:
        pytest.skip("neither the cryptography package nor openssl is installed")
    return lambda name: make_certificate(tmp_path, name)


# -- tokens ----------------------------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(tmp_path, start_server, connect_peer, caplog):
    """With a token set, a handshake without it or with a wrong one gets 401 and is logged."""
    server = await start_server({"app": one_log(tmp_path)}, token=TOKEN)
    assert await refused_status(server.url) == 401
    for header in ("Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"):
        assert await refused_status(server.url, additional_headers={"Authorization": header}) == 401
    raw = await raw_upgrade(server.port)
    assert raw.status == 401 and raw.headers["WWW-Authenticate"].startswith("Bearer")
    raw.close()
    twice = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")]
    raw = await raw_upgrade(server.port, extra=twice)
    assert raw.status == 401
    raw.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) >= 7 and all("127.0.0.1:" in text and "401" in text for text in refusals)
    peer = await connect_peer(server, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert peer.hello["sources"][0]["name"] == "app"
    assert server.hub.health()["clients"] == 1


async def test_no_token_configured_needs_no_header(tmp_path, start_server, connect_peer):
    """Without a token set, clients connect with or without an Authorization header."""
    server = await start_server({"app": one_log(tmp_path)})
    await connect_peer(server)
    await connect_peer(server, additional_headers={"Authorization": "Bearer anything-at-all-1234"})
    assert server.hub.health()["clients"] == 2


async def test_token_is_compared_in_constant_time(
    tmp_path, start_server, connect_peer, monkeypatch
):
    """Every configured token is compared with hmac.compare_digest (on digests), never with ==."""
    calls: list[tuple[bytes, bytes]] = []
    real = policy.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(policy.hmac, "compare_digest", spy)
    server = await start_server({"app": one_log(tmp_path)}, token=TOKEN)
    assert await refused_status(server.url, additional_headers={"Authorization": "Bearer nope"})
    await connect_peer(server, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(calls) == 2 and all(len(a) == len(b) == 32 for a, b in calls)


async def test_healthz_needs_the_token(tmp_path, start_server):
    """/healthz lists the sources, so with a token set it answers 401 without it."""
    server = await start_server({"app": one_log(tmp_path)}, token=TOKEN)
    url = f"http://127.0.0.1:{server.port}/healthz"
    status, _ = await asyncio.to_thread(http_get, url)
    assert status == 401
    status, _ = await asyncio.to_thread(http_get, url, "wrong-token-0123456789")
    assert status == 401
    status, body = await asyncio.to_thread(http_get, url, TOKEN)
    assert status == 200 and json.loads(body)["sources"][0]["name"] == "app"


def test_serve_and_tail_with_token_file_and_env(tmp_path, served):
    """`serve --token-file` and `LOGTV_TOKEN`; `tail` with --token-file, --token or the env var."""
    log = tmp_path / "a.log"
    write_lines(log, ["hello"])
    token_file = write_token(tmp_path / "token")
    for server_args, env in (((f"--token-file={token_file}",), None), ((), {"LOGTV_TOKEN": TOKEN})):
        server = served("--source", f"app={log}", *server_args, env=env)
        server.wait_listening()
        address = f"127.0.0.1:{server.port}"
        for tail_args, tail_env in (
            (("--token-file", str(token_file)), None),
            (("--token", TOKEN), None),
            ((), {"LOGTV_TOKEN": TOKEN}),
        ):
            tail = subprocess.Popen(
                [sys.executable, "-m", "logtv", "tail", address, "--backlog", "1", *tail_args],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **(tail_env or {})},
            )
            try:
                assert read_lines(tail, 1) == ["app | hello"]
            finally:
                tail.terminate()
                tail.wait(5)
        refused = run_logtv("tail", address)
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
        assert "retrying" not in refused.stderr  # a refused token is not retried
        server.stop()


# -- exposure --------------------------------------------------------------------------------------


def test_non_loopback_bind_without_token_is_refused(tmp_path):
    """`serve --host 0.0.0.0` without a token exits 2 with one line saying how to set one."""
    log = one_log(tmp_path)
    for host in ("0.0.0.0", "::", "example.invalid"):
        line = assert_one_error_line(
            run_logtv("serve", "--host", host, "--port", "0", "--source", f"a={log}"),
            "refusing to listen",
            "--token-file",
            "LOGTV_TOKEN",
            "--insecure",
        )
        assert host in line


async def test_refusal_happens_before_listening(tmp_path):
    """LogServer.start refuses an exposed, tokenless config before it opens any socket."""
    config = ServerConfig(host="0.0.0.0", port=0, sources={"a": one_log(tmp_path)})
    server = LogServer(config)
    with pytest.raises(ConfigError, match="--insecure"):
        await server.start()
    assert server._server is None and server.hub is None
    await server.stop()


def test_insecure_and_loopback_checks(tmp_path):
    """--insecure lets a tokenless non-loopback config through, with a warning for the log."""
    sources = {"a": one_log(tmp_path)}
    exposed = ServerConfig(host="0.0.0.0", sources=sources, insecure=True).validated()
    (warning,) = exposure_warnings(exposed)
    assert "--insecure" in warning and "anyone" in warning
    with_token = ServerConfig(host="0.0.0.0", sources=sources, token=TOKEN).validated()
    assert any("without TLS" in w for w in exposure_warnings(with_token))
    assert exposure_warnings(ServerConfig(sources=sources).validated()) == []
    world = tmp_path / "token"
    world.write_text(TOKEN)
    world.chmod(0o644)
    readable = ServerConfig(sources=sources, token_file=world).validated()
    assert readable.token == TOKEN and "chmod" in exposure_warnings(readable)[0]
    for host in ("127.0.0.1", "127.3.2.1", "::1", "localhost", "LOCALHOST"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.1", "192.168.1.2", "example.com", "::ffff:1.2.3.4"):
        assert not is_loopback_host(host), host


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("token-file = 'TOKEN_FILE_SHORT'", ["16 to 1024"]),
        ("token-file = '/nonexistent/token'", ["cannot read token file"]),
        ("tls-cert = '/x.crt'", ["tls-cert and tls-key go together"]),
        ("tls-cert = '/x.crt'\ntls-key = '/x.key'", ["cannot use tls-cert"]),
        ("allow-origin = ['null']", ["cannot be allowed"]),
        ("allow-origin = ['https://ok.example/path']", ["must look like"]),
        ("max-clients = 0", ["max-clients"]),
        ("insecure = 'yes'", ["insecure has the wrong type"]),
        ("[tokens.x]\ntoken-file = 'TOKEN_FILE'\nsources = ['nope']", ["unknown sources"]),
        ("[tokens.x]\ntoken-file = 'TOKEN_FILE'\nsources = []", ["allows nothing"]),
        ("token-file = 'TOKEN_FILE'\n[tokens.x]\ntoken-file = 'TOKEN_FILE'", ["same"]),
        ("[tokens.x]\npath = '/x'", ["needs token-file"]),
    ],
)
def test_bad_security_settings_are_one_error_line(tmp_path, setting, words):
    """Each bad token, TLS, origin or limit setting is one `logtv: error:` line, exit code 2."""
    good = write_token(tmp_path / "token")
    short = write_token(tmp_path / "short", "tooshort")
    text = setting.replace("TOKEN_FILE_SHORT", str(short)).replace("TOKEN_FILE", str(good))
    config = tmp_path / "logtv.toml"
    config.write_text(f"{text}\n[sources.a]\npath = '{one_log(tmp_path)}'\n")
    assert_one_error_line(run_logtv("serve", "--config", str(config), "--port", "0"), *words)


# -- origin and host -------------------------------------------------------------------------------


async def test_cross_site_origin_is_403(tmp_path, start_server, connect_peer):
    """A handshake with an Origin not listed exactly (Origin: null too) gets 403; none is fine."""
    allowed = "https://logs.example.com"
    server = await start_server({"app": one_log(tmp_path)}, allow_origin=(allowed,))
    for origin in (
        "https://evil.example",
        "null",
        "https://logs.example.com:443",
        "http://logs.example.com",
    ):
        assert await refused_status(server.url, origin=origin) == 403, origin
    raw = await raw_upgrade(server.port, extra=[("Origin", allowed), ("Origin", allowed)])
    assert raw.status == 400
    raw.close()
    await connect_peer(server, origin=allowed)
    await connect_peer(server)  # command-line clients send no Origin
    plain = await start_server({"app": one_log(tmp_path)})  # nothing allowed by default
    assert await refused_status(plain.url, origin="http://localhost:8000") == 403


async def test_rebound_host_is_403_and_duplicate_host_400(tmp_path, start_server):
    """Bound to loopback, a Host naming another machine gets 403; two Host headers get 400."""
    server = await start_server({"app": one_log(tmp_path)})
    port = server.port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.", "[::2]"):
        raw = await raw_upgrade(port, host=host)
        assert raw.status == 403, host
        raw.close()
    for host in ("localhost", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", "LOCALHOST"):
        raw = await raw_upgrade(port, host=host)
        assert raw.status == 101, host
        raw.close()
    raw = await raw_upgrade(port, extra=[("Host", "localhost")])  # a second Host header
    assert raw.status == 400
    raw.close()
    raw = await raw_upgrade(port, host=None)
    assert raw.status == 400
    raw.close()
    raw = await raw_upgrade(port, path="/healthz", host="evil.example")
    assert raw.status == 403 and b"app" not in raw.body
    raw.close()


def test_host_header_rules():
    """Which Host values count as this machine when the server is bound to loopback."""
    for value in ("localhost", "localhost:80", "127.0.0.1", "127.9.9.9:1", "[::1]", "[::1]:8765"):
        assert host_header_is_local(value), value
    for value in ("", "::1", "[::1", "[127.0.0.1]", "localhost:x", "localhost:", "a.localhost"):
        assert not host_header_is_local(value), value
    open_policy = HandshakePolicy(local_host_only=False)
    assert isinstance(open_policy.check(Headers(Host="logs.example.com")), Access)
    assert isinstance(HandshakePolicy().check(Headers(Host="logs.example.com")), Refusal)


# -- limits ----------------------------------------------------------------------------------------


async def test_max_clients_gets_503(tmp_path, start_server, connect_peer):
    """Past --max-clients the handshake gets 503; a closed connection frees its place."""
    server = await start_server({"app": one_log(tmp_path)}, max_clients=3)
    peers = [await connect_peer(server) for _ in range(3)]
    assert await refused_status(server.url) == 503
    await peers[0].connection.close()
    await wait_for(lambda: len(server.slots) == 2, what="the slot to be freed")
    await connect_peer(server)
    status, _ = await asyncio.to_thread(http_get, f"http://127.0.0.1:{server.port}/healthz")
    assert status == 200  # health checks are not clients


async def test_300_connections_with_256_places(tmp_path, start_server, connect_peer):
    """With the default 256 places, 300 connections: 44 get 503, the 256 others get every line."""
    log = one_log(tmp_path)
    server = await start_server({"app": log})
    assert server.config.max_clients == 256
    peers = []
    for start in range(0, 256, 32):
        peers += await asyncio.gather(
            *(connect_peer(server) for _ in range(start, min(256, start + 32)))
        )
    extra = await asyncio.gather(*(refused_status(server.url) for _ in range(44)))
    assert extra == [503] * 44
    await asyncio.gather(*(peer.subscribe("app", batch=True) for peer in peers))
    write_lines(log, [f"line {i}" for i in range(200)])
    results = await asyncio.gather(*(peer.lines(200, timeout=30) for peer in peers))
    assert all([seq for _, seq, _ in got] == list(range(1, 201)) for got in results)
    assert server.hub.health()["clients"] == 256


async def test_subscribe_flood_is_rate_limited_then_closed(tmp_path, start_server, connect_peer):
    """10,000 subscribes in a burst: rate_limited errors, then close 1008; others go on."""
    log = one_log(tmp_path)
    server = await start_server({"app": log})
    bystander = await connect_peer(server)
    await bystander.subscribe("app")
    flooder = await connect_peer(server)
    frame = json.dumps({"type": "subscribe", "log_source": "app"})
    for _ in range(10_000):
        await flooder.connection.send(frame)
    acks = errors = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            message = await flooder.recv(10)
            if message["type"] == "subscribed":
                acks += 1
            elif message["type"] == "error":
                assert message["error"] == "rate_limited"
                errors += 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert 100 <= acks < 200  # the burst, and what the rate refilled meanwhile
    assert errors >= 1000
    write_lines(log, ["still serving"])
    assert await bystander.lines(1) == [("app", 1, "still serving")]
    newcomer = await connect_peer(server)
    await newcomer.subscribe("app", backlog=1)
    assert await newcomer.lines(1) == [("app", 1, "still serving")]


def test_message_limiter_rates():
    """The bucket allows a burst of 100, then 20 a second; over 1000 refused in 10 s floods."""
    limiter = MessageLimiter(0.0)
    assert sum(limiter.allow(0.0) for _ in range(150)) == 100
    assert not limiter.flooding
    assert sum(limiter.allow(1.0) for _ in range(50)) == 20  # a second refills 20
    assert all(limiter.allow(1.0 + i / 19) for i in range(1, 300))  # under 20/s: never refused
    assert not limiter.flooding
    later = 1.0 + 299 / 19
    refused = sum(not limiter.allow(later) for _ in range(1200))
    assert refused > 1100 and limiter.flooding


async def test_unanswered_pings_drop_the_peer(tmp_path, start_server):
    """A peer that completes the handshake and then ignores everything is dropped by keepalive."""
    server = await start_server({"app": one_log(tmp_path)}, ping_interval=0.5, ping_timeout=0.5)
    raw = await raw_upgrade(server.port)
    assert raw.status == 101
    await wait_for(lambda: server.hub.health()["clients"] == 1, what="the connection")
    pings = 0
    started = time.monotonic()
    while True:  # read (but never answer) until the server gives up
        try:
            opcode, payload = await raw.read_frame(5)
        except EOFError:
            break
        pings += opcode == 0x9
        if opcode == 0x8:
            assert struct.unpack("!H", payload[:2])[0] == 1011  # keepalive ping timeout
    assert pings >= 1 and time.monotonic() - started < 5
    await wait_for(lambda: server.hub.health()["clients"] == 0, timeout=10, what="the drop")
    assert len(server.slots) == 0
    raw.close()


async def test_half_open_connections_are_dropped(tmp_path, start_server, connect_peer):
    """A TCP connection with a half-sent (or no) request is dropped at the handshake timeout."""
    server = await start_server({"app": one_log(tmp_path)}, handshake_timeout=1.0)
    silent = await asyncio.open_connection("127.0.0.1", server.port)
    partial = await asyncio.open_connection("127.0.0.1", server.port)
    partial[1].write(upgrade_request(server.port)[:40])
    started = time.monotonic()
    for reader, _ in (silent, partial):
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    assert time.monotonic() - started < 4
    peer = await connect_peer(server)  # the server is fine
    assert peer.hello["type"] == "hello"
    for _, writer in (silent, partial):
        writer.close()


async def test_peer_that_half_closes_is_forgotten(tmp_path, start_server):
    """A client that shuts down its sending side after the handshake is closed and forgotten."""
    server = await start_server({"app": one_log(tmp_path)})
    raw = await raw_upgrade(server.port)
    await wait_for(lambda: server.hub.health()["clients"] == 1, what="the connection")
    raw.writer.write_eof()
    await wait_for(lambda: server.hub.health()["clients"] == 0, timeout=10, what="the drop")
    await wait_for(lambda: len(server.slots) == 0, timeout=10, what="the slot freed")
    raw.close()


# -- frames ----------------------------------------------------------------------------------------


async def test_lone_surrogate_gets_a_defined_answer(tmp_path, start_server, connect_peer):
    """A "\\ud800" escape in a frame is an error reply; raw surrogate bytes close with 1007."""
    log = one_log(tmp_path)
    server = await start_server({"app": log})
    peer = await connect_peer(server)
    await peer.send('{"type": "subscribe", "log_source": "\\ud800"}')
    assert (await peer.expect("error"))["error"] == "unknown_source"
    await peer.send('{"type": "\\ud800"}')
    error = await peer.expect("error")
    assert error["error"] == "unknown_type" and "\\ud800" in error["detail"]
    await peer.send('{"type": "subscribe", "log_source": "all", "since": {"\\udfff": 1}}')
    assert (await peer.expect("subscribed"))["seq"] == {"app": 0}
    write_lines(log, ["fine"])
    assert await peer.lines(1) == [("app", 1, "fine")]
    raw = await raw_upgrade(server.port)
    await raw.json()  # hello
    raw.send_frame(b'{"type": "\xed\xa0\x80"}')  # a surrogate encoded as bytes: not UTF-8
    assert await raw.read_until_close() == 1007
    raw.close()


async def test_deflate_offer_gets_no_extension(tmp_path, start_server, connect_peer):
    """A client offering permessage-deflate gets no extension: the server never inflates."""
    server = await start_server({"app": one_log(tmp_path)})
    peer = await connect_peer(server, compression="deflate")
    assert peer.connection.response.headers.get("Sec-WebSocket-Extensions") is None
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    raw = await raw_upgrade(server.port, extra=offer)
    assert raw.status == 101 and "Sec-WebSocket-Extensions" not in raw.headers
    raw.close()


async def test_compressed_frame_is_a_protocol_error(tmp_path, start_server, connect_peer):
    """A deflated frame (RSV1) that would inflate to 100 MB closes with 1002, never inflated."""
    server = await start_server({"app": one_log(tmp_path)})
    bystander = await connect_peer(server)
    raw = await raw_upgrade(server.port, extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    await raw.json()  # hello
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = b"\0" * (1 << 20)
    bomb = b"".join(deflate.compress(block) for _ in range(100)) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 128 << 10
    half = len(bomb) // 2
    raw.send_frame(bomb[:half], fin=False, rsv1=True)
    raw.send_frame(bomb[half:], opcode=0x0, rsv1=False)
    assert await raw.read_until_close() == 1002
    raw.close()
    await bystander.subscribe("app")  # the server is unharmed


async def test_deep_nesting_within_the_frame_limit(tmp_path, start_server, connect_peer):
    """`[` nested 20,000 deep (40 KB) gets too_deep before any parser recursion; others go on."""
    server = await start_server({"app": one_log(tmp_path)})
    peer = await connect_peer(server)
    frame = "[" * 20_000 + "]" * 20_000
    assert len(frame.encode()) < 64 * 1024
    await peer.send(frame)
    assert (await peer.expect("error"))["error"] == "too_deep"
    await peer.send('{"type": "subscribe", "log_source": "app", "x": ' + "{" * 20_000 + "}")
    assert (await peer.expect("error"))["error"] == "too_deep"
    await peer.subscribe("app")


# -- TLS -------------------------------------------------------------------------------------------


async def test_tls_serves_wss_and_clients_verify(tmp_path, certificates, start_server):
    """With --tls-cert/--tls-key the URL is wss://; only a client trusting the right CA gets in."""
    cert, key = certificates("server")
    other_cert, _ = certificates("other")
    log = one_log(tmp_path)
    server = await start_server({"app": log}, tls_cert=cert, tls_key=key)
    assert server.url.startswith("wss://127.0.0.1:")
    url = f"wss://localhost:{server.port}"

    async def first_event(context: ssl.SSLContext | None) -> Connected | Disconnected:
        client = LogClient(url, ssl_context=context, reconnect=False)
        async for event in client.events():
            await client.close()
            assert isinstance(event, Connected | Disconnected)
            return event
        raise AssertionError("no event")

    good = await first_event(ssl.create_default_context(cafile=cert))
    assert isinstance(good, Connected) and good.sources[0].name == "app"
    for context in (ssl.create_default_context(cafile=other_cert), None):
        bad = await first_event(context)
        assert isinstance(bad, Disconnected) and "not trusted" in bad.error
    with pytest.raises(Exception):  # noqa: B017 - plain ws:// to a TLS port fails, however it does
        async with connect(f"ws://127.0.0.1:{server.port}{PATH}", open_timeout=3):
            pass


def test_tls_end_to_end_with_the_commands(tmp_path, certificates, served):
    """`serve --tls-cert --tls-key --token-file` says wss://; `tail --ca --token-file` reads it."""
    cert, key = certificates("server")
    other_cert, _ = certificates("other")
    token = write_token(tmp_path / "token")
    log = tmp_path / "a.log"
    write_lines(log, ["over tls"])
    server = served(
        "--source", f"app={log}", "--tls-cert", str(cert), "--tls-key", str(key),
        "--token-file", str(token),
    )  # fmt: skip
    assert server.wait_listening().startswith("wss://127.0.0.1:")
    address = f"wss://localhost:{server.port}"
    tail = subprocess.Popen(
        [sys.executable, "-m", "logtv", "tail", address, "--backlog", "1"]
        + ["--ca", str(cert), "--token-file", str(token)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert read_lines(tail, 1) == ["app | over tls"]
    finally:
        tail.terminate()
        tail.wait(5)
    wrong_ca = subprocess.Popen(
        [sys.executable, "-m", "logtv", "tail", address, "--ca", str(other_cert)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert wrong_ca.stderr is not None
        assert "not trusted" in wrong_ca.stderr.readline()
    finally:
        wrong_ca.terminate()
        wrong_ca.wait(5)
    result = run_logtv("tail", f"127.0.0.1:{server.port}", "--ca", str(cert))
    assert_one_error_line(result, "--ca is for wss://")


# -- per-source tokens -----------------------------------------------------------------------------


async def test_token_limited_to_some_sources(tmp_path, start_server, connect_peer):
    """A [tokens.NAME] with sources sees just those (hello, stats, healthz); others: forbidden."""
    auth, syslog = one_log(tmp_path, "auth.log"), one_log(tmp_path, "syslog")
    write_token(tmp_path / "admin", TOKEN)
    write_token(tmp_path / "auditor", OTHER_TOKEN)
    config_file = tmp_path / "logtv.toml"
    config_file.write_text(
        f"token-file = '{tmp_path / 'admin'}'\n"
        f"[tokens.auditor]\ntoken-file = '{tmp_path / 'auditor'}'\nsources = ['auth']\n"
        f"[sources.auth]\npath = '{auth}'\n[sources.syslog]\npath = '{syslog}'\n"
    )
    loaded = load_config(config_file).validated()
    assert [(g.name, g.sources) for g in loaded.grants()] == [
        ("default", None),
        ("auditor", frozenset({"auth"})),
    ]
    assert TOKEN not in repr(loaded) and OTHER_TOKEN not in repr(loaded)
    server = await start_server(loaded.sources, token_file=loaded.token_file, tokens=loaded.tokens)
    admin = await connect_peer(server, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    auditor = await connect_peer(
        server, additional_headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
    )
    assert [s["name"] for s in admin.hello["sources"]] == ["auth", "syslog"]
    assert [s["name"] for s in auditor.hello["sources"]] == ["auth"]
    for source in ("syslog", "nope"):  # the same answer whether the source exists or not
        await auditor.send({"type": "subscribe", "log_source": source})
        assert (await auditor.expect("error"))["error"] == "forbidden"
    await auditor.send({"type": "unsubscribe", "log_source": "syslog"})
    assert (await auditor.expect("error"))["error"] == "forbidden"
    assert (await auditor.subscribe("all"))["seq"] == {"auth": 0}
    await admin.subscribe("all")
    write_lines(syslog, ["private"])
    write_lines(auth, ["visible"])
    got = await admin.lines(2)
    assert sorted(text for _, _, text in got) == ["private", "visible"]
    assert await auditor.lines(1) == [("auth", 1, "visible")]
    stats = await auditor.expect("stats", timeout=3)
    assert list(stats["sources"]) == ["auth"]
    syslog.rename(tmp_path / "syslog.1")  # a file event on a source the auditor may not see
    notice = await admin.expect("source", timeout=5)
    assert notice["name"] == "syslog"
    assert [m for m in await auditor.quiet(0.5) if m.get("name") == "syslog"] == []
    assert all("syslog" not in json.dumps(m) for m in auditor.seen if m["type"] != "error")
    url = f"http://127.0.0.1:{server.port}/healthz"
    _, body = await asyncio.to_thread(http_get, url, OTHER_TOKEN)
    assert [s["name"] for s in json.loads(body)["sources"]] == ["auth"]


# -- fuzzing-style checks on the handshake policy --------------------------------------------------


def test_policy_order_reveals_nothing_before_the_token():
    """An unauthenticated request learns only 400/403/401, in a fixed order, whatever it sends."""
    checks = HandshakePolicy(grants=ServerConfig(token=TOKEN).validated().grants())
    assert checks.check(Headers()).status == HTTPStatus.BAD_REQUEST  # type: ignore[union-attr]
    assert checks.check(Headers(Host="evil")).status == HTTPStatus.FORBIDDEN  # type: ignore[union-attr]
    headers = Headers(Host="localhost", Origin="https://x.example")
    assert checks.check(headers).status == HTTPStatus.FORBIDDEN  # type: ignore[union-attr]
    assert checks.check(Headers(Host="localhost")).status == HTTPStatus.UNAUTHORIZED  # type: ignore[union-attr]
    latin = Headers(Host="localhost", Authorization="Bearer \xe9\xff-not-ascii-token")
    assert checks.check(latin).status == HTTPStatus.UNAUTHORIZED  # type: ignore[union-attr]
    granted = checks.check(Headers(Host="localhost", Authorization=f"bearer  {TOKEN} "))
    assert granted == Access("default", None)


# -- memory ----------------------------------------------------------------------------------------


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field_name} for {pid}")


def open_stuck_reader(port: int) -> socket.socket:
    """A raw client that subscribes to everything and then never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request(port))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    subscribe = json.dumps({"type": "subscribe", "log_source": "all", "batch": True}).encode()
    sock.sendall(client_frame(subscribe))
    return sock


async def test_memory_bounded_with_200_stuck_readers(tmp_path, served, connect_peer):
    """200 subscribers that never read while ~30 MB pour in: bounded RSS, the fast one gets all."""
    log = one_log(tmp_path)
    server = served(
        "--source", f"app={log}", "--client-buffer", "1M", "--ping-interval", "0",
        "--stall-timeout", "300", "--log-level", "warning",
    )  # fmt: skip
    url = server.wait_listening()
    pid = server.process.pid
    stuck = await asyncio.to_thread(lambda: [open_stuck_reader(server.port) for _ in range(200)])
    try:
        fast = await connect_peer(url)
        await fast.subscribe("app", batch=True)
        baseline = rss_kib(pid)
        total, per_second = 300_000, 30_000
        writer = threading.Thread(target=_paced_lines, args=(log, total, per_second))
        peak = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        writer.start()
        try:
            got = await fast.lines(total, timeout=35)
        finally:
            writer.join()
            sampling.set()
            sampler.join()
        assert [seq for _, seq, _ in got] == list(range(1, total + 1))
        assert not [m for m in fast.seen if m["type"] == "gap"]
        high_water = max(peak[0], rss_kib(pid, "VmHWM"))
        assert high_water < 200 * 1024, (
            f"peak RSS {high_water // 1024} MB (from {baseline // 1024})"
        )
        assert server.process.poll() is None
    finally:
        for sock in stuck:
            sock.close()


def _paced_lines(path: Path, total: int, per_second: int) -> None:
    """``total`` 100-byte lines at about ``per_second``."""
    filler = "m" * 90
    step = per_second // 50
    with open(path, "a", buffering=1 << 16) as handle:
        for start in range(0, total, step):
            handle.write(
                "".join(f"{i:08d} {filler}\n" for i in range(start, min(start + step, total)))
            )
            handle.flush()
            time.sleep(0.02)
