"""The hosts file: short names (``@web1``) for servers, and groups of them (``@web``).

``~/.config/logtv/hosts.toml`` (``$XDG_CONFIG_HOME`` honoured; ``--hosts FILE`` overrides)::

    [hosts.web1]
    url = "ssh://admin@web1.example"
    [hosts.db1]
    url = "db1.example:8765"
    token-file = "~/.config/logtv/db1.token"
    [groups]
    web = ["web1", "web2"]

A group's members are hosts or other groups. The file is read only when a ``@name`` is used, and
everything wrong with it is one :class:`ConfigError` sentence.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logtv.config import ConfigError

__all__ = ["HostsFile", "NamedHost", "default_hosts_path", "load_hosts"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_KEYS = {"url", "token-file", "ca"}


@dataclass(frozen=True, slots=True)
class NamedHost:
    """One ``[hosts.NAME]`` table."""

    name: str
    #: Any server address `logtv watch` takes: ``HOST:PORT``, ``ws[s]://…``, ``ssh://…``.
    url: str
    #: This host's token (instead of ``--token``/``--token-file``/``$LOGTV_TOKEN``).
    token_file: Path | None = None
    #: The CA that this host's ``wss://`` certificate is checked against (instead of ``--ca``).
    ca: Path | None = None


@dataclass(frozen=True, slots=True)
class HostsFile:
    """The named hosts and groups of one file."""

    path: Path
    hosts: Mapping[str, NamedHost]
    groups: Mapping[str, tuple[str, ...]]

    def expand(self, word: str) -> list[NamedHost]:
        """The hosts ``@name`` stands for, in file order, without repeats."""
        name = word.removeprefix("@")
        if name in self.hosts:
            return [self.hosts[name]]
        if name not in self.groups:
            known = ", ".join(sorted([*self.hosts, *self.groups])) or "none"
            raise ConfigError(f"no host or group {name!r} in {self.path} (it has: {known})")
        found: dict[str, NamedHost] = {}
        self._walk(name, [], found)
        return list(found.values())

    def _walk(self, group: str, path: list[str], found: dict[str, NamedHost]) -> None:
        if group in path:
            cycle = " → ".join([*path[path.index(group) :], group])
            raise ConfigError(f"group {group!r} in {self.path} contains itself ({cycle})")
        for member in self.groups[group]:
            if member in self.hosts:
                found.setdefault(member, self.hosts[member])
            else:
                self._walk(member, [*path, group], found)


def default_hosts_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/logtv/hosts.toml``, else ``~/.config/logtv/hosts.toml``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec: a relative value is invalid and is to be ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "logtv" / "hosts.toml"


def load_hosts(path: Path) -> HostsFile:
    """Read and check a hosts file; ConfigError names what is wrong, in one sentence."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f'no hosts file {path}: create it with [hosts.NAME] url = "…", or give --hosts FILE'
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read hosts file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"hosts file {path} is not valid TOML: {exc}") from None
    unknown = set(document) - {"hosts", "groups"}
    if unknown:
        raise ConfigError(f"hosts file {path} has unknown keys {sorted(unknown)}")
    hosts = _hosts(document.get("hosts", {}), path)
    groups = _groups(document.get("groups", {}), path)
    for name, members in groups.items():
        if name in hosts:
            raise ConfigError(f"{name!r} in {path} is both a host and a group")
        for member in members:
            if member not in hosts and member not in groups:
                raise ConfigError(f"group {name!r} in {path} names {member!r}, which is not there")
    return HostsFile(path, hosts, groups)


def _hosts(tables: Any, path: Path) -> dict[str, NamedHost]:
    if not isinstance(tables, dict):
        raise ConfigError(f'in {path}, hosts must be tables: [hosts.NAME] url = "…"')
    hosts: dict[str, NamedHost] = {}
    for name, table in tables.items():
        where = f"[hosts.{name}] in {path}"
        _check_name(name, where)
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            raise ConfigError(f'{where} needs url = "HOST:PORT", "wss://…" or "ssh://…"')
        unknown = set(table) - _HOST_KEYS
        if unknown:
            raise ConfigError(f"{where} has unknown keys {sorted(unknown)}")
        url = table["url"].strip()
        if not url or url.startswith("@"):
            raise ConfigError(f"{where}: url must be a server address, not {url!r}")
        hosts[name] = NamedHost(
            name,
            url,
            token_file=_path(table, "token-file", where, path),
            ca=_path(table, "ca", where, path),
        )
    return hosts


def _groups(table: Any, path: Path) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise ConfigError(f'in {path}, [groups] holds lists: web = ["web1", "web2"]')
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in table.items():
        where = f"group {name!r} in {path}"
        _check_name(name, where)
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) for m in members)
        ):
            raise ConfigError(f'{where} must be a list of host names: {name} = ["web1", "web2"]')
        groups[name] = tuple(m.removeprefix("@") for m in members)
    return groups


def _check_name(name: str, where: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a name is letters, digits and . _ - (at most 64)")


def _path(table: dict[str, Any], key: str, where: str, origin: Path) -> Path | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{where}: {key} must be a path, like {key} = "/path/to/file"')
    # Relative to the hosts file, like ~ for home: the file works from any directory.
    return origin.parent / Path(value).expanduser()
