"""Server settings: defaults, the TOML file, command-line overrides, and their validation.

Every problem a user can make here (a bad size, a duplicate source, a FIFO given as a log) is a
:class:`ConfigError` with one sentence that names it; the command line prints it and exits 2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from logtv.protocol import ALL, SOURCE_NAME_RE

__all__ = [
    "COMMAND_PREFIX",
    "DEFAULT_PORT",
    "JOURNAL_PREFIX",
    "PRIORITIES",
    "CommandSource",
    "JournalSource",
    "WELL_KNOWN_LOGS",
    "ConfigError",
    "ServerConfig",
    "SYSLOG_OVERFLOW",
    "SyslogListen",
    "TokenGrant",
    "default_state_dir",
    "discover_sources",
    "is_loopback_host",
    "load_config",
    "parse_journal",
    "parse_size",
    "parse_source",
    "parse_syslog_allow",
    "parse_syslog_url",
    "read_token_file",
]

DEFAULT_PORT = 8765

#: ``--source NAME=command:CMDLINE`` follows a command's stdout instead of a file.
COMMAND_PREFIX = "command:"
#: ``--source NAME=journal:UNIT`` (``journal:`` for all) follows the systemd journal.
JOURNAL_PREFIX = "journal:"
#: journalctl's priority names, most severe first: the index is the syslog severity.
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

#: Files followed when no source is named: (source name, path under /var/log).
WELL_KNOWN_LOGS: tuple[tuple[str, str], ...] = (
    ("auth", "auth.log"),
    ("secure", "secure"),
    ("ufw", "ufw.log"),
    ("kern", "kern.log"),
    ("syslog", "syslog"),
    ("messages", "messages"),
    ("daemon", "daemon.log"),
    ("fail2ban", "fail2ban.log"),
    ("cron", "cron.log"),
    ("mail", "mail.log"),
    ("dpkg", "dpkg.log"),
    ("nginx", "nginx/access.log"),
    ("nginx-error", "nginx/error.log"),
    ("apache", "apache2/access.log"),
    ("apache-error", "apache2/error.log"),
)

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


#: A bearer token: printable ASCII without spaces (it goes into an HTTP header), long enough that
#: guessing is hopeless. ``openssl rand -hex 32`` makes a good one.
_TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,1024}$")
#: An origin as a browser sends it: scheme://host[:port], no path, no trailing slash.
_ORIGIN_RE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")
_MAKE_TOKEN = "openssl rand -hex 32 > FILE"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A bearer token and the sources it may read (``None``: every source)."""

    name: str
    token: str = field(repr=False)
    sources: frozenset[str] | None = None
    token_file: Path | None = None


#: Where the syslog receiver puts the lines of new senders once ``syslog-max-sources`` exist.
SYSLOG_OVERFLOW = "syslog-overflow"
_SYSLOG_URL_RE = re.compile(r"^(udp|tcp)://(\[[^\]]*\]|[^:/\[\]]*):(\d{1,5})$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SyslogListen:
    """A socket the syslog receiver listens on: ``udp://HOST:PORT`` or ``tcp://HOST:PORT``."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_syslog_url(text: str) -> SyslogListen:
    """Read ``udp://127.0.0.1:5514``, ``tcp://[::1]:5514`` or ``udp://0.0.0.0:514``."""
    match = _SYSLOG_URL_RE.match(text.strip())
    if not match:
        raise ConfigError(
            f"syslog {text!r} must look like udp://HOST:PORT or tcp://HOST:PORT "
            "(an IP address, [::1] for IPv6)"
        )
    scheme, host, port = match.group(1), match.group(2).strip("[]"), int(match.group(3))
    if host.lower() != "localhost":
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise ConfigError(
                f"syslog {text!r}: {host!r} is not an IP address (use 0.0.0.0 or :: for all)"
            ) from None
    if port > 65535:
        raise ConfigError(f"syslog {text!r}: the port must be from 0 to 65535")
    return SyslogListen(scheme, host, port)


def parse_syslog_allow(text: str) -> IPNetwork:
    """Read a ``syslog-allow`` network: ``10.0.0.0/8``, ``192.0.2.7`` or ``2001:db8::/32``."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"syslog-allow {text!r} must be an address or network like 10.0.0.0/8 or 192.0.2.7"
        ) from None


@dataclass(frozen=True, slots=True)
class CommandSource:
    """A source that is a command's stdout: its argument vector, run without a shell."""

    #: The command line as the user wrote it (for the log).
    cmdline: str
    #: ``shlex.split(cmdline)``: the program and its arguments, passed to exec as they are.
    argv: tuple[str, ...]


def parse_command(cmdline: str, what: str) -> CommandSource:
    """Split a command line the way a POSIX shell would (quotes, backslashes), never run one."""
    try:
        argv = tuple(shlex.split(cmdline))
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"{what}: cannot split the command line {cmdline!r}: {exc}") from None
    if not argv:
        raise ConfigError(f"{what}: the command line is empty")
    return CommandSource(cmdline, argv)


