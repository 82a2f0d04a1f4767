"""A tiny stand-in for ``websocketd ... tail -n0 -F FILE``, so `--vs` can be tested without it.

Each connection follows the file from its end at connect time and gets every new line as one
text frame, and nothing else (no hello, no subscribe, no seq), which is exactly the plain-lines
peer the bench's ``plain`` client mode reads. It is there to test the harness, not to be fast:
it polls the file every 10 ms. Loopback only.

    python -m logtv.bench.peer --port {port} --file {file}
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["main", "serve_lines"]

POLL_SECONDS = 0.01
#: However it is left running, it ends by itself after this long (s).
LIFETIME = 900.0


def _handler(path: str) -> Callable[[ServerConnection], Awaitable[None]]:
    async def follow(connection: ServerConnection) -> None:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            partial = b""
            try:
                while True:
                    chunk = handle.read(1 << 20)
                    if not chunk:
                        await asyncio.sleep(POLL_SECONDS)
                        continue
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        await connection.send(line.decode("utf-8", "replace"))
            except ConnectionClosed:
                return

    return follow


async def serve_lines(port: int, path: str) -> None:
    """Serve ``path``'s new lines on 127.0.0.1:``port`` for at most LIFETIME seconds."""
    async with serve(_handler(path), "127.0.0.1", port, compression=None):
        await asyncio.sleep(LIFETIME)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m logtv.bench.peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve_lines(args.port, args.file))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
