"""COPY text format for staged import rows (pure, no DB)."""

import pytest

from labeling import copytext


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"plain text", b"plain text"),
        (b"a\tb", b"a\\tb"),
        (b"one\ntwo\r\n", b"one\\ntwo\\r\\n"),
        (b"C:\\new", b"C:\\\\new"),
        (b"\\N", b"\\\\N"),  # a literal backslash-N is text, not NULL
        (b"\\.", b"\\\\."),  # nor an end-of-data marker
        (b"", b""),
        ("\u00e9\u2713".encode(), "\u00e9\u2713".encode()),
    ],
)
def test_escape_and_unescape_are_inverse(raw, escaped):
    assert copytext.escape(raw) == escaped
    assert copytext.unescape(escaped) == raw
    assert b"\t" not in escaped
    assert b"\n" not in escaped


def test_null_is_none():
    assert copytext.unescape(copytext.NULL) is None


def test_an_escape_the_encoder_never_writes_is_refused():
    with pytest.raises(ValueError, match="Unexpected COPY escape"):
        copytext.unescape(b"a\\x41")