@dataclass(frozen=True, slots=True)
class JournalSource:
    """A source that is the systemd journal, perhaps one unit's entries, perhaps the severe ones."""

    #: The unit whose entries are followed (``journalctl --unit``); ``""`` for the whole journal.
    unit: str = ""
    #: The least severe priority shown (``journalctl --priority``), a name from PRIORITIES.
    priority: str | None = None


#: Unit names as systemd spells them, and the globs ``journalctl --unit`` takes.
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@*\[\]-]{1,256}$")


def check_priority(value: str, what: str) -> str:
    """A priority name (``warning``) or number (``4``), as its name."""
    text = value.strip().lower()
    if text.isdigit() and int(text) < len(PRIORITIES):
        return PRIORITIES[int(text)]
    if text not in PRIORITIES:
        raise ConfigError(
            f"{what}: priority {value!r} must be one of {', '.join(PRIORITIES)} or 0 to 7"
        )
    return text


def parse_journal(spec: str, what: str) -> JournalSource:
    """Read what follows ``journal:``: ``UNIT``, nothing (all), and ``?priority=LEVEL`` after."""
    unit, sep, query = spec.partition("?")
    if unit and (not _UNIT_RE.match(unit) or unit.startswith("-")):
        raise ConfigError(f"{what}: {unit!r} is not a unit name like ssh.service")
    priority = None
    if sep:
        key, equals, value = query.partition("=")
        if key != "priority" or not equals:
            raise ConfigError(
                f"{what}: write journal:UNIT?priority=LEVEL (the only option), not ?{query}"
            )
        priority = check_priority(value, what)
    return JournalSource(unit, priority)


def default_state_dir() -> Path:
    """Where journal cursors are kept unless ``state-dir`` says: ``$XDG_STATE_HOME/logtv``."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is to be ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "logtv"


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can reach the socket.

    Any other name or address (and ``""``, every interface) may be reachable from elsewhere.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path, what: str = "token file") -> str:
    """The token in a file (surrounding whitespace and the final newline ignored), checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not text; make one with `{_MAKE_TOKEN}`") from None
    return check_token(text.strip(), f"{what} {path}")


