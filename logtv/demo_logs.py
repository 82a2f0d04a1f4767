"""Synthetic, realistic log sources for ``logtv demo``.

Why: a demo (and the snapshot tests) needs logs that look and behave like a real box's - sshd
logins and brute-force bursts, firewall blocks, kernel chatter, cron and systemd, web traffic -
written into *real files*, so that the real tailer, including its handling of rotation and
truncation, is what gets shown. Every address is from the documentation ranges (RFC 5737,
RFC 3849) and everything is reproducible from a seed and the sequence of clock values.

Design: each source has a rate and a weighted table of *events*; an event is a short list of
``(delay, body)`` lines, or ``(delay, body, other_source)`` (an SSH session is opened now and
closed minutes later; the OOM killer is in kern.log, systemd restarting its victim in syslog).
Rare things (brute force, OOM, rotation, the one truncation, changes of activity level) run
on a schedule in simulated time; ``advance()`` replays what is due, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["HOST", "SOURCE_FILES", "DemoLogs", "format_line", "make_line"]

HOST = "web1"
Event = list[tuple[float, str] | tuple[float, str, str]]  # (delay s, body[, other source])

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NETS4 = ("192.0.2", "198.51.100", "203.0.113")
_SERVER4, _SERVER6 = "192.0.2.10", "2001:db8::10"
_MACS = "52:54:00:3a:7c:01:fe:54:00:9b:21:c4"  # ours, then the gateway's
_USERS = {"root": 0, "alice": 1000, "bob": 1001, "carol": 1002, "deploy": 1003}
_HUMANS = ("alice", "bob", "carol", "deploy")
_BAD_USERS: tuple[str, ...] = ("admin", "oracle", "test", "ubuntu", "pi", "postgres", "user")
_BAD_USERS += ("guest", "ftpuser", "support", "mysql", "hadoop", "git", "root", "root")
_LOGIND, _NETWORKD = "systemd-logind[612]", "systemd-networkd[515]"  # long-lived daemons
_RSYSLOG_HUP = (
    'rsyslogd: [origin software="rsyslogd" swVersion="8.2312.0" x-pid="655" '
    'x-info="https://www.rsyslog.com"] rsyslogd was HUPed'
)


def _ip4(rng: random.Random) -> str:
    return f"{rng.choice(_NETS4)}.{rng.randint(1, 254)}"


def _ip6(rng: random.Random) -> str:
    return f"2001:db8:{rng.randrange(0x10000):x}::{rng.randrange(1, 0x10000):x}"


def _pid(rng: random.Random) -> int:
    return rng.randint(1200, 99999)


def _port(rng: random.Random) -> int:
    return rng.randint(32768, 60999)


# --- auth -------------------------------------------------------------------------------------


def _ssh_login(rng: random.Random) -> Event:
    user, ip, port, session = rng.choice(_HUMANS), _ip4(rng), _port(rng), rng.randint(3, 900)
    ssh, peer, end = f"sshd[{_pid(rng)}]", f"{ip} port {port}", rng.uniform(5, 900)
    if rng.random() < 0.75:
        key = "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(43))
        kind = rng.choice(("ED25519", "RSA"))
        how = f"publickey for {user} from {peer} ssh2: {kind} SHA256:{key}"
    else:
        how = f"password for {user} from {peer} ssh2"
    pam = f"{ssh}: pam_unix(sshd:session): session"
    return [
        (0, f"{ssh}: Accepted {how}"),
        (0.02, f"{pam} opened for user {user}(uid={_USERS[user]}) by (uid=0)"),
        (0.05, f"{_LOGIND}: New session {session} of user {user}."),
        (end, f"{ssh}: Received disconnect from {peer}:11: disconnected by user"),
        (end, f"{ssh}: Disconnected from user {user} {peer}"),
        (end + 0.01, f"{pam} closed for user {user}"),
        (end + 0.02, f"{_LOGIND}: Session {session} logged out. Waiting for processes to exit."),
        (end + 0.03, f"{_LOGIND}: Removed session {session}."),
    ]


def _attempt(rng: random.Random, ip: str, at: float, user: str | None = None) -> Event:
    """One password guess from `ip`, `at` seconds into its event."""
    ssh, peer, fail = f"sshd[{_pid(rng)}]", f"{ip} port {_port(rng)}", at + rng.uniform(1, 3)
    user = user or rng.choice(_BAD_USERS)
    if user in _USERS:
        return [
            (at, f"{ssh}: Failed password for {user} from {peer} ssh2"),
            (fail, f"{ssh}: Connection closed by authenticating user {user} {peer} [preauth]"),
        ]
    return [
        (at, f"{ssh}: Invalid user {user} from {peer}"),
        (fail, f"{ssh}: Failed password for invalid user {user} from {peer} ssh2"),
        (fail + 0.2, f"{ssh}: Connection closed by invalid user {user} {peer} [preauth]"),
    ]


def _ssh_failure(rng: random.Random) -> Event:
    return _attempt(rng, _ip4(rng), 0.0, rng.choice((*_HUMANS, None)))


_SUDO_COMMANDS: tuple[str, ...] = (
    "/usr/bin/apt update",
    "/usr/bin/apt upgrade -y",
    "/usr/sbin/ufw status",
)
_SUDO_COMMANDS += ("/usr/bin/systemctl restart nginx", "/usr/bin/journalctl -u nginx -n 50")


def _sudo(rng: random.Random) -> Event:
    user, tty, cmd = rng.choice(_HUMANS[:3]), rng.randint(0, 3), rng.choice(_SUDO_COMMANDS)
    pam = "sudo: pam_unix(sudo:session): session"
    return [
        (0, f"sudo: {user:>8} : TTY=pts/{tty} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}"),
        (0.01, f"{pam} opened for user root(uid=0) by {user}(uid={_USERS[user]})"),
        (rng.uniform(0.2, 40), f"{pam} closed for user root"),
    ]


def _bruteforce(rng: random.Random) -> Event:
    """Dozens of guesses from ONE address within a minute or so, then the firewall drops it."""
    ip, at, event = _ip4(rng), 0.0, []
    for _ in range(rng.randint(20, 45)):
        event += _attempt(rng, ip, at)
        at += rng.uniform(0.3, 2.5)
    for _ in range(rng.randint(3, 6)):
        at += rng.uniform(3, 20)
        event.append((at, _ufw_line(rng, "BLOCK", ip, "TCP", 22), "ufw"))
    return event


# --- ufw --------------------------------------------------------------------------------------

_BLOCK_TCP = (22, 22, 22, 23, 25, 445, 1433, 3306, 3389, 5432, 5900, 6379, 8080, 8443, 9200)
_BLOCK_UDP = (53, 123, 161, 1900, 5060, 11211)
_ALLOW = (("TCP", 22), ("TCP", 80), ("TCP", 443), ("TCP", 443), ("UDP", 51820))


def _ufw_line(rng: random.Random, action: str, src: str, proto: str, dpt: int) -> str:
    """A ufw log line (the part after the kernel clock)."""
    v6, udp_len = ":" in src, rng.randint(8, 120)
    size = (udp_len + 20 if proto == "UDP" else rng.choice((40, 44, 60))) + (20 if v6 else 0)
    if v6:
        ip = f"MAC={_MACS}:86:dd SRC={src} DST={_SERVER6} LEN={size} TC=0"
        ip += f" HOPLIMIT={rng.randint(40, 64)} FLOWLBL={rng.randrange(1 << 20)}"
    else:
        ip = f"MAC={_MACS}:08:00 SRC={src} DST={_SERVER4} LEN={size} TOS=0x00 PREC=0x00"
        ip += f" TTL={rng.randint(40, 250)} ID={rng.randrange(65536)}"
        ip += " DF" if rng.random() < 0.4 else ""
    tail = f"PROTO={proto} SPT={_port(rng)} DPT={dpt}"
    if proto == "TCP":
        tail += f" WINDOW={rng.choice((1024, 29200, 64240, 65535))} RES=0x00 SYN URGP=0"
    else:
        tail += f" LEN={udp_len}"
    return f"[UFW {action}] IN=eth0 OUT= {ip} {tail}"


def _ufw_packet(rng: random.Random) -> Event:
    src = _ip6(rng) if rng.random() < 0.15 else _ip4(rng)
    if rng.random() < 0.2:
        return [(0, _ufw_line(rng, "ALLOW", src, *rng.choice(_ALLOW)))]
    if rng.random() < 0.3:
        return [(0, _ufw_line(rng, "BLOCK", src, "UDP", rng.choice(_BLOCK_UDP)))]
    return [(0, _ufw_line(rng, "BLOCK", src, "TCP", rng.choice(_BLOCK_TCP)))]


def _ufw_scan(rng: random.Random) -> Event:
    src, ports = _ip4(rng), rng.sample(_BLOCK_TCP[2:], rng.randint(5, 12))
    return [(i * 0.3, _ufw_line(rng, "BLOCK", src, "TCP", p)) for i, p in enumerate(ports)]


# --- kern -------------------------------------------------------------------------------------

_USB_DEVICES = (  # idVendor:idProduct, Manufacturer, Product, what the driver says
    ("0781:5583", "SanDisk", "Ultra Fit", "usb-storage {dev}:1.0: USB Mass Storage device found"),
    ("046d:c52b", "Logitech", "USB Receiver", "hid-generic 0003:046D:C52B.{n:04X}: input,hidraw0"),
    ("0bda:8153", "Realtek", "USB 10/100/1000 LAN", "r8152 {dev}:1.0 eth2: v1.12.13"),
)
_KERN_MISC = (
    "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
    "hrtimer: interrupt took 11052 ns",
    "nvme nvme0: I/O 512 QID 3 timeout, completion polled",
    "EXT4-fs (dm-0): warning: maximal mount count reached, running e2fsck is recommended",
    "EXT4-fs (sdb1): recovery complete",
)


def _usb(rng: random.Random) -> Event:
    ids, maker, name, driver = rng.choice(_USB_DEVICES)
    dev, n, (vendor, product) = f"usb 1-{rng.randint(1, 4)}", rng.randint(2, 30), ids.split(":")
    return [
        (0, f"{dev}: new high-speed USB device number {n} using xhci_hcd"),
        (0.1, f"{dev}: New USB device found, idVendor={vendor}, idProduct={product}"),
        (0.1, f"{dev}: New USB device strings: Mfr=1, Product=2, SerialNumber=3"),
        (0.1, f"{dev}: Product: {name}"),
        (0.1, f"{dev}: Manufacturer: {maker}"),
        (0.2, driver.format(dev=dev[4:], n=rng.randint(5, 40))),
        (rng.uniform(20, 600), f"{dev}: USB disconnect, device number {n}"),
    ]


def _link(rng: random.Random) -> Event:
    up, nic = rng.uniform(2, 30), "e1000e 0000:00:1f.6 eth1: NIC Link is"
    return [
        (0, f"{nic} Down"),
        (0.01, f"{_NETWORKD}: eth1: Lost carrier", "syslog"),
        (up, f"{nic} Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx"),
        (up + 0.01, "IPv6: ADDRCONF(NETDEV_CHANGE): eth1: link becomes ready"),
        (up + 0.02, f"{_NETWORKD}: eth1: Gained carrier", "syslog"),
    ]


def _ext4(rng: random.Random) -> Event:
    uuid = "-".join(f"{rng.getrandbits(4 * n):0{n}x}" for n in (8, 4, 4, 4, 12))
    return [
        (0, f"EXT4-fs (sdb1): mounted filesystem {uuid} r/w with ordered data mode."),
        (rng.uniform(30, 900), f"EXT4-fs (sdb1): unmounting filesystem {uuid}."),
    ]


def _kern_misc(rng: random.Random) -> Event:
    return [(0, rng.choice(_KERN_MISC))]


_OOM_VICTIMS = (("java", "tomcat10", 997), ("python3", "celery", 998), ("node", "webapp", 1003))


def _oom(rng: random.Random) -> Event:
    """The OOM killer's report in kern.log, and systemd restarting the victim in syslog."""
    (proc, unit, uid), pid, vm = rng.choice(_OOM_VICTIMS), _pid(rng), rng.randint(3 << 20, 9 << 20)
    svc, rss = f"systemd[1]: {unit}.service", int(vm * rng.uniform(0.5, 0.8))
    sizes = f"total-vm:{vm}kB, anon-rss:{rss}kB, file-rss:0kB, shmem-rss:0kB, UID:{uid}"
    gfp = "gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0"
    memcg = f"task_memcg=/system.slice/{unit}.service,task={proc},pid={pid},uid={uid}"
    return [
        (0, f"{proc} invoked oom-killer: {gfp}"),
        (0, f"CPU: {rng.randrange(4)} PID: {pid} Comm: {proc} Not tainted 6.8.0-49-generic"),
        (0, f"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,global_oom,{memcg}"),
        (0, f"Out of memory: Killed process {pid} ({proc}) {sizes} pgtables:{vm >> 9}kB"),
        (0.2, f"{svc}: A process of this unit has been killed by the OOM killer.", "syslog"),
        (0.25, f"{svc}: Main process exited, code=killed, status=9/KILL", "syslog"),
        (0.25, f"{svc}: Failed with result 'oom-kill'.", "syslog"),
        (5.3, f"{svc}: Scheduled restart job, restart counter is at 1.", "syslog"),
        (5.4, f"systemd[1]: Started {unit}.service.", "syslog"),
    ]


