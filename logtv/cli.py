"""The command line: argument parsing and wiring only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from logtv import __version__
from logtv.config import (
    CommandSource,
    ConfigError,
    JournalSource,
    ServerConfig,
    add_sources,
    discover_sources,
    load_config,
    override,
    parse_size,
    parse_source,
    parse_syslog_allow,
    parse_syslog_url,
    read_token_file,
)

if TYPE_CHECKING:
    from logtv.client.connection import LogClient
    from logtv.client.hosts import NamedHost

__all__ = ["main"]


class CommandError(Exception):
    """A usage problem reported as one `logtv: error: …` line with exit code 2."""


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="follow log files and serve them over WebSockets")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    serve.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file to follow; NAME=command:CMDLINE for a command's output; "
        "NAME=journal:[UNIT][?priority=LEVEL] for the systemd journal",
    )
    serve.add_argument("--config", type=Path, metavar="FILE.toml", help="a TOML config file")
    serve.add_argument("--backlog", type=int, help="lines kept per source for new clients (200)")
    serve.add_argument("--client-buffer", metavar="SIZE", help="output queued per client (16M)")
    serve.add_argument(
        "--stall-timeout", type=float, metavar="S", help="close stalled clients (60)"
    )
    serve.add_argument("--max-line", metavar="SIZE", help="cut longer lines (64K)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--name", help="the box's name shown to viewers (default: host name)")
    serve.add_argument(
        "--token-file", type=Path, metavar="FILE", help="token clients must send ($LOGTV_TOKEN)"
    )
    serve.add_argument(
        "--insecure", action="store_true", default=None, help="off loopback without a token"
    )
    serve.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve wss:// (with --tls-key)")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's key")
    serve.add_argument(
        "--allow-origin", action="append", metavar="ORIGIN", help="a web origin to let in (repeat)"
    )
    serve.add_argument("--max-clients", type=int, metavar="N", help="then HTTP 503 (256)")
    serve.add_argument("--ping-interval", type=float, metavar="S", help="keepalive (20; 0: off)")
    serve.add_argument("--ping-timeout", type=float, metavar="S", help="pong wait (20)")
    serve.add_argument("--handshake-timeout", type=float, metavar="S", help="TLS+HTTP (10)")
    serve.add_argument(
        "--syslog",
        action="append",
        metavar="URL",
        help="receive syslog on udp://HOST:PORT or tcp://HOST:PORT (repeat)",
    )
    serve.add_argument(
        "--syslog-allow", action="append", metavar="CIDR", help="who may send syslog (repeat)"
    )
    serve.add_argument(
        "--syslog-max-sources", type=int, metavar="N", help="then syslog-overflow (200)"
    )
    serve.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="journal cursors ($XDG_STATE_HOME/logtv)"
    )
    serve.add_argument(
        "--journal-directory", type=Path, metavar="DIR", help="journal files to read instead"
    )


def _target_arguments(parser: argparse.ArgumentParser) -> None:
    """The viewers' positional words: servers and sources (see ``client.targets``)."""
    parser.add_argument(
        "server", metavar="HOST:PORT", help="server address, ws:// or ssh:// URL, or @NAME"
    )
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE|HOST:PORT",
        help="sources (default: all); more servers: HOST:PORT, [::1]:PORT, URLs or @NAME",
    )
    parser.add_argument(
        "--hosts",
        type=Path,
        metavar="FILE",
        help="the named hosts for @NAME (default: ~/.config/logtv/hosts.toml)",
    )


def _tail_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser("tail", help="print a server's lines to stdout")
    _target_arguments(tail)
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--raw", action="store_true", help="lines unescaped (not to a terminal)")
    tail.add_argument("--backlog", type=int, default=10, help="recent lines to start with (10)")
    _filter_flags(tail)
    _client_security_flags(tail)


def _watch_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = commands.add_parser("watch", help="the terminal UI: sources and a live log pane")
    _target_arguments(watch)
    watch.add_argument("--backlog", type=int, default=200, help="recent lines to start with (200)")
    watch.add_argument("--max-lines", type=int, default=50_000, help="scrollback kept (50000)")
    watch.add_argument("--fps", type=float, help="log pane frames per second (30; 4 over SSH)")
    _filter_flags(watch)
    _client_security_flags(watch)
    watch.add_argument("--once", action="store_true", help="exit 1 if the first connect fails")


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    """Filters the server applies before sending, so that a thin link carries only those lines."""
    parser.add_argument(
        "--filter", metavar="REGEX", help="server-side: only lines matching REGEX (RE2 syntax)"
    )
    parser.add_argument(
        "--min-severity",
        metavar="LEVEL",
        help="server-side: only lines at least this severe (emerg … debug or 0-7); "
        "lines without a severity pass",
    )