def check_token(token: str, what: str) -> str:
    if not _TOKEN_RE.match(token):
        raise ConfigError(
            f"the token from {what} must be 16 to 1024 printable characters without spaces; "
            f"make one with `{_MAKE_TOKEN}`"
        )
    return token


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `logtv serve` needs to run."""

    #: Address to bind; loopback unless the user says otherwise.
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (the listening line says which).
    port: int = DEFAULT_PORT
    #: Source name -> file path (or command, or journal), in the order the viewers list them.
    sources: Mapping[str, Path | CommandSource | JournalSource] = field(default_factory=dict)
    #: Lines kept per source for new subscribers (and for resuming after a reconnect).
    backlog: int = 200
    #: Bytes of output that may wait for one client before its oldest lines are dropped.
    client_buffer: int = 16 << 20
    #: Seconds a client may accept nothing while output waits, before it is closed (1008).
    stall_timeout: float = 60.0
    #: Longest line kept whole, in bytes; longer ones are cut with a marker.
    max_line: int = 64 << 10
    #: Level of the server's own log on stderr.
    log_level: str = "info"
    #: The box's name shown to viewers; the host name when empty.
    name: str = ""
    #: File holding the bearer token every client must send; read by :meth:`validated`.
    token_file: Path | None = None
    #: The token itself (from ``token_file`` or ``LOGTV_TOKEN``); never printed.
    token: str = field(default="", repr=False)
    #: Further tokens, from ``[tokens.NAME]`` tables, each perhaps limited to some sources.
    tokens: tuple[TokenGrant, ...] = ()
    #: Listen on a non-loopback address even without a token.
    insecure: bool = False
    #: Certificate chain and private key (PEM) to serve wss:// instead of ws://.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Browser origins allowed to connect (exact ``scheme://host[:port]``); none by default.
    allow_origin: tuple[str, ...] = ()
    #: Connections served at once; the next handshake gets HTTP 503.
    max_clients: int = 256
    #: Seconds between keepalive pings (0: none), and how long a pong may take.
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    #: Seconds a client has for the TLS and WebSocket handshakes.
    handshake_timeout: float = 10.0
    #: Sockets receiving syslog (each sending host+program becomes a source); none by default.
    syslog: tuple[SyslogListen, ...] = ()
    #: Who may send syslog; required for a listener off loopback (syslog has no authentication).
    syslog_allow: tuple[IPNetwork, ...] = ()
    #: Sources the syslog receiver may create; later senders share ``syslog-overflow``.
    syslog_max_sources: int = 200
    #: Where each journal source keeps its cursor; None: :func:`default_state_dir`.
    state_dir: Path | None = None
    #: Journal files to read instead of the system journal (``journalctl --directory``).
    journal_directory: Path | None = None

    def grants(self) -> tuple[TokenGrant, ...]:
        """Every token the server accepts: the main one (all sources) and the ``[tokens]``."""
        main = (TokenGrant("default", self.token, None, self.token_file),) if self.token else ()
        return main + self.tokens

    def validated(self) -> ServerConfig:
        """Check every field and read the token files; raise ConfigError naming the first bad one.

        Returns the config with its tokens read (itself when there are none to read).
        """
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be from 0 to 65535, not {self.port}")
        if not 0 <= self.backlog <= 1_000_000:
            raise ConfigError(f"backlog must be from 0 to 1000000, not {self.backlog}")
        if self.client_buffer < 1 << 20:
            raise ConfigError("client-buffer must be at least 1M")
        if self.stall_timeout <= 0:
            raise ConfigError("stall-timeout must be more than 0 seconds")
        if not 1024 <= self.max_line <= 64 << 20:
            raise ConfigError("max-line must be from 1K to 64M")
        if not self.name.isprintable() or len(self.name) > 200:  # it goes into every hello
            raise ConfigError("name must be printable text of at most 200 characters")
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"log-level must be one of {', '.join(_LOG_LEVELS)}")
        for name, path in self.sources.items():
            check_source_name(name)
            if isinstance(path, Path):
                check_source_path(name, path)
        for key, directory in (
            ("state-dir", self.state_dir),
            ("journal-directory", self.journal_directory),
        ):
            if directory is not None and directory.exists() and not directory.is_dir():
                raise ConfigError(f"{key} {directory} is not a directory")
        self._check_network()
        self._check_syslog()
        config = self._with_tokens_read()
        if not config.grants() and not is_loopback_host(config.host) and not config.insecure:
            raise ConfigError(
                f"refusing to listen on {config.host or 'every interface'} without a token: "
                "anyone who can reach it could read these logs; set one with --token-file FILE "
                f"or LOGTV_TOKEN (make it with `{_MAKE_TOKEN}`), or add --insecure to do it anyway"
            )
        return config

    def _check_network(self) -> None:
        if not 1 <= self.max_clients <= 100_000:
            raise ConfigError(f"max-clients must be from 1 to 100000, not {self.max_clients}")
        if self.ping_interval < 0 or self.ping_timeout <= 0:
            raise ConfigError("ping-interval must be 0 (off) or more; ping-timeout more than 0")
        if self.handshake_timeout <= 0:
            raise ConfigError("handshake-timeout must be more than 0 seconds")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls-cert and tls-key go together: give both, or neither")
        for origin in self.allow_origin:
            if origin in ("null", "*"):
                raise ConfigError(
                    f"allow-origin {origin!r} cannot be allowed: it would let any page in"
                )
            if not _ORIGIN_RE.match(origin):
                raise ConfigError(
                    f"allow-origin {origin!r} must look like https://host[:port] (no path, no /)"
                )

    def _check_syslog(self) -> None:
        if not 1 <= self.syslog_max_sources <= 10_000:
            raise ConfigError(
                f"syslog-max-sources must be from 1 to 10000, not {self.syslog_max_sources}"
            )
        if not self.syslog:
            if self.syslog_allow:
                raise ConfigError("syslog-allow is for --syslog listeners, and none is given")
            return
        if SYSLOG_OVERFLOW in self.sources:
            raise ConfigError(f"the source name {SYSLOG_OVERFLOW!r} is kept for syslog senders")
        seen = set()
        for listen in self.syslog:
            if listen.port and listen.url in seen:
                raise ConfigError(f"syslog {listen.url} is given twice")
            seen.add(listen.url)
            if not is_loopback_host(listen.host) and not self.syslog_allow:
                raise ConfigError(
                    f"refusing to receive syslog on {listen.url} without --syslog-allow: syslog "
                    "has no authentication, so name the networks that may send "
                    "(e.g. --syslog-allow 10.0.0.0/8)"
                )

    def _with_tokens_read(self) -> ServerConfig:
        token = self.token
        if token:
            check_token(token, "LOGTV_TOKEN")
        elif self.token_file is not None:
            token = read_token_file(self.token_file)
        grants = []
        for grant in self.tokens:
            if not grant.token and grant.token_file is not None:
                what = f"[tokens.{grant.name}] token-file"
                grant = replace(grant, token=read_token_file(grant.token_file, what))
            unknown = sorted((grant.sources or frozenset()) - set(self.sources))
            if unknown:
                raise ConfigError(f"[tokens.{grant.name}] names unknown sources {unknown}")
            grants.append(grant)
        secrets = [token] if token else []
        secrets += [grant.token for grant in grants]
        if len(set(secrets)) != len(secrets):
            raise ConfigError("two tokens are the same: give each [tokens.NAME] its own")
        if token == self.token and grants == list(self.tokens):
            return self
        return replace(self, token=token, tokens=tuple(grants))


def parse_size(text: str | int, what: str = "size") -> int:
    """Read ``16M``, ``64K``, ``1G``, ``512`` (bytes) or ``1MiB`` as a number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ConfigError(f"{what} {text!r} is not a size like 64K, 16M or 1G")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def check_source_name(name: str) -> None:
    if name == ALL:
        raise ConfigError("'all' is reserved and cannot name a source")
    if not SOURCE_NAME_RE.match(name):
        raise ConfigError(
            f"invalid source name {name!r}: use letters, digits and . _ - @ : (at most 64)"
        )