# --- syslog -----------------------------------------------------------------------------------

_CRON_JOBS = (
    ("root", "   cd / && run-parts --report /etc/cron.hourly"),
    ("root", "command -v debian-sa1 > /dev/null && debian-sa1 1 1"),
    ("root", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"),
    ("deploy", "/home/deploy/bin/sync-assets >/dev/null 2>&1"),
    ("alice", "/usr/bin/php /srv/app/artisan schedule:run"),
)
_UNITS = (
    ("apt-daily-upgrade.service", "Daily apt upgrade and clean activities"),
    ("logrotate.service", "Rotate log files"),
    ("man-db.service", "Daily man-db regeneration"),
    ("systemd-tmpfiles-clean.service", "Cleanup of Temporary Directories"),
    ("certbot.service", "Certbot"),
    ("sysstat-collect.service", "system activity accounting tool"),
)
_FAILING = (
    ("nginx.service", "A high performance web server and a reverse proxy server"),
    ("php8.3-fpm.service", "The PHP 8.3 FastCGI Process Manager"),
    ("backup.service", "Nightly backup to object storage"),
)
_DAEMON_LINES = (
    (
        "systemd-timesyncd[540]",
        "Initial synchronization to time server 192.0.2.123:123 (ntp.example).",
    ),
    ("dbus-daemon[598]", "[system] Successfully activated service 'org.freedesktop.PackageKit'"),
    ("snapd[701]", 'storehelpers.go:769: cannot refresh: snap has no updates available: "core22"'),
    (
        "systemd-resolved[537]",
        "Using degraded feature set UDP instead of UDP+EDNS0 for 192.0.2.53.",
    ),
    ("postfix/qmgr[1432]", "4F1A52C3D1: removed"),
)


def _cron(rng: random.Random) -> Event:
    """A cron job: its CMD line in syslog and its PAM session in auth.log."""
    (user, cmd), cron = rng.choice(_CRON_JOBS), f"CRON[{_pid(rng)}]"
    pam = f"{cron}: pam_unix(cron:session): session"
    return [
        (0, f"{cron}: ({user}) CMD ({cmd})"),
        (0, f"{pam} opened for user {user}(uid={_USERS[user]}) by (uid=0)", "auth"),
        (rng.uniform(0.05, 3), f"{pam} closed for user {user}", "auth"),
    ]


def _unit_run(rng: random.Random) -> Event:
    (unit, desc), took = rng.choice(_UNITS), rng.uniform(0.05, 20)
    if rng.random() < 0.3:
        return [(0, f"systemd[1]: Started {desc}.")]
    return [
        (0, f"systemd[1]: Starting {desc}..."),
        (took, f"systemd[1]: {unit}: Deactivated successfully."),
        (took, f"systemd[1]: Finished {desc}."),
    ]


def _unit_fail(rng: random.Random) -> Event:
    (unit, desc), retry = rng.choice(_FAILING), rng.uniform(2, 10)
    svc = f"systemd[1]: {unit}"
    return [
        (0, f"{svc}: Main process exited, code=exited, status=1/FAILURE"),
        (0, f"{svc}: Failed with result 'exit-code'."),
        (0, f"systemd[1]: Failed to start {unit} - {desc}."),
        (retry, f"{svc}: Scheduled restart job, restart counter is at 1."),
        (retry, f"systemd[1]: Starting {unit} - {desc}..."),
        (retry + 0.3, f"systemd[1]: Started {unit} - {desc}."),
    ]


def _daemon(rng: random.Random) -> Event:
    program, message = rng.choice(_DAEMON_LINES)
    return [(0, f"{program}: {message}")]


def _smtp(rng: random.Random) -> Event:
    smtpd, peer = f"postfix/smtpd[{_pid(rng)}]", f"unknown[{_ip4(rng)}]"
    return [
        (0, f"{smtpd}: connect from {peer}"),
        (1.2, f"{smtpd}: lost connection after AUTH from {peer}"),
        (1.2, f"{smtpd}: disconnect from {peer} ehlo=1 auth=0/1 commands=1/2"),
    ]


# --- nginx ------------------------------------------------------------------------------------

_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1"
_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_WEBKIT} Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) {_WEBKIT} Mobile/15E148 Safari/604.1",
)
_CLIENTS = (
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
_API = (  # (weight, method, path, statuses to pick from)
    (30, "GET", "/api/items?page={n}", (200,) * 9 + (304,)),
    (15, "GET", "/api/items/{n}", (200,) * 7 + (404,)),
    (8, "POST", "/api/login", (200, 200, 200, 401)),
    (5, "POST", "/api/orders", (201,) * 5 + (422,)),
    (10, "GET", "/healthz", (200,)),
    (3, "GET", "/robots.txt", (200,)),
    (2, "GET", "/favicon.ico", (200, 404)),
    (1, "GET", "/admin", (301, 403)),
)
_ASSETS = ("/static/app.3f9a1c.css", "/static/app.3f9a1c.js", "/img/logo.svg")
_PROBES = ("/wp-login.php", "/.env", "/.git/config", "/phpmyadmin/", "/cgi-bin/luci", "/boaform")
_BODY_BYTES = {301: 169, 304: 0, 403: 153, 404: 153, 500: 177, 502: 157, 503: 197, 504: 167}


def _request(rng: random.Random, ip: str, req: str, status: int, agent: str, ref: str = "-") -> str:
    """An access-log body: everything but the timestamp, which format_line() puts in."""
    if status < 300 and rng.random() < 0.012:  # the odd upstream failure
        status = rng.choice((500, 502, 502, 503, 504))
    size = _BODY_BYTES.get(status, rng.randint(180, 24000))
    return f'{ip} "{req} HTTP/1.1" {status} {size} "{ref}" "{agent}"'


def _client(rng: random.Random) -> str:
    return _ip6(rng) if rng.random() < 0.1 else _ip4(rng)


def _nginx_hit(rng: random.Random) -> Event:
    _, method, path, statuses = rng.choices(_API, [api[0] for api in _API])[0]
    req, agent = f"{method} {path.format(n=rng.randint(1, 40))}", rng.choice(_CLIENTS + _BROWSERS)
    return [(0, _request(rng, _client(rng), req, rng.choice(statuses), agent))]


def _nginx_visit(rng: random.Random) -> Event:
    """A browser loading a page: the HTML, its assets (200, or 304 if cached), an API call."""
    ip, agent, page = _client(rng), rng.choice(_BROWSERS), rng.choice(("/", "/items", "/about"))
    ref, status = f"https://example.com{page}", rng.choice((200, 304))
    event: Event = [(0, _request(rng, ip, f"GET {page}", 200, agent))]
    event += [
        (0.05 * i, _request(rng, ip, f"GET {a}", status, agent, ref))
        for i, a in enumerate(_ASSETS, 1)
    ]
    api = f"GET /api/items?page={rng.randint(1, 5)}"
    return [*event, (rng.uniform(0.3, 1.5), _request(rng, ip, api, 200, agent, ref))]


def _nginx_scan(rng: random.Random) -> Event:
    ip, paths = _ip4(rng), rng.sample(_PROBES, rng.randint(2, 4))
    agent = "Mozilla/5.0 zgrab/0.x"
    return [(i * 0.2, _request(rng, ip, f"GET {p}", 404, agent)) for i, p in enumerate(paths)]


# --- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    file: str
    per_second: float  # events per simulated second at rate 1 (lines: about 1-8 per event)
    events: tuple[tuple[int, Callable[[random.Random], Event]], ...]  # (weight, maker)

    def pick(self, rng: random.Random) -> Callable[[random.Random], Event]:
        """One of the event makers, by weight."""
        return rng.choices([maker for _, maker in self.events], [w for w, _ in self.events])[0]


_SOURCES = {
    "auth": _Source("auth.log", 0.08, ((4, _ssh_login), (3, _ssh_failure), (3, _sudo))),
    "ufw": _Source("ufw.log", 0.6, ((20, _ufw_packet), (1, _ufw_scan))),
    "kern": _Source("kern.log", 0.04, ((2, _usb), (2, _link), (2, _ext4), (3, _kern_misc))),
    "syslog": _Source(
        "syslog", 0.18, ((4, _cron), (3, _unit_run), (1, _unit_fail), (4, _daemon), (2, _smtp))
    ),
    "nginx": _Source(
        "nginx-access.log", 0.5, ((14, _nginx_hit), (6, _nginx_visit), (1, _nginx_scan))
    ),
}
SOURCE_FILES: dict[str, str] = {name: source.file for name, source in _SOURCES.items()}

# Scheduled jobs: (min, max) simulated seconds between runs at rate 1; the first run comes at
# 40% of a drawn gap, so a demo shows a brute force within a few minutes.
_JOBS = {"mood": (15, 75), "bruteforce": (150, 420), "oom": (400, 1100), "rotate": (120, 360)}
_SCHEDULED = {"bruteforce": ("auth", _bruteforce), "oom": ("kern", _oom)}
_TRUNCATE_AT = (240.0, 600.0)  # once per run, at rate 1
_MOODS, _MOOD_WEIGHTS = (0.15, 0.5, 1.0, 2.0, 3.0), (2, 3, 4, 2, 1)  # quiet spells .. busy ones
_HISTORY = 180.0  # simulated seconds of backlog written by create_files()
_MAX_TICK = 2.0  # run() never replays more than this at once (e.g. after a suspended laptop)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def format_line(source: str, body: str, when: datetime, uptime: float, *, host: str = HOST) -> str:
    """Render an event body as a full `source` log line of `host` stamped `when` (kernel clock
    `uptime`)."""
    month = _MONTHS[when.month - 1]
    if source == "nginx":
        ip, _, rest = body.partition(" ")
        zone = when.strftime("%z") or "+0000"
        stamp = f"{when.day:02d}/{month}/{when.year}:{when:%H:%M:%S} {zone}"
        return f"{ip} - - [{stamp}] {rest}"
    prefix = f"{month} {when.day:2d} {when:%H:%M:%S} {host} "
    if source in ("kern", "ufw"):
        return f"{prefix}kernel: [{uptime:12.6f}] {body}"
    return prefix + body


def make_line(
    source: str,
    rng: random.Random,
    when: datetime,
    *,
    uptime: float | None = None,
    host: str = HOST,
) -> str:
    """A deterministic sample line of `source` (the first line of a random event), no files."""
    event = _SOURCES[source].pick(rng)(rng)
    if uptime is None:
        uptime = rng.uniform(3600, 3_000_000)
    return format_line(source, event[0][1], when, uptime, host=host)


class DemoLogs:
    """Writes the five demo sources into real files under `directory`, in simulated time.

    `maintenance` records ``(simulated time, "rotate" | "truncate", source)`` as they happen.
    """

    def __init__(
        self,
        directory: Path,
        *,
        seed: int | None = None,
        rate: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
        host: str = HOST,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self._dir, self._rate, self._clock = Path(directory), rate, clock
        #: The box the lines say they come from.
        self.host = host
        self._rng = random.Random(seed)
        self._paths = {name: self._dir / file for name, file in SOURCE_FILES.items()}
        self._boot = self._rng.uniform(2 * 3600, 30 * 86400)  # kernel uptime at simulated t=0
        self._t = -_HISTORY
        self._mood = 1.0
        self._next: dict[str, float] = {}  # source -> simulated time of its next event
        self._heap: list[tuple[float, int, str, str, str]] = []  # (t, seq, kind, name, body)
        self._seq = itertools.count()
        self._created = False
        self.maintenance: list[tuple[float, str, str]] = []

    @property
    def paths(self) -> dict[str, Path]:
        """Source name -> path of its (current) log file."""
        return dict(self._paths)

    def create_files(self) -> None:
        """Create the five files (emptying any of a previous run) with a few minutes of history,
        and start the schedule. Only the first call does anything; advance() and run() make it
        if nobody has (their counts exclude the history).
        """
        if self._created:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        for path in self._paths.values():
            path.write_text("", encoding="utf-8")
        self._created = True
        self._redraw(self._t)
        for job in _JOBS:
            self._push(0.4 * self._gap(job), "job", job)
        self._push(self._rng.uniform(*_TRUNCATE_AT) / self._rate, "job", "truncate")
        now = self._clock()
        self._replay(0.0, now)
        for name, path in self._paths.items():  # at a low rate a quiet source gets one line
            if path.stat().st_size == 0:
                when = now - timedelta(seconds=60)
                line = make_line(name, self._rng, when, uptime=self._boot, host=self.host)
                self._write(name, line)

    def advance(self, seconds: float) -> int:
        """Write what is due in `seconds` more of simulated time; returns how many lines."""
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds!r} s)")
        if not self._created:
            self.create_files()
        return self._replay(self._t + seconds, self._clock())

    async def run(self, stop: asyncio.Event, *, tick: float = 0.1) -> None:
        """Advance by the real time elapsed, every `tick` seconds, until `stop` is set."""
        loop = asyncio.get_running_loop()
        if not self._created:
            self.create_files()
        last = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
            now = loop.time()
            if not stop.is_set():
                self.advance(min(now - last, _MAX_TICK))
            last = now

    # --- internals ----------------------------------------------------------------------------

    def _push(self, t: float, kind: str, name: str, body: str = "") -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, name, body))

    def _redraw(self, t: float, *names: str) -> None:
        """Draw the next event of `names` (default: all) at the current mood; redrawing is exact
        as the process is memoryless."""
        for name in names or _SOURCES:
            rate = _SOURCES[name].per_second * self._rate * self._mood
            self._next[name] = t + self._rng.expovariate(rate)

    def _gap(self, job: str) -> float:
        """Simulated seconds until `job` runs again (activity changes do not follow `rate`)."""
        low, high = _JOBS[job]
        return self._rng.uniform(low, high) / (1 if job == "mood" else self._rate)

    def _replay(self, end: float, now: datetime) -> int:
        """Process everything due up to simulated time `end`, which the clock says is `now`."""
        written = 0
        while True:
            name, t = min(self._next.items(), key=lambda item: item[1])
            if self._heap and self._heap[0][0] <= t:
                t = self._heap[0][0]
                if t > end:
                    break
                _, _, kind, name, body = heapq.heappop(self._heap)
                if kind == "emit":
                    stamp = now - timedelta(seconds=end - t)
                    line = format_line(name, body, stamp, self._boot + t, host=self.host)
                    self._write(name, line)
                    written += 1
                else:
                    self._job(name, t)
            elif t > end:
                break
            else:
                self._emit(name, _SOURCES[name].pick(self._rng)(self._rng), t)
                self._redraw(t, name)
        self._t = end
        return written

    def _emit(self, source: str, event: Event, t: float) -> None:
        for delay, body, *elsewhere in event:
            self._push(t + delay, "emit", elsewhere[0] if elsewhere else source, body)

    def _job(self, job: str, t: float) -> None:
        rng = self._rng
        if job == "truncate":  # like logrotate's copytruncate; once per run
            source = rng.choice(list(self._paths))
            with open(self._paths[source], "r+", encoding="utf-8") as f:
                f.truncate(0)
            self.maintenance.append((t, "truncate", source))
            return
        if job == "mood":
            self._mood = rng.choices(_MOODS, _MOOD_WEIGHTS)[0]
            self._redraw(t)
        elif job in _SCHEDULED:
            source, maker = _SCHEDULED[job]
            self._emit(source, maker(rng), t)
        elif job == "rotate":  # like logrotate's `create`: rename, then a new empty file
            source = rng.choice(list(self._paths))
            path = self._paths[source]
            os.replace(path, path.with_name(path.name + ".1"))
            path.touch()
            self.maintenance.append((t, "rotate", source))
            if source != "nginx":  # logrotate's postrotate tells rsyslog to reopen its files
                self._push(t + 0.4, "emit", "syslog", _RSYSLOG_HUP)
        self._push(t + self._gap(job), "job", job)

    def _write(self, source: str, line: str) -> None:
        """Append one whole line with a single write(), reopening so a rotation is followed."""
        with open(self._paths[source], "a", encoding="utf-8") as f:
            f.write(line + "\n")
