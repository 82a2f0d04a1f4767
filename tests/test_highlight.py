"""Tests for logtv.client.highlight on real corpus lines and hand-written ufw/kern/nginx lines."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Span, Text

from logtv.client.highlight import (
    CRITICAL,
    ERROR,
    HOST,
    IP,
    KERNEL_CLOCK,
    LEVEL_NOTICE,
    METHOD,
    PID,
    PORT,
    PROGRAM,
    REQUEST_PATH,
    STATUS_2XX,
    STATUS_3XX,
    STATUS_4XX,
    STATUS_5XX,
    SUCCESS,
    TIMESTAMP,
    UFW_KEY,
    UFW_TAG,
    UFW_VALUE,
    USER,
    WARNING,
    LogHighlighter,
    highlight,
)
from logtv.sanitize import ESCAPE_STYLE, to_text

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
# corpus file -> least share of lines whose header (program tag; Apache: timestamp) is found
MIN_HEADER_SHARE = {
    "openssh-auth.log": 1.0,
    "linux-syslog.log": 0.99,
    "apache-error.log": 1.0,
    "thunderbird-syslog.log": 0.85,  # loghub prefix; tags without [pid] are not searched for
    "mac-system.log": 0.95,  # a few program names contain spaces ("Microsoft Word")
}

# Real lines from /work/shared/corpus (loghub samples).
SSH_INVALID = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186"
SSH_FAILED_INVALID = (
    "Dec 10 10:55:43 LabSZ sshd[24951]: Failed password for invalid user test "
    "from 183.62.140.253 port 47409 ssh2"
)
SSH_ACCEPTED = (
    "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 "
    "port 49116 ssh2"
)
SSH_PAM = (
    "Dec 10 08:33:27 LabSZ sshd[24387]: pam_unix(sshd:auth): authentication failure; logname= "
    "uid=0 euid=0 tty=ssh ruser= rhost=103.207.39.212  user=uucp"
)
SSH_BREAKIN = (
    "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for "
    "ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!"
)
SYSLOG_SU = "Jun 15 04:06:18 combo su(pam_unix)[21416]: session opened for user cyrus by (uid=0)"
SYSLOG_KERNEL = "Jul 27 14:41:58 combo kernel: Failure registering capabilities with the kernel"
APACHE_ERROR = "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6"
APACHE_NOTICE = (
    "[Sun Dec 04 20:32:37 2005] [notice] jk2_init() Found child 1998 in scoreboard slot 9"
)
TBIRD_CROND = (
    "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: "
    "session opened for user root by (uid=0)"
)
TBIRD_DHCP = (
    "- 1131566501 2005.11.09 aadmin1 Nov 9 12:01:41 src@aadmin1 dhcpd: DHCPOFFER on "
    "10.100.4.251 to 00:11:43:e3:ba:c3 via eth1"
)
MAC_KERNEL = (
    "Jul  1 09:00:55 calvisitor-10-105-160-95 kernel[0]: IOThunderboltSwitch<0>(0x0)::"
    "listenerCallback - Thunderbolt HPD packet for route = 0x0 port = 11 unplug = 0"
)
MAC_SECD = (
    "Jul  1 10:13:39 calvisitor-10-105-160-95 secd[276]:  SOSAccountThisDeviceCanSyncWithCircle "
    'sync with device failure: Error Domain=com.apple.security.sos.error Code=1035 "Account '
    'identity not set" UserInfo={NSDescription=Account identity not set}'
)

# Hand-written, realistic lines for sources the corpus does not have.
UFW_BLOCK = (
    "Dec  4 06:00:01 fw kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT= "
    "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=198.51.100.2 LEN=60 "
    "TOS=0x00 PREC=0x00 TTL=52 ID=1234 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN "
    "URGP=0"
)
UFW_ALLOW_V6 = (
    "Dec  4 06:00:02 fw kernel: [12346.000001] [UFW ALLOW] IN=eth0 OUT= SRC=2001:db8::7 "
    "DST=2001:0db8:85a3:0000:0000:8a2e:0370:7334 LEN=80 PROTO=UDP SPT=5353 DPT=53"
)
KERN_OOM = "[   12.345678] Out of memory: Killed process 1234 (java) total-vm:123456kB"
KERN_SEGFAULT = (
    "Dec  4 06:00:03 web kernel: [ 5678.123456] python3[4321]: segfault at 0 ip "
    "00007f3a2b1c0d10 sp 00007ffd5e6f7a80 error 4 in libc.so.6[7f3a2b000000+195000]"
)
SUDO = (
    "Dec  4 06:00:04 web sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; "
    "COMMAND=/usr/bin/systemctl restart nginx"
)
RFC3339 = "2026-12-04T06:00:01.123+00:00 web sshd[812]: Accepted publickey for bob from ::1 port 22"
NGINX_ERROR = (
    "2026/12/04 06:00:05 [error] 1234#0: *5 connect() failed (111: Connection refused) while "
    'connecting to upstream, client: 203.0.113.7, server: _, request: "GET /api HTTP/1.1"'
)
DEPRECATED = "Dec  4 06:00:06 web app[99]: WARNING: option foo is deprecated; Warn once"


def nginx_access(status: int, client: str = "203.0.113.7") -> str:
    """A combined-format access line with the given status and client address."""
    return (
        f'{client} - - [04/Dec/2026:06:00:01 +0000] "GET /index.html?q=1 HTTP/1.1" {status} 612 '
        '"-" "curl/8.4.0"'
    )


def lit(line: str) -> Text:
    """The line as the client shows it: sanitized, then highlighted."""
    text = to_text(line)
    highlight(text)
    return text


def has_span(text: Text, needle: str, style: Style, *, after: str = "") -> bool:
    """Whether ``needle`` (first found after ``after``) carries exactly a span of ``style``."""
    start = text.plain.index(needle, text.plain.index(after) + len(after))
    return Span(start, start + len(needle), style) in text.spans


def styled(text: Text, style: Style) -> list[str]:
    """The substrings that carry a span of exactly ``style``, in order."""
    return [text.plain[s.start : s.end] for s in sorted(text.spans) if s.style == style]


def test_sshd_invalid_user_spans() -> None:
    """The sshd invalid-user line gets timestamp, host, program, pid, severity, user and IP."""
    text = lit(SSH_INVALID)
    assert has_span(text, "Dec 10 06:55:46", TIMESTAMP)
    assert has_span(text, "LabSZ", HOST)
    assert has_span(text, "sshd", PROGRAM)
    assert has_span(text, "24200", PID)
    assert has_span(text, "Invalid", ERROR)
    assert has_span(text, "webmaster", USER)
    assert has_span(text, "173.234.31.186", IP)


def test_failed_password_for_invalid_user() -> None:
    """The "for invalid user USER from IP port N" line marks both words red, user and port."""
    text = lit(SSH_FAILED_INVALID)
    assert styled(text, ERROR) == ["Failed", "invalid"]
    assert styled(text, USER) == ["test"]
    assert has_span(text, "183.62.140.253", IP)
    assert has_span(text, "47409", PORT)


def test_accepted_password() -> None:
    """An accepted login is green and the "for USER from" user is highlighted."""
    text = lit(SSH_ACCEPTED)
    assert styled(text, SUCCESS) == ["Accepted"]
    assert styled(text, USER) == ["fztu"]
    assert has_span(text, "49116", PORT)


def test_pam_user_equals_but_not_ruser() -> None:
    """pam's user=USER is a user, the empty ruser= is not, and rhost= gives an IP."""
    text = lit(SSH_PAM)
    assert styled(text, USER) == ["uucp"]
    assert styled(text, ERROR) == ["failure"]
    assert has_span(text, "103.207.39.212", IP)