def _check_filter(args: argparse.Namespace) -> None:
    """Refuse a bad --filter or --min-severity here, with the server's own words."""
    from logtv.server.filters import FilterError, compile_filter

    try:
        compile_filter(args.filter, args.min_severity)
    except FilterError as exc:
        flag = "--filter" if exc.code == "bad_filter" else "--min-severity"
        detail = exc.detail.removeprefix("filter: ").removeprefix("min_severity ")
        raise CommandError(f"{flag}: {detail}") from None


def _client_security_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", help="bearer token (default: $LOGTV_TOKEN)")
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="read the token from FILE")
    parser.add_argument("--ca", type=Path, metavar="PEM", help="trust this CA for wss://")


def client_security(args: argparse.Namespace) -> tuple[str | None, ssl.SSLContext | None]:
    """The token and TLS context of `tail`/`watch`: flags, then $LOGTV_TOKEN; wss:// verifies."""
    from logtv.client.connection import normalize_url

    if args.token is not None and args.token_file is not None:
        raise CommandError("give --token or --token-file, not both")
    token = args.token
    if args.token_file is not None:
        token = read_token_file(args.token_file, "--token-file")
    elif token is None:
        token = os.environ.get("LOGTV_TOKEN", "").strip() or None
    context = None
    try:
        # ssh:// and named hosts: plain ws:// inside the tunnel, or the hosts file's own `ca`.
        tunnelled = args.server.startswith(("ssh://", "@"))
        secure = not tunnelled and normalize_url(args.server).startswith("wss:")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.ca is not None and not secure:
        raise CommandError("--ca is for wss:// servers: write the address as wss://HOST:PORT")
    if secure:
        try:
            context = ssl.create_default_context(cafile=args.ca)
        except (OSError, ssl.SSLError) as exc:
            raise CommandError(f"cannot use --ca {args.ca}: {exc}") from None
    return token, context


def _demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="a live demo on synthetic logs (no root needed)")
    demo.add_argument("--serve-only", action="store_true", help="serve, print the address")
    demo.add_argument("--rate", type=float, default=1.0, help="line rate multiplier (1.0)")
    demo.add_argument("--seed", type=int, help="repeatable content")
    demo.add_argument("--port", type=int, default=0, help="port (default: a free one)")


def _client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts like 1,10,100, not {text!r}")
    return counts


