"""Who may connect and how much one connection may ask: the server's exposure rules in one place.

:class:`HandshakePolicy` judges every HTTP request before the WebSocket upgrade (``/healthz``
too), in this order, so that an unauthenticated peer learns as little as possible:

1. exactly one ``Host`` header (else 400); when bound to loopback it must name this machine
   (``localhost``, ``127.x.x.x``, ``[::1]``), or a page on a DNS-rebound name could read the logs
   through the victim's browser (403);
2. no ``Origin`` header (command-line clients), or one listed exactly by ``allow-origin``: a web
   page cannot hijack a viewer's connection (403; ``Origin: null`` is never allowed);
3. when tokens are configured, ``Authorization: Bearer TOKEN`` matching one of them (401).

:class:`ClientSlots` caps the connections served at once (503 past it), :class:`MessageLimiter`
caps what one connection may send, and :func:`server_tls_context` builds the wss:// context.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from websockets.datastructures import Headers

from logtv.config import ConfigError, ServerConfig, TokenGrant, is_loopback_host

__all__ = [
    "FLOOD_LIMIT",
    "FLOOD_WINDOW",
    "MESSAGE_BURST",
    "MESSAGE_RATE",
    "Access",
    "ClientSlots",
    "HandshakePolicy",
    "MessageLimiter",
    "Refusal",
    "exposure_warnings",
    "host_header_is_local",
    "server_tls_context",
]

#: Client messages a connection may send per second, on average, and in one burst. A viewer sends
#: one subscribe per source at connect and one per key press after that.
MESSAGE_RATE = 20.0
MESSAGE_BURST = 100
#: More than this many messages ignored for the rate within FLOOD_WINDOW seconds closes with 1008.
FLOOD_LIMIT = 1000
FLOOD_WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """An HTTP answer instead of the upgrade; ``reason`` is its body and the log line's end."""

    status: HTTPStatus
    reason: str


@dataclass(frozen=True, slots=True)
class Access:
    """What a handshake was allowed: the token's name (None: no tokens) and its sources."""

    token_name: str | None = None
    #: The sources this connection may see; None: all of them.
    sources: frozenset[str] | None = None


def _digest(secret: bytes) -> bytes:
    # Comparing fixed-size digests keeps even the token's length out of the timing.
    return hashlib.sha256(secret).digest()


class HandshakePolicy:
    """The checks every request passes before it is served; see the module docstring."""

    def __init__(
        self,
        *,
        grants: Sequence[TokenGrant] = (),
        allow_origins: Iterable[str] = (),
        local_host_only: bool = True,
    ) -> None:
        self._grants = [(grant, _digest(grant.token.encode())) for grant in grants]
        self._origins = frozenset(allow_origins)
        self._local_host_only = local_host_only

    @property
    def needs_token(self) -> bool:
        return bool(self._grants)

    def check(self, headers: Headers) -> Refusal | Access:
        """Judge one request by its headers."""
        hosts = headers.get_all("Host")
        if len(hosts) != 1:
            return Refusal(HTTPStatus.BAD_REQUEST, "a request needs exactly one Host header")
        if self._local_host_only and not host_header_is_local(hosts[0]):
            return Refusal(
                HTTPStatus.FORBIDDEN,
                "this server listens on loopback and answers only Host: localhost, 127.0.0.1 "
                "or [::1]",
            )
        origins = headers.get_all("Origin")
        if len(origins) > 1:
            return Refusal(HTTPStatus.BAD_REQUEST, "a request may have one Origin header at most")
        if origins and origins[0] not in self._origins:
            return Refusal(HTTPStatus.FORBIDDEN, "this origin is not allowed (see --allow-origin)")
        if not self._grants:
            return Access()
        return self._authorize(headers.get_all("Authorization"))

    def _authorize(self, values: list[str]) -> Refusal | Access:
        if not values:
            return Refusal(HTTPStatus.UNAUTHORIZED, "a token is required (Authorization: Bearer)")
        scheme, _, credential = values[0].strip().partition(" ")
        if len(values) > 1 or scheme.lower() != "bearer":
            return Refusal(HTTPStatus.UNAUTHORIZED, "send one Authorization: Bearer TOKEN header")
        # Header values arrive decoded as ISO-8859-1: this gives back the bytes that were sent.
        presented = _digest(credential.strip().encode("latin-1", "replace"))
        found: TokenGrant | None = None
        for grant, expected in self._grants:  # every one compared: no early exit to time
            if hmac.compare_digest(presented, expected) and found is None:
                found = grant
        if found is None:
            return Refusal(HTTPStatus.UNAUTHORIZED, "wrong token")
        return Access(found.name, found.sources)