def test_breakin_attempt_is_critical() -> None:
    """sshd's POSSIBLE BREAK-IN ATTEMPT is bold red and the bracketed IP is found."""
    text = lit(SSH_BREAKIN)
    assert styled(text, CRITICAL) == ["POSSIBLE BREAK-IN ATTEMPT"]
    assert styled(text, ERROR) == ["failed"]
    assert styled(text, IP) == ["173.234.31.186"]
    assert styled(text, USER) == []  # "for ns.example.com [ip]" has no "from"


def test_session_opened_and_program_with_parens() -> None:
    """su(pam_unix)[pid] is program+pid, "session opened" is green and "for user X" a user."""
    text = lit(SYSLOG_SU)
    assert has_span(text, "su(pam_unix)", PROGRAM)
    assert has_span(text, "21416", PID)
    assert styled(text, SUCCESS) == ["session opened"]
    assert styled(text, USER) == ["cyrus"]


def test_kernel_without_pid() -> None:
    """A "kernel:" tag without a pid is still the program, and Failure is red."""
    text = lit(SYSLOG_KERNEL)
    assert has_span(text, "kernel", PROGRAM)
    assert styled(text, PID) == []
    assert styled(text, ERROR) == ["Failure"]


def test_apache_error_log_levels() -> None:
    """Apache error-log lines get the bracketed timestamp and a coloured [error]/[notice]."""
    text = lit(APACHE_ERROR)
    assert has_span(text, "Sun Dec 04 04:47:44 2005", TIMESTAMP)
    assert styled(text, ERROR) == ["error", "error"]  # the [error] level and the word
    notice = lit(APACHE_NOTICE)
    assert has_span(notice, "notice", LEVEL_NOTICE)
    assert styled(notice, ERROR) == []


