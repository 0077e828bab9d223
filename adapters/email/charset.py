"""Text out of mail bytes whatever the declared charset says.

Mail in the wild declares charsets wrongly: UTF-8 labelled iso-8859-1, Windows-1252 labelled
us-ascii or utf-8, charsets Python does not know. The order here: bytes that are plain ASCII are
ASCII; bytes that are valid UTF-8 are UTF-8 (other text is almost never valid UTF-8 by accident);
then the declared charset, with iso-8859-1 and us-ascii read as Windows-1252 (as browsers do);
then Windows-1252 with replacement characters, so nothing raises.
"""

from __future__ import annotations

import codecs
from email import policy
from email.header import decode_header, make_header
from email.message import Message

_LATIN1_ALIASES = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii"}


def decode_bytes(data: bytes, declared: str | None) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    charset = (declared or "").strip().strip('"').lower()
    if charset in _LATIN1_ALIASES:
        charset = "windows-1252"
    if charset and charset not in ("utf-8", "utf8"):
        try:
            codecs.lookup(charset)
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return data.decode("windows-1252", errors="replace")


def header_text(msg: Message, name: str) -> str:
    """A header of `msg` as text, "" when absent: encoded words decoded, raw 8-bit bytes
    (which the parser keeps as surrogate escapes) re-read with `decode_bytes`; never raises."""
    raw = next((value for key, value in msg.raw_items() if key.lower() == name.lower()), None)
    if raw is None:
        return ""
    raw = str(raw)
    try:
        text = str(policy.default.header_factory(name, raw))
    except Exception:  # a malformed encoded word or address can make the header object fail
        try:
            text = str(make_header(decode_header(raw)))
        except Exception:
            text = raw
    if any("\udc80" <= char <= "\udcff" for char in text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return " ".join(text.split())