def check_source_path(name: str, path: Path) -> None:
    """A source must be a regular file, or not exist yet (it is followed when it appears)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except PermissionError:
        return  # shown as unreadable and retried
    if stat.S_ISDIR(mode):
        raise ConfigError(f"source {name!r}: {path} is a directory, not a log file")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"source {name!r}: {path} is not a regular file (a FIFO or device?)")


def parse_source(spec: str) -> tuple[str, Path | CommandSource | JournalSource]:
    """Read a ``--source NAME=PATH``, ``NAME=command:CMDLINE`` or ``NAME=journal:UNIT`` argument.

    A file whose name starts with ``command:`` or ``journal:`` can still be followed as
    ``./command:…``.
    """
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ConfigError(
            f"--source {spec!r} must look like NAME=PATH, NAME=command:CMDLINE or NAME=journal:UNIT"
        )
    check_source_name(name)
    if path.startswith(COMMAND_PREFIX):
        return name, parse_command(path[len(COMMAND_PREFIX) :], f"--source {name}")
    if path.startswith(JOURNAL_PREFIX):
        return name, parse_journal(path[len(JOURNAL_PREFIX) :], f"--source {name}")
    return name, Path(path).expanduser()


def add_sources(
    existing: Mapping[str, Path | CommandSource | JournalSource],
    pairs: Iterable[tuple[str, Path | CommandSource | JournalSource]],
    origin: str,
) -> dict[str, Path | CommandSource | JournalSource]:
    sources = dict(existing)
    for name, path in pairs:
        if name in sources:
            raise ConfigError(f"duplicate source name {name!r} in {origin}")
        sources[name] = path
    return sources


_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "host": str,
    "port": int,
    "backlog": int,
    "client-buffer": (str, int),
    "stall-timeout": (int, float),
    "max-line": (str, int),
    "log-level": str,
    "name": str,
    "token-file": str,
    "insecure": bool,
    "tls-cert": str,
    "tls-key": str,
    "allow-origin": list,
    "max-clients": int,
    "ping-interval": (int, float),
    "ping-timeout": (int, float),
    "handshake-timeout": (int, float),
    "syslog": list,
    "syslog-allow": list,
    "syslog-max-sources": int,
    "state-dir": str,
    "journal-directory": str,
}
_PATH_KEYS = ("token_file", "tls_cert", "tls_key", "state_dir", "journal_directory")
_SECONDS_KEYS = ("stall_timeout", "ping_interval", "ping_timeout", "handshake_timeout")


def load_config(path: Path) -> ServerConfig:
    """Read a TOML config: options at the top, ``[sources.NAME] path = "…"`` (or
    ``command = "…"``, or ``journal = "UNIT"``), ``[tokens.NAME]``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    return config_from_mapping(document, origin=str(path))