def _bench_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser("bench", help="measure a real `logtv serve` against baselines")
    bench.add_argument("--clients", type=_client_counts, metavar="N,N", help="counts (1,10,100)")
    bench.add_argument("--lines", type=int, metavar="N", help="lines per throughput run (200000)")
    bench.add_argument("--rate", type=float, metavar="R", help="lines/s of the latency run (1000)")
    bench.add_argument("--duration", type=float, metavar="S", help="latency and idle runs (10)")
    bench.add_argument("--quick", action="store_true", help="small numbers, for the tests")
    bench.add_argument(
        "--vs",
        metavar="COMMAND",
        help="a peer server to run too; {port} and {file} are filled in, e.g. "
        "'websocketd --address 127.0.0.1 --port {port} tail -n0 -F {file}'",
    )
    bench.add_argument(
        "--vs-url",
        metavar="URL",
        help="the peer's WebSocket URL ({port}, {file}, {md5file} filled in; a '#send=TEXT' "
        "fragment is sent once connected), e.g. for frontail: "
        "'ws://127.0.0.1:{port}/socket.io/?EIO=3&transport=websocket#send=40/{md5file},'",
    )
    bench.add_argument("--processes", type=int, metavar="N", help="client processes (2)")
    bench.add_argument("--sustained", action="store_true", help="only the sustained fan-out search")
    bench.add_argument(
        "--latency", action="store_true", help="only the latency runs (--rate to the most clients)"
    )
    bench.add_argument(
        "--tty", action="store_true", help="instead: logtv watch's terminal bytes, vs tail -f"
    )
    bench.add_argument(
        "--tui", action="store_true", help="instead: logtv watch's drain rate and key latency"
    )
    bench.add_argument("--rates", metavar="R,R", help="--tty/--tui: lines/s (100,1000)")
    bench.add_argument("--seconds", type=float, metavar="S", help="--tty: seconds per run (10)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': only)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logtv", description="Follow a box's logs live, in the terminal."
    )
    parser.add_argument("--version", action="version", version=f"logtv {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(commands)
    _tail_parser(commands)
    _watch_parser(commands)
    _demo_parser(commands)
    _bench_parser(commands)
    return parser


def server_config(args: argparse.Namespace) -> ServerConfig:
    """Defaults, then the config file, then the flags."""
    config = load_config(args.config) if args.config else ServerConfig()
    # Flags may not name a source twice; a flag naming a source of the file replaces its path.
    flagged = add_sources({}, map(parse_source, args.source), "--source")
    sources: dict[str, Path | CommandSource | JournalSource] = {**config.sources, **flagged}
    syslog = args.syslog and tuple(map(parse_syslog_url, args.syslog))
    syslog_allow = args.syslog_allow and tuple(map(parse_syslog_allow, args.syslog_allow))
    if not sources and not (syslog or config.syslog):  # a syslog-only server follows no files
        found, tried = discover_sources()
        if not any(os.access(path, os.R_OK) for path in found.values()):
            raise ConfigError(
                "no readable log file found (tried "
                + ", ".join(tried)
                + "); name one with --source NAME=PATH, or try `logtv demo`"
            )
        sources = dict(found)
    client_buffer = (
        None if args.client_buffer is None else parse_size(args.client_buffer, "--client-buffer")
    )
    max_line = None if args.max_line is None else parse_size(args.max_line, "--max-line")
    config = override(
        config,
        host=args.host,
        port=args.port,
        backlog=args.backlog,
        client_buffer=client_buffer,
        stall_timeout=args.stall_timeout,
        max_line=max_line,
        log_level=args.log_level,
        name=args.name,
        insecure=args.insecure,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_origin=args.allow_origin and tuple(args.allow_origin),
        max_clients=args.max_clients,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        handshake_timeout=args.handshake_timeout,
        syslog=syslog,
        syslog_allow=syslog_allow,
        syslog_max_sources=args.syslog_max_sources,
        state_dir=args.state_dir,
        journal_directory=args.journal_directory,
    )
    # The token: --token-file, else $LOGTV_TOKEN, else the config's token-file.
    if args.token_file is not None:
        config = replace(config, token_file=args.token_file, token="")
    elif os.environ.get("LOGTV_TOKEN"):
        config = replace(config, token=os.environ["LOGTV_TOKEN"].strip(), token_file=None)
    return override(config, sources=sources).validated()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # websockets logs every connection at INFO; the hub logs the ones that matter, with ids.
    logging.getLogger("logtv.websockets").setLevel(logging.WARNING)


async def _serve(config: ServerConfig) -> int:
    from logtv.server.server import LogServer
    from logtv.server.syslog import SyslogListenError

    server = LogServer(config)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        where = f"{config.host}:{config.port}"
        if isinstance(exc, SyslogListenError):
            where = f"{exc.url} for syslog"
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"cannot listen on {where}: address already in use") from None
        raise CommandError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    # One write: print() writes the newline apart, and a source's thread may log in between.
    said = [f"listening on {server.url}\n"]
    said += [f"syslog: listening on {url}\n" for url in server.syslog_urls]
    sys.stderr.write("".join(said))
    sys.stderr.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logging.getLogger("logtv").info("shutting down")
    await server.stop()
    return 0


