"""Property tests: whatever a client sends, `decode_client_frame` answers in one of two ways."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from logtv.protocol import (
    ProtocolError,
    Subscribe,
    Unsubscribe,
    decode_client_frame,
    encode,
    encode_batch,
    encode_line,
    encode_picked,
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

FIELDS = st.sampled_from(["type", "log_source", "backlog", "since", "batch", "extra"])
NEAR_VALID = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["subscribe", "unsubscribe", "Subscribe", ""]) | JSON_VALUES,
        "log_source": st.sampled_from(["all", "app", "a" * 65, "\ud800", "../x"]) | JSON_VALUES,
    },
    optional={
        "backlog": st.integers(-5, 200_000) | JSON_VALUES,
        "since": st.integers(-5, 10) | st.dictionaries(st.text(max_size=5), JSON_VALUES),
        "batch": JSON_VALUES,
    },
)


def decodes_or_refuses(frame: str | bytes) -> None:
    """The property: a Subscribe/Unsubscribe, or a ProtocolError whose reply can be encoded."""
    try:
        message = decode_client_frame(frame)
    except ProtocolError as exc:
        assert exc.code and exc.detail
        reply = encode({"type": "error", "error": exc.code, "detail": exc.detail})
        assert json.loads(reply)["error"] == exc.code
        return
    assert isinstance(message, Subscribe | Unsubscribe)


@settings(max_examples=500, deadline=None)
@given(st.text())
@example("[" * 20_000)
@example('{"type": "subscribe", "log_source": "app", "backlog": 1' + "0" * 5000 + "}")
@example('"\\ud800"')
@example('{"type": "\\udfff"}')
def test_any_text(text: str) -> None:
    """Arbitrary text (lone surrogates included) decodes to a message or a ProtocolError."""
    decodes_or_refuses(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_any_bytes(data: bytes) -> None:
    """A binary frame is always refused with binary_frame."""
    try:
        decode_client_frame(data)
    except ProtocolError as exc:
        assert exc.code == "binary_frame"
    else:  # pragma: no cover - the assertion explains
        raise AssertionError("a binary frame was accepted")


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_any_json_value(value: object) -> None:
    """Any JSON value, encoded as a client would, decodes to a message or a ProtocolError."""
    decodes_or_refuses(json.dumps(value))


@settings(max_examples=500, deadline=None)
@given(NEAR_VALID, st.dictionaries(FIELDS, JSON_VALUES, max_size=2))
def test_nearly_valid_messages(message: dict[str, object], noise: dict[str, object]) -> None:
    """Objects shaped like real requests, with wrong types and values, never escape the rule."""
    decodes_or_refuses(json.dumps({**message, **noise}))


#: Lines as the followers make them: any text without lone surrogates (bad bytes are U+FFFD).
LOG_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(LOG_TEXT, min_size=1, max_size=20),
    seq=st.integers(1, 2**53),
    name=st.sampled_from(["app", "sshd@web1", "a.b_c-d:e"]),
)
@example(lines=['"\\\x00\x1b[31m\u2028\U0001f600</script>'], seq=1, name="app")
def test_line_frames_give_back_the_lines(lines: list[str], seq: int, name: str) -> None:
    """Every line frame form parses as JSON and gives back the exact lines, seqs and names."""
    name_json = json.dumps(name)
    stamp = "2026-12-04T10:00:00.000000Z"
    single = json.loads(encode_line(name_json, lines[0], stamp, seq))
    assert single == {
        "type": "raw_log",
        "log_source": name,
        "raw_line": lines[0],
        "timestamp": stamp,
        "seq": seq,
    }
    batch = json.loads(encode_batch(name_json, lines, stamp, seq))
    assert (batch["log_source"], batch["seq"], batch["lines"]) == (name, seq, lines)
    seqs = [seq + 2 * i for i in range(len(lines))]
    picked = json.loads(encode_picked(name_json, lines, stamp, seqs))
    assert (picked["seq"], picked["seqs"], picked["lines"]) == (seq, seqs, lines)
