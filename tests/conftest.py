"""Shared fixtures: a real `logtv serve` on an ephemeral loopback port, real files, real clients.

Fixtures return callables (``start_server(...)``, ``connect(...)``) so each test says what it
starts. Every wait is bounded: helpers take a timeout and fail the test when it runs out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from logtv.config import ServerConfig
from logtv.server.server import LogServer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


class Peer:
    """A raw WebSocket client with helpers to read protocol frames within a deadline."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.hello: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = json.dumps(message)
        await self.connection.send(message)

    async def subscribe(self, source: str = "all", **options: Any) -> dict[str, Any]:
        await self.send({"type": "subscribe", "log_source": source, **options})
        return await self.expect("subscribed")

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.connection.recv(), timeout)
        message = json.loads(frame)
        self.seen.append(message)
        return message

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of this type (skipping stats and others), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - time.monotonic()))
            if message["type"] == kind:
                return message

    async def lines(
        self, count: int, timeout: float = 10.0, source: str | None = None
    ) -> list[tuple[str, int, str]]:
        """The next ``count`` lines as (source, seq, text), from either frame form."""
        found: list[tuple[str, int, str]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(found)} of {count} lines: {found[-3:]}")
            message = await self.recv(remaining)
            if message["type"] == "raw_log":
                found.append((message["log_source"], message["seq"], message["raw_line"]))
            elif message["type"] == "raw_logs":
                first = message["seq"]
                found.extend(
                    (message["log_source"], first + i, line)
                    for i, line in enumerate(message["lines"])
                )
        if source is not None:
            assert {s for s, _, _ in found} == {source}
        return found

    async def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Frames other than stats that arrive within ``seconds`` (expected: none)."""
        got = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = await self.recv(remaining)
            except TimeoutError:
                break
            if message["type"] != "stats":
                got.append(message)
        return got


def write_lines(path: Path, lines: list[str] | range, *, end: str = "\n") -> None:
    """Append lines with one write(2) each, as a logging daemon does."""
    with open(path, "a", encoding="utf-8", buffering=1) as handle:
        for line in lines:
            handle.write(f"{line}{end}")


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[..., Awaitable[LogServer]]]:
    """Start in-process servers on 127.0.0.1:0 with the given sources; stopped after the test."""
    servers: list[LogServer] = []

    async def start(sources: dict[str, Path], **options: Any) -> LogServer:
        config = ServerConfig(host="127.0.0.1", port=0, sources=sources, **options).validated()
        server = LogServer(config)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def connect_peer() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    """Open raw WebSocket clients to a server; each has read its hello. Closed after the test."""
    peers: list[Peer] = []

    async def open_peer(server: LogServer | str, **options: Any) -> Peer:
        url = server if isinstance(server, str) else server.url
        options.setdefault("max_size", None)
        connection = await connect(url, open_timeout=5, **options)
        peer = Peer(connection)
        peers.append(peer)
        peer.hello = await peer.expect("hello")
        return peer

    yield open_peer
    for peer in peers:
        try:
            await asyncio.wait_for(peer.connection.close(), 1)
        except TimeoutError:
            peer.connection.transport.abort()


class ServerProcess:
    """`logtv serve` as a subprocess; its stderr is collected on a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "logtv", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr: list[str] = []
        self.listening = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            match = re.match(r"listening on (wss?://\S+)", line)
            if match:
                self.url = match.group(1)
                self.listening.set()

    def wait_listening(self, timeout: float = 10.0) -> str:
        if not self.listening.wait(timeout):
            raise AssertionError("server did not start:\n" + "".join(self.stderr))
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def serve_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start `python -m logtv serve --port 0 ARGS...` subprocesses; killed after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(list(args), env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(autouse=True)
def local_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the viewer's local-terminal defaults, even when run inside an SSH session."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("LOGTV_TOKEN", raising=False)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every test stops the threads it started (observer, reader)."""
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 3
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]