def _clients(
    args: argparse.Namespace, *, default_sources: list[str] | None
) -> dict[str, LogClient]:
    """One client per server named on the command line (the same server twice is one).

    A ``@name`` stands for the hosts file's host (or group of hosts) of that name; a host's own
    ``token-file`` and ``ca`` win over the flags for it.
    """
    from logtv.client.connection import LogClient, normalize_url
    from logtv.client.hosts import HostsFile, default_hosts_path, load_hosts
    from logtv.client.ssh import parse_ssh_url, ssh_argv
    from logtv.client.targets import security_target, split_targets

    _check_filter(args)
    try:
        servers, sources = split_targets([args.server, *args.sources])
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    hosts_file: HostsFile | None = None
    entries: list[tuple[str, NamedHost | None]] = []
    for server in servers:
        if server.startswith("@"):
            hosts_file = hosts_file or load_hosts(args.hosts or default_hosts_path())
            entries.extend((host.url, host) for host in hosts_file.expand(server))
        else:
            entries.append((server, None))
    for address, host in entries:  # each address checked first, named as the user wrote it
        try:
            if address.startswith("ssh://"):
                ssh_argv(parse_ssh_url(address))  # a bad $LOGTV_SSH_COMMAND: say so now
            else:
                normalize_url(address)
        except ValueError as exc:
            raise CommandError(f"[hosts.{host.name}]: {exc}" if host else str(exc)) from None
    addresses = [address for address, _ in entries]
    token, context = client_security(
        argparse.Namespace(**{**vars(args), "server": security_target(addresses)})
    )
    clients: dict[str, LogClient] = {}
    for address, host in entries:
        where = f"[hosts.{host.name}]: " if host else ""
        try:
            client = LogClient(
                address,
                sources=sources or default_sources,
                line_filter=args.filter,
                min_severity=args.min_severity,
                backlog=args.backlog,
                token=_host_token(host) or token,
                ssl_context=_host_context(host) or context,
                name=host.name if host else None,
            )
        except ValueError as exc:
            raise CommandError(f"{where}{exc}") from None
        clients.setdefault(client.url, client)
    return clients


def _host_token(host: NamedHost | None) -> str | None:
    if host is None or host.token_file is None:
        return None
    return read_token_file(host.token_file, f"token-file of [hosts.{host.name}]")


def _host_context(host: NamedHost | None) -> ssl.SSLContext | None:
    if host is None or host.ca is None:
        return None
    if not host.url.startswith("wss://"):
        raise CommandError(f"[hosts.{host.name}]: ca is for wss:// urls")
    try:
        return ssl.create_default_context(cafile=host.ca)
    except (OSError, ssl.SSLError) as exc:
        raise CommandError(f"[hosts.{host.name}]: cannot use ca {host.ca}: {exc}") from None


async def _tail(args: argparse.Namespace) -> int:
    from logtv.client.tail import run_tail

    if args.raw and sys.stdout.isatty():
        raise CommandError("--raw prints log bytes unescaped: only into a pipe or a file")
    clients = _clients(args, default_sources=["all"])

    async def close_all() -> None:
        for client in clients.values():
            await client.close()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGHUP):  # like Ctrl-C: end quietly, exit 0
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(close_all()))
    return await run_tail(list(clients.values()), as_json=args.json, raw=args.raw)


def _watch(args: argparse.Namespace) -> int:
    from logtv.client.app import WatchApp

    if args.max_lines < 100:
        raise CommandError("--max-lines must be at least 100")
    if args.fps is not None and not 0.5 <= args.fps <= 120:
        raise CommandError("--fps must be from 0.5 to 120")
    clients = _clients(args, default_sources=None)
    app = WatchApp(list(clients.values()), max_lines=args.max_lines, fps=args.fps, once=args.once)
    app.run()
    return app.return_code or 0


def _demo(args: argparse.Namespace) -> int:
    from logtv.demo import run_demo

    if not 0.01 <= args.rate <= 1000:
        raise CommandError("--rate must be from 0.01 to 1000")
    if args.serve_only:
        setup_logging("info")
    return asyncio.run(
        run_demo(seed=args.seed, rate=args.rate, serve_only=args.serve_only, port=args.port)
    )


def _viewer_bench(args: argparse.Namespace) -> int:
    """`bench --tty` / `bench --tui`: the viewer's side, each with its own small option set."""
    argv = [] if args.rates is None else ["--rates", args.rates]
    if args.tty:
        from logtv.bench.tty import main as tty_bench

        return tty_bench(argv + ([] if args.seconds is None else ["--seconds", str(args.seconds)]))
    from logtv.bench.tui import main as tui_bench

    return tui_bench(argv + ([] if args.lines is None else ["--lines", str(args.lines)]))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            config = server_config(args)
            setup_logging(config.log_level)
            return asyncio.run(_serve(config))
        if args.command == "tail":
            return asyncio.run(_tail(args))
        if args.command == "watch":
            return _watch(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "bench" and (args.tty or args.tui):
            return _viewer_bench(args)
        if args.command == "bench":
            from logtv.bench.runner import main as bench

            return bench(args)
    except (ConfigError, CommandError) as exc:
        print(f"logtv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130 if args.command != "tail" else 0
    except BrokenPipeError:
        # The reader went away (`logtv tail | head`): end quietly, without a traceback at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 2