def test_prefixed_line_falls_back_to_program_tag() -> None:
    """A line with a non-syslog prefix still gets its program[pid]: tag highlighted."""
    text = lit(TBIRD_CROND)
    assert has_span(text, "crond(pam_unix)", PROGRAM)
    assert has_span(text, "2915", PID)
    assert styled(text, USER) == ["root"]


def test_mac_address_is_not_ipv6() -> None:
    """A MAC address is not taken for an IPv6 address; the IPv4 next to it is found."""
    text = lit(TBIRD_DHCP)
    assert styled(text, IP) == ["10.100.4.251"]


def test_cxx_scope_is_not_ipv6() -> None:
    """C++ "::" scopes and "(0x0)::name" are not IPv6; kernel[0] is program and pid."""
    text = lit(MAC_KERNEL)
    assert styled(text, IP) == []
    assert has_span(text, "kernel", PROGRAM)
    assert has_span(text, "0", PID, after="kernel[")
    eleven = text.plain.index("port = 11") + len("port = ")
    assert not any(s.start <= eleven < s.end for s in text.spans)  # "port = 11" is no "port N"


def test_severity_not_inside_identifiers() -> None:
    """Severity words count only as whole words, whatever their case."""
    text = lit(MAC_SECD)
    assert styled(text, ERROR) == ["failure", "Error"]  # not "...Error..." nor "sos.error"


@pytest.mark.parametrize(
    "address",
    [
        "::1",
        "2001:db8::1",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:0:0:1::",
    ],
)
def test_ipv6_addresses(address: str) -> None:
    """IPv6 addresses, compressed or full, are highlighted whole as IPs."""
    text = lit(f"Dec  4 06:00:01 web app[1]: peer {address} closed")
    assert styled(text, IP) == [address]


@pytest.mark.parametrize(
    "not_an_address",
    [
        "06:00:01",
        "12:01:01.123",
        "00:11:43:e3:ba:c3",
        "std::vector",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
    ],
)
def test_not_addresses(not_an_address: str) -> None:
    """Times, MACs, C++ scopes, versions and out-of-range octets are not IPs."""
    text = lit(f"Dec  4 06:00:01 web app[1]: value {not_an_address} seen")
    assert styled(text, IP) == []
    assert styled(text, TIMESTAMP) == ["Dec  4 06:00:01"]


def test_ufw_block_fields() -> None:
    """A UFW BLOCK line gets the tag, dim keys, coloured values, IPs and the kernel clock."""
    text = lit(UFW_BLOCK)
    assert has_span(text, "[12345.678901]", KERNEL_CLOCK)
    assert has_span(text, "[UFW BLOCK]", UFW_TAG)
    assert has_span(text, "BLOCK", CRITICAL)
    assert styled(text, UFW_KEY) == ["SRC=", "DST=", "PROTO=", "SPT=", "DPT="]
    assert styled(text, IP) == ["203.0.113.5", "198.51.100.2"]
    assert has_span(text, "TCP", UFW_VALUE)
    assert has_span(text, "51234", UFW_VALUE, after="SPT=")
    assert has_span(text, "22", UFW_VALUE, after="DPT=")


def test_ufw_allow_ipv6() -> None:
    """A UFW ALLOW line is green and its IPv6 SRC/DST values are IPs."""
    text = lit(UFW_ALLOW_V6)
    assert has_span(text, "ALLOW", SUCCESS)
    assert styled(text, IP) == ["2001:db8::7", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]


def test_kernel_oom_and_segfault() -> None:
    """dmesg's clock, "Out of memory" and "segfault" are highlighted, the strongest in bold."""
    oom = lit(KERN_OOM)
    assert has_span(oom, "[   12.345678]", KERNEL_CLOCK)
    assert styled(oom, CRITICAL) == ["Out of memory"]
    seg = lit(KERN_SEGFAULT)
    assert styled(seg, CRITICAL) == ["segfault"]
    assert styled(seg, ERROR) == ["error"]
    assert styled(seg, IP) == []  # hex addresses are not IPv6


def test_sudo_users() -> None:
    """sudo's invoking user and its USER=target are both users."""
    text = lit(SUDO)
    assert has_span(text, "sudo", PROGRAM)
    assert styled(text, USER) == ["alice", "root"]


def test_rfc3339_header() -> None:
    """An RFC 3339 timestamp at line start is a timestamp and is followed by host and program."""
    text = lit(RFC3339)
    assert has_span(text, "2026-12-04T06:00:01.123+00:00", TIMESTAMP)
    assert has_span(text, "web", HOST)
    assert has_span(text, "sshd", PROGRAM)
    assert has_span(text, "812", PID)
    assert has_span(text, "::1", IP)
    assert styled(text, USER) == ["bob"]


