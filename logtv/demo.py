"""`logtv demo`: the whole product in one command, with no root, no config and no real logs.

One process runs a real `logtv serve` on a free loopback port, the synthetic sources of
:mod:`logtv.demo_logs` writing into real files in a temporary directory (so the real tailer,
broadcaster and protocol are what the user sees, rotations included), and `logtv watch` on it.
Quitting stops all three and removes the files.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from logtv.config import ServerConfig
from logtv.demo_logs import HOST, DemoLogs
from logtv.server.server import LogServer

__all__ = ["demo_server", "run_demo"]


@asynccontextmanager
async def demo_server(
    *, seed: int | None, rate: float, port: int = 0, backlog: int = 200, host: str = HOST
) -> AsyncIterator[LogServer]:
    """A running server over freshly generated demo logs of ``host``; all removed on exit."""
    directory = Path(tempfile.mkdtemp(prefix="logtv-demo-"))
    stop = asyncio.Event()
    writer: asyncio.Task[None] | None = None
    server: LogServer | None = None
    try:
        logs = DemoLogs(directory, seed=seed, rate=rate, host=host)
        logs.create_files()
        config = ServerConfig(
            host="127.0.0.1", port=port, sources=logs.paths, backlog=backlog, name=host
        ).validated()
        server = LogServer(config)
        await server.start()
        writer = asyncio.create_task(logs.run(stop))
        yield server
    finally:
        stop.set()
        if writer is not None:
            await asyncio.wait_for(writer, timeout=2)
        if server is not None:
            await server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def run_demo(*, seed: int | None, rate: float, serve_only: bool, port: int = 0) -> int:
    """Run the demo until the viewer quits (or, with ``serve_only``, until SIGINT/SIGTERM)."""
    if not serve_only:
        # The viewer owns the terminal: the server's own log must not write over it.
        logging.getLogger("logtv").setLevel(logging.CRITICAL)
    async with demo_server(seed=seed, rate=rate, port=port) as server:
        if serve_only:
            print(f"listening on {server.url}", file=sys.stderr, flush=True)
            print(
                f"watch it with:  logtv watch 127.0.0.1:{server.port}   "
                f"(or: logtv tail 127.0.0.1:{server.port})",
                file=sys.stderr,
                flush=True,
            )
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stopped.set)
            await stopped.wait()
            return 0
        from logtv.client.app import WatchApp
        from logtv.client.connection import LogClient

        app = WatchApp(LogClient(server.url, sources=None, backlog=50))
        # A closed terminal (SIGHUP, the SSH session ended) or SIGTERM quits like `q`, so the
        # temporary files are still removed.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGHUP, signal.SIGTERM):
            loop.add_signal_handler(signum, app.exit)
        await app.run_async()
        return app.return_code or 0
