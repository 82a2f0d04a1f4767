"""Server settings: defaults, the TOML file, command-line overrides, and their validation.

Every problem a user can make here (a bad size, a duplicate source, a FIFO given as a log) is a
:class:`ConfigError` with one sentence that names it; the command line prints it and exits 2.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from logtv.protocol import ALL, SOURCE_NAME_RE

__all__ = [
    "DEFAULT_PORT",
    "WELL_KNOWN_LOGS",
    "ConfigError",
    "ServerConfig",
    "discover_sources",
    "load_config",
    "parse_size",
    "parse_source",
]

DEFAULT_PORT = 8765

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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `logtv serve` needs to run."""

    #: Address to bind; loopback unless the user says otherwise.
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (the listening line says which).
    port: int = DEFAULT_PORT
    #: Source name -> file path, in the order the viewers list them.
    sources: Mapping[str, Path] = field(default_factory=dict)
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

    def validated(self) -> ServerConfig:
        """Check every field; raise ConfigError naming the first bad one."""
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
        if self.log_level not in _LOG_LEVELS:
            raise ConfigError(f"log-level must be one of {', '.join(_LOG_LEVELS)}")
        for name, path in self.sources.items():
            check_source_name(name)
            check_source_path(name, path)
        return self


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


def parse_source(spec: str) -> tuple[str, Path]:
    """Read a ``--source NAME=PATH`` argument."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"--source {spec!r} must look like NAME=PATH")
    check_source_name(name)
    return name, Path(path).expanduser()


def add_sources(
    existing: Mapping[str, Path], pairs: Iterable[tuple[str, Path]], origin: str
) -> dict[str, Path]:
    sources = dict(existing)
    for name, path in pairs:
        if name in sources:
            raise ConfigError(f"duplicate source name {name!r} in {origin}")
        sources[name] = path
    return sources


_CONFIG_KEYS = {
    "host": str,
    "port": int,
    "backlog": int,
    "client-buffer": (str, int),
    "stall-timeout": (int, float),
    "max-line": (str, int),
    "log-level": str,
    "name": str,
}


def load_config(path: Path) -> ServerConfig:
    """Read a TOML config: server options at the top, and ``[sources.NAME] path = "…"``."""
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
        if key == "sources":
            continue
        expected = _CONFIG_KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{origin}: unknown setting {key!r}")
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigError(f"{origin}: {key} has the wrong type ({type(value).__name__})")
        options[key.replace("-", "_")] = value
    for key in ("client_buffer", "max_line"):
        if key in options:
            options[key] = parse_size(options[key], key.replace("_", "-"))
    if "stall_timeout" in options:
        options["stall_timeout"] = float(options["stall_timeout"])
    tables = document.get("sources", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{origin}: [sources] must be a table of [sources.NAME] tables")
    pairs = []
    for name, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("path"), str):
            raise ConfigError(f'{origin}: [sources.{name}] needs path = "/path/to/file"')
        unknown = set(table) - {"path"}
        if unknown:
            raise ConfigError(f"{origin}: [sources.{name}] has unknown keys {sorted(unknown)}")
        check_source_name(name)
        pairs.append((name, Path(table["path"]).expanduser()))
    options["sources"] = add_sources({}, pairs, origin)
    return ServerConfig(**options)


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