def host_header_is_local(value: str) -> bool:
    """``localhost``, a loopback IP, or ``[::1]``, each with or without ``:PORT``."""
    host = value.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return False
    else:
        name, colon, rest = host.partition(":")
        rest = colon + rest
        if ":" in rest[1:]:
            return False  # an IPv6 literal must be in brackets
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return False
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback and (address.version == 6) == host.startswith("[")


class ClientSlots:
    """A fixed number of places for connections, taken at the handshake, freed at the close.

    Counted here rather than from the hub, because many handshakes can be under way at once
    before any of them has reached the hub.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken: set[object] = set()

    def take(self, holder: object) -> bool:
        if len(self._taken) >= self.limit:
            return False
        self._taken.add(holder)
        return True

    def release(self, holder: object) -> None:
        self._taken.discard(holder)

    def __len__(self) -> int:
        return len(self._taken)


class MessageLimiter:
    """A token bucket for one connection's messages, and a count of what it had to refuse.

    A message over the rate is not acted on (it gets a ``rate_limited`` error); a peer that keeps
    sending anyway (over FLOOD_LIMIT refused within FLOOD_WINDOW seconds) is flooding and is
    closed, so that it costs the server no more than a few replies.
    """

    def __init__(
        self,
        now: float,
        *,
        rate: float = MESSAGE_RATE,
        burst: int = MESSAGE_BURST,
        flood_limit: int = FLOOD_LIMIT,
        flood_window: float = FLOOD_WINDOW,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.flood_limit = flood_limit
        self.flood_window = flood_window
        self.tokens = float(burst)
        self.updated = now
        self.window_start = now
        self.refused_in_window = 0
        self.refused = 0

    def allow(self, now: float) -> bool:
        """Take one message's token; False when the bucket is empty (the message is refused)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        if now - self.window_start > self.flood_window:
            self.window_start, self.refused_in_window = now, 0
        self.refused_in_window += 1
        self.refused += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.refused_in_window > self.flood_limit


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the certificate chain and key; ConfigError if unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # An encrypted key would make OpenSSL prompt on the terminal; an empty password fails.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except (OSError, ssl.SSLError) as exc:
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"cannot use tls-cert {cert} with tls-key {key}: {detail} "
            "(both PEM, the key unencrypted and matching the certificate)"
        ) from None
    return context


def exposure_warnings(config: ServerConfig) -> list[str]:
    """What an operator should hear at start about who can reach this server."""
    warnings = []
    local = is_loopback_host(config.host)
    if not local and not config.grants():
        warnings.append(
            f"listening on {config.host or 'every interface'} without a token (--insecure): "
            "anyone who can reach this port can read every source"
        )
    elif not local and config.tls_cert is None:
        warnings.append(
            "listening beyond loopback without TLS: the token and the lines cross the network "
            "in clear; use --tls-cert/--tls-key or an SSH tunnel"
        )
    for grant in config.grants():
        path = grant.token_file
        try:
            world_readable = path is not None and bool(path.stat().st_mode & stat.S_IROTH)
        except OSError:
            world_readable = False
        if world_readable:
            warnings.append(f"token file {path} can be read by every user: chmod o-r {path}")
    return warnings