@pytest.mark.parametrize(
    ("status", "style"),
    [(200, STATUS_2XX), (304, STATUS_3XX), (404, STATUS_4XX), (502, STATUS_5XX)],
)
def test_nginx_access_status(status: int, style: Style) -> None:
    """Access-log status codes are coloured by class and the request is highlighted."""
    text = lit(nginx_access(status))
    assert has_span(text, str(status), style)
    assert has_span(text, "GET", METHOD)
    assert has_span(text, "/index.html?q=1", REQUEST_PATH)
    assert has_span(text, "[04/Dec/2026:06:00:01 +0000]", TIMESTAMP)
    assert styled(text, IP) == ["203.0.113.7"]
    assert styled(text, PORT) == []


def test_nginx_access_ipv6_client_and_junk_request() -> None:
    """A TLS-handshake junk request still gets its status coloured, with its escapes kept dim."""
    text = lit('2001:db8::1 - - [04/Dec/2026:06:00:01 +0000] "\x16\x03\x01" 400 150 "-" "-"')
    assert text.plain.startswith('2001:db8::1 - - [04/Dec/2026:06:00:01 +0000] "^V^C^A" 400')
    assert has_span(text, "2001:db8::1", IP)
    assert has_span(text, "400", STATUS_4XX)
    assert has_span(text, "^V^C^A", ESCAPE_STYLE)


def test_nginx_error_log() -> None:
    """nginx error-log lines get timestamp, pid, level and the failure words."""
    text = lit(NGINX_ERROR)
    assert has_span(text, "2026/12/04 06:00:05", TIMESTAMP)
    assert has_span(text, "1234", PID)
    assert styled(text, ERROR) == ["error", "failed", "refused"]
    assert has_span(text, "203.0.113.7", IP)


def test_warning_words() -> None:
    """warning/warn/deprecated are yellow, case-insensitively."""
    assert styled(lit(DEPRECATED), WARNING) == ["WARNING", "deprecated", "Warn"]


def test_block_allow_only_uppercase() -> None:
    """BLOCK/ALLOW count only in upper case, so prose "block"/"allow" stays plain."""
    text = lit("Dec  4 06:00:01 web app[1]: allow list updated, block size 4096; BLOCK ALLOW")
    assert styled(text, CRITICAL) == ["BLOCK"]
    assert styled(text, SUCCESS) == ["ALLOW"]


def test_escapes_pass_through_untouched() -> None:
    """Highlighting never changes the sanitized characters and keeps escapes dim."""
    line = "Dec 10 06:55:46 LabSZ sshd[1]: Invalid user \x1b[31mevil\x07 from 1.2.3.4"
    text = to_text(line)
    before = text.plain
    highlight(text)
    assert (
        text.plain
        == before
        == ("Dec 10 06:55:46 LabSZ sshd[1]: Invalid user ^[[31mevil^G from 1.2.3.4")
    )
    assert styled(text, USER) == ["^[[31mevil^G"]
    offset = text.plain.index("^[")
    assert text.get_style_at_offset(Console(), offset) == USER + ESCAPE_STYLE


def test_rendered_highlight_emits_only_sgr() -> None:
    """Rendering highlighted hostile lines emits no escape sequence except Rich's own SGR."""
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=300)
    for line in (UFW_BLOCK, SSH_INVALID + "\x1b]0;x\x07\x1b[2J", nginx_access(502) + "\x9b2J"):
        console.print(lit(line))
    output = console.file.getvalue()
    assert "\x1b[" in output
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", output)


def test_log_highlighter_is_a_rich_highlighter() -> None:
    """LogHighlighter works as a Rich Highlighter on str and Text alike."""
    highlighter = LogHighlighter()
    from_str = highlighter(SSH_INVALID)
    assert has_span(from_str, "173.234.31.186", IP)
    text = Text(SSH_INVALID)
    highlighter.highlight(text)
    assert text.spans == from_str.spans


def test_plain_text_without_tokens_gets_no_spans() -> None:
    """A line with nothing recognisable gets no spans at all."""
    assert lit("just some words here").spans == []
    assert lit("").spans == []


@pytest.mark.parametrize("name", sorted(MIN_HEADER_SHARE))
def test_whole_corpus(name: str) -> None:
    """Every corpus line highlights without error, unchanged, with sane in-bounds spans."""
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header_style = TIMESTAMP if name == "apache-error.log" else PROGRAM
    assert len(lines) >= 1000
    header = 0
    for line in lines:
        text = to_text(line)
        plain = text.plain
        highlight(text)
        assert text.plain == plain
        assert len(text.spans) <= 40, line
        for span in text.spans:
            assert 0 <= span.start < span.end <= len(plain), line
            assert isinstance(span.style, Style), line
        header += any(s.style == header_style for s in text.spans)
    assert header / len(lines) >= MIN_HEADER_SHARE[name]
