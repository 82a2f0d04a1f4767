"""The positional arguments of `logtv watch` and `logtv tail`: which are servers, which sources.

A server argument always says so: it has a port (``HOST:PORT``, ``[::1]:PORT``), a scheme
(``ws://``, ``wss://``, ``ssh://``) or a leading ``@`` (a named host or group of the hosts
file, see ``client.hosts``). A bare word is a source name. For today's forms, with no argument
that says it is a server, the first one is the server (``logtv watch HOST`` or
``logtv watch HOST auth``, port 8765).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["is_server", "split_targets"]

_PORT = re.compile(r"^(?:\[[^\]]*\]|[^:\[\]/]+):\d+(?:/.*)?$")


def is_server(word: str) -> bool:
    """Does this argument name a server (a port, a scheme or a leading ``@``)?"""
    return word.startswith("@") or "://" in word or bool(_PORT.match(word))


def split_targets(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """The servers (in order, without repeats) and the source names among ``words``.

    Raises ValueError when no server is given.
    """
    if not words:
        raise ValueError("name a server: HOST:PORT, [::1]:PORT, ws://HOST:PORT or ssh://HOST")
    if not any(is_server(word) for word in words):
        servers, sources = [words[0]], list(words[1:])
    else:
        servers = [word for word in words if is_server(word)]
        sources = [word for word in words if not is_server(word)]
    return list(dict.fromkeys(servers)), list(dict.fromkeys(sources))


def security_target(servers: Sequence[str]) -> str:
    """The server whose scheme decides the TLS flags: the first ``wss://`` one, else the first."""
    return next((s for s in servers if s.startswith("wss://")), servers[0])
