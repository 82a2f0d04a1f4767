"""The SSH transport: reach a remote `logtv serve` on its loopback through the system `ssh`.

Each connection attempt runs ``ssh -W 127.0.0.1:PORT`` with one end of a socketpair as its stdin
and stdout, and hands the other end to the WebSocket client. So nothing listens anywhere (no local
port, no socket file), the user's own ssh config, agent and known_hosts apply, and when logtv dies
for any reason ssh reads end-of-file on its stdin and exits by itself. ssh runs with BatchMode (a
password prompt cannot work inside the TUI); when it fails, its own stderr is the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from logtv.config import DEFAULT_PORT
from logtv.protocol import PATH

__all__ = ["SSH_COMMAND_ENV", "SshError", "SshTarget", "open_tunnel", "parse_ssh_url", "ssh_argv"]

#: Like git's GIT_SSH_COMMAND: the program and options to run instead of plain ``ssh``.
SSH_COMMAND_ENV = "LOGTV_SSH_COMMAND"

#: What the user may not put in a host or user name (no option injection, no shell words).
_NAME = re.compile(r"^[A-Za-z0-9_.%+\-]+$")

#: How long ssh gets to exit and say why once the connection broke (it is usually at once).
_FAILURE_WAIT = 2.0
#: How long ssh gets to exit when asked to, before it is killed.
_EXIT_WAIT = 5.0


class SshError(OSError):
    """ssh could not open the tunnel; the message is ssh's own (its last stderr lines)."""


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to ssh to and which loopback port of that box the `logtv serve` listens on."""

    host: str
    user: str | None = None
    ssh_port: int | None = None
    #: The remote `logtv serve` port on the remote's 127.0.0.1 (``?port=`` in the URL).
    remote_port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        """The canonical ``ssh://`` form (one client per distinct target)."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.ssh_port}" if self.ssh_port else ""
        return f"ssh://{user}{host}{port}?port={self.remote_port}"

    @property
    def ws_url(self) -> str:
        """The URL spoken through the tunnel: the remote's own loopback view of the server."""
        return f"ws://127.0.0.1:{self.remote_port}{PATH}"


def parse_ssh_url(target: str) -> SshTarget:
    """``ssh://[user@]box[:sshport][?port=REMOTE]``; ValueError with one clear sentence if bad."""
    parts = urlsplit(target)
    if parts.scheme != "ssh":
        raise ValueError(f"not an ssh:// address: {target!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {target!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"an ssh:// address has no path ({target!r}): use ?port=N for the port")
    if parts.password is not None:
        raise ValueError(f"no password in ssh:// addresses ({target!r}): ssh uses your keys")
    for name in filter(None, (parts.hostname, parts.username)):
        if not _NAME.match(name) and not (name == parts.hostname and ":" in name):
            raise ValueError(f"bad name {name!r} in {target!r}")
        if name.startswith("-"):
            raise ValueError(f"bad name {name!r} in {target!r}")
    try:
        ssh_port = parts.port
    except ValueError:
        raise ValueError(f"bad ssh port in {target!r}") from None
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"port"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} in {target!r}: only ?port=N")
    remote_port = DEFAULT_PORT
    if "port" in options:
        text = options["port"]
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ValueError(f"bad remote port {text!r} in {target!r}: give ?port=1..65535")
        remote_port = int(text)
    return SshTarget(parts.hostname, parts.username, ssh_port, remote_port)


def ssh_argv(target: SshTarget, environ: Mapping[str, str] | None = None) -> list[str]:
    """The ssh command line: ``$LOGTV_SSH_COMMAND`` (shlex-split, never a shell) or ``ssh``."""
    environ = os.environ if environ is None else environ
    command = environ.get(SSH_COMMAND_ENV, "").strip() or "ssh"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"cannot split ${SSH_COMMAND_ENV} ({exc})") from None
    argv += ["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
    if target.ssh_port:
        argv += ["-p", str(target.ssh_port)]
    if target.user:
        argv += ["-l", target.user]
    argv += ["-W", f"127.0.0.1:{target.remote_port}", "--", target.host]
    return argv


@contextlib.asynccontextmanager
async def open_tunnel(target: SshTarget) -> AsyncIterator[socket.socket]:
    """A connected socket to the remote server's loopback port, for as long as the block runs.

    ssh is started here and always ended and reaped on the way out. If the block fails while
    ssh has exited unhappily, :class:`SshError` with ssh's own words replaces the failure.
    """
    try:
        argv = ssh_argv(target)
    except ValueError as exc:
        raise SshError(str(exc)) from None
    ours, theirs = socket.socketpair()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: no prompts, no Ctrl-C of its own
        )
    except OSError as exc:
        ours.close()
        raise SshError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    finally:
        theirs.close()
    stderr = asyncio.ensure_future(_read_all(process.stderr))
    try:
        try:
            yield ours
        except BaseException as exc:
            if isinstance(exc, Exception):
                said = await _failure(process, stderr, target)
                if said is not None:
                    raise SshError(said) from exc
            raise
    finally:
        ours.close()
        await _end(process)
        stderr.cancel()


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    if stream is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(4096):
        if size < 65536:  # a chatty ssh (-v) cannot make us hold much
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


async def _failure(
    process: asyncio.subprocess.Process, stderr: asyncio.Future[bytes], target: SshTarget
) -> str | None:
    """ssh's reason when it exited non-zero (waiting a little for it to finish), else None."""
    try:
        code = await asyncio.wait_for(process.wait(), _FAILURE_WAIT)
        said = await asyncio.wait_for(asyncio.shield(stderr), _FAILURE_WAIT)
    except TimeoutError:
        return None
    if code == 0:
        return None
    lines = [
        line.strip()
        for line in said.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith(("debug", "Warning: Permanently added"))
    ]
    reason = "; ".join(lines[-3:]) or f"ssh exited with status {code}"
    if "Permission denied" in reason or "passphrase" in reason.lower():
        reason += " (logtv runs ssh with BatchMode: a password prompt cannot work, use a key)"
    elif "Host key verification failed" in reason:
        reason += f" (check the host key once with a plain `ssh {target.host}`)"
    elif "open failed" in reason or "forwarding failed" in reason:
        reason += f" (is `logtv serve` listening on 127.0.0.1:{target.remote_port} there?)"
    return f"ssh: {reason}"


async def _end(process: asyncio.subprocess.Process) -> None:
    """Terminate ssh if it still runs and wait for it (bounded); kill it if it will not go.

    When cancelled meanwhile, ssh has had its SIGTERM already and the child watcher reaps it.
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
    try:
        await asyncio.wait_for(process.wait(), _EXIT_WAIT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), _EXIT_WAIT)
