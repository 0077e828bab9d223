"""What the router reads of a mail: the resident's new words, without the quoted history of
earlier mails and without signatures. The full text is kept elsewhere (see `parse.py`); this
only decides what to leave out of the routed text.

Recognised: attribution lines ("Op ... schreef ...:", "On ... wrote:"), "-----Oorspronkelijk
bericht-----", Outlook's header block ("Van:/Verzonden:/Aan:/Onderwerp:", also in English and
with "Datum:"), "> " lines, the standard "-- " signature delimiter, closing blocks ("Met
vriendelijke groet" and friends, followed by a short block) and mobile footers ("Verzonden
vanaf mijn iPhone"). A forwarded mail (subject "Fwd:", "FW:", "Doorst:") keeps its forwarded
part, which is the content.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(op\s.{0,300}\s(schreef|heeft\s.{0,80}geschreven)|on\s.{0,300}\swrote|"
    r"am\s.{0,300}\sschrieb|le\s.{0,300}\sa\s+écrit)\s*.{0,100}:\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(oorspronkelijk\s+bericht|original\s+message|origineel\s+bericht|"
    r"ursprüngliche\s+nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(van|from)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(verzonden|sent|datum|date|aan|to|onderwerp|subject|cc)\s*:\*?\s", re.IGNORECASE
)
_SEPARATOR = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE_DELIMITER = re.compile(r"^-- ?$")
_CLOSING = re.compile(
    r"^\s*(met\s+)?(vriendelijke|hartelijke|beste|warme)\s+groet(en)?\b|^\s*m\.?\s*v\.?\s*g\.?\s*,?$|"
    r"^\s*(groet(en|jes)?|hoogachtend|kind\s+regards|best\s+regards|regards|best|"
    r"with\s+kind\s+regards|yours\s+sincerely|sincerely)\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_MOBILE = re.compile(
    r"^\s*((verzonden|verstuurd|sent)\s+(vanaf|van|met|from|via|with)\s+(mijn|my|een|an?)\s.{1,40}|"
    r"(get|download|haal)\s+outlook\s+(for|voor)\s+(ios|android).{0,20}|"
    r"sent\s+from\s+outlook.{0,30})\s*$",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|fw|doorst|tr|wg)\s*:", re.IGNORECASE)
# A closing block longer than this is probably not a signature but more text.
_MAX_CLOSING_LINES = 12


def strip_for_router(text: str, subject: str = "") -> str:
    """The new part of a mail. Falls back to the text without signatures when stripping the
    quoted history would leave nothing (a bare forward or a reply above nothing)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    forwarded = bool(_FORWARD_SUBJECT.match(subject))
    cut = None if forwarded else _history_start(lines)
    new = lines[:cut] if cut is not None else lines
    new = [line for line in new if not line.lstrip().startswith(">")]
    result = _without_signature(new)
    if not result.strip():
        result = _without_signature([ln for ln in lines if not ln.lstrip().startswith(">")])
    if not result.strip():
        result = "\n".join(lines)
    return _tidy(result)


def _history_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if _ORIGINAL.match(line):
            return index
        if _ATTRIBUTION.match(line) and _attributes(line, lines[index + 1 :]):
            return index
        # Gmail wraps long attribution lines: "Op ma 3 nov. 2026 om 10:12 schreef Jan <\n..>:"
        if index + 1 < len(lines) and re.match(r"^\s*(op|on)\s", line, re.IGNORECASE):
            joined = f"{line} {lines[index + 1]}"
            if _ATTRIBUTION.match(joined) and _attributes(joined, lines[index + 2 :]):
                return index
        if _HEADER_FROM.match(line):
            following = lines[index + 1 : index + 5]
            if sum(1 for f in following if _HEADER_NEXT.match(f)) >= 2:
                start = index
                if index > 0 and _SEPARATOR.match(lines[index - 1]):
                    start = index - 1
                return start
    return None


def _attributes(line: str, following: list[str]) -> bool:
    """A mail client's attribution names a time or an address, or quoted lines follow it; a
    resident's own "Op 3 november schreef ik u al:" does neither."""
    if _TIME.search(line) or "@" in line:
        return True
    nonblank = next((f for f in following if f.strip()), "")
    return nonblank.lstrip().startswith(">")


def _without_signature(lines: list[str]) -> str:
    kept: list[str] = []
    for line in lines:
        if _SIGNATURE_DELIMITER.match(line):
            break
        if _MOBILE.match(line):
            continue
        kept.append(line)
    # A closing greeting near the end starts the signature block.
    for index in range(len(kept) - 1, -1, -1):
        if len(kept) - index > _MAX_CLOSING_LINES + 1:
            break
        if _CLOSING.match(kept[index]):
            kept = kept[:index]
            break
    return "\n".join(kept)


def _tidy(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()