def config_from_mapping(document: Mapping[str, Any], *, origin: str) -> ServerConfig:
    options: dict[str, Any] = {}
    for key, value in document.items():
        if key in ("sources", "tokens"):
            continue
        expected = _CONFIG_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{origin}: unknown setting {key!r}")
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(f"{origin}: {key} has the wrong type ({type(value).__name__})")
        options[key.replace("-", "_")] = value
    for key in ("client_buffer", "max_line"):
        if key in options:
            options[key] = parse_size(options[key], key.replace("_", "-"))
    for key in _SECONDS_KEYS:
        if key in options:
            options[key] = float(options[key])
    for key in _PATH_KEYS:
        if key in options:
            options[key] = Path(options[key]).expanduser()
    if "allow_origin" in options:
        options["allow_origin"] = tuple(_strings(options["allow_origin"], origin, "allow-origin"))
    if "syslog" in options:
        urls = _strings(options["syslog"], origin, "syslog")
        options["syslog"] = tuple(map(parse_syslog_url, urls))
    if "syslog_allow" in options:
        networks = _strings(options["syslog_allow"], origin, "syslog-allow")
        options["syslog_allow"] = tuple(map(parse_syslog_allow, networks))
    options["tokens"] = _token_tables(document.get("tokens", {}), origin)
    tables = document.get("sources", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{origin}: [sources] must be a table of [sources.NAME] tables")
    pairs = []
    for name, table in tables.items():
        pairs.append((name, _source_table(name, table, origin)))
    options["sources"] = add_sources({}, pairs, origin)
    return ServerConfig(**options)


def _source_table(name: str, table: Any, origin: str) -> Path | CommandSource | JournalSource:
    """``[sources.NAME]`` with exactly one of ``path``, ``command`` and ``journal`` (and, for a
    journal, perhaps ``priority``)."""
    where = f"{origin}: [sources.{name}]"
    keys = set(table) & {"path", "command", "journal"} if isinstance(table, dict) else set()
    if len(keys) != 1 or not isinstance(table[next(iter(keys))], str):
        raise ConfigError(
            f'{where} needs path = "/path/to/file", command = "program args…" '
            'or journal = "unit.service"'
        )
    unknown = set(table) - {"path", "command", "journal", "priority"}
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}")
    check_source_name(name)
    if "priority" in table and "journal" not in table:
        raise ConfigError(f"{where}: priority is for journal sources only")
    if "journal" in table:
        unit = table["journal"]
        if "?" in unit:
            raise ConfigError(f'{where}: write priority = "…" as a key of its own, not in journal')
        priority = table.get("priority")
        if isinstance(priority, bool) or not isinstance(priority, (str, int, type(None))):
            raise ConfigError(f"{where}: priority has the wrong type ({type(priority).__name__})")
        journal = parse_journal(unit, where)
        if priority is None:
            return journal
        return replace(journal, priority=check_priority(str(priority), where))
    if "command" in table:
        return parse_command(table["command"], where)
    if table["path"].startswith(COMMAND_PREFIX):
        raise ConfigError(f'{where}: write command = "…" for a command, not path = "command:…"')
    if table["path"].startswith(JOURNAL_PREFIX):
        raise ConfigError(
            f'{where}: write journal = "UNIT" for the journal, not path = "journal:…"'
        )
    return Path(table["path"]).expanduser()


def _strings(value: list[Any], origin: str, key: str) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{origin}: {key} must be a list of strings")
    return value


def _token_tables(tables: Any, origin: str) -> tuple[TokenGrant, ...]:
    """``[tokens.NAME] token-file = "…"`` and optionally ``sources = ["auth", …]``."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{origin}: [tokens] must be a table of [tokens.NAME] tables")
    grants = []
    for name, table in tables.items():
        where = f"{origin}: [tokens.{name}]"
        if not SOURCE_NAME_RE.match(name):
            raise ConfigError(f"{where}: use letters, digits and . _ - @ : in the name")
        if not isinstance(table, dict) or not isinstance(table.get("token-file"), str):
            raise ConfigError(f'{where} needs token-file = "/path/to/file"')
        unknown = set(table) - {"token-file", "sources"}
        if unknown:
            raise ConfigError(f"{where} has unknown keys {sorted(unknown)}")
        sources = table.get("sources")
        if sources is not None and not isinstance(sources, list):
            raise ConfigError(f"{where}: sources must be a list of source names")
        if sources == []:
            raise ConfigError(f"{where}: sources = [] allows nothing; leave it out for all")
        allowed = None if sources is None else frozenset(_strings(sources, where, "sources"))
        grants.append(TokenGrant(name, "", allowed, Path(table["token-file"]).expanduser()))
    return tuple(grants)


def discover_sources(log_dir: Path = Path("/var/log")) -> tuple[dict[str, Path], list[str]]:
    """The well-known logs that exist under ``log_dir``, and what was looked for."""
    found: dict[str, Path] = {}
    tried = []
    for name, relative in WELL_KNOWN_LOGS:
        path = log_dir / relative
        tried.append(str(path))
        if path.is_file():
            found[name] = path
    return found, tried


def override(config: ServerConfig, **changes: Any) -> ServerConfig:
    """The config with every change that is not None applied (command-line flags win)."""
    return replace(config, **{key: value for key, value in changes.items() if value is not None})
