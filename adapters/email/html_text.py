"""HTML mail to plain text with the standard library's parser: never rendered, never trusted.

Scripts, styles, heads and comments are dropped; block elements become line breaks; list items
get a dash; quoted blocks (`<blockquote>`, Gmail's `gmail_quote`) come out as "> " lines, so
the quote stripper treats them like plain-text quotes. Links keep their address when it differs
from their text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object"})
_BLOCK = frozenset(
    {
        "p", "div", "br", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "pre", "hr", "section", "article", "header", "footer", "address", "dl", "dt", "dd",
        "blockquote", "center", "form", "fieldset",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"})
_QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "ms-outlook-mobile-reference")
_QUOTE_IDS = ("appendonsend", "mail-editor-reference-message-container")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.drop_depth = 0
        self.quote_depth = 0
        self.pre_depth = 0
        # Open elements that started a quote, so the matching end tag closes it.
        self.stack: list[tuple[str, bool]] = []
        self.link: str | None = None
        self.link_text: list[str] = []

    def _break(self) -> None:
        text = "".join(self.current)
        if self.pre_depth == 0:
            text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text).strip()
        prefix = "> " * self.quote_depth
        for line in text.split("\n"):
            self.lines.append(prefix + line if line or prefix else line)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _DROP:
            if tag not in _VOID:
                self.drop_depth += 1
            return
        if self.drop_depth:
            return
        attributes = {name.lower(): (value or "") for name, value in attrs}
        if tag in _BLOCK:
            self._break()
        quote = tag == "blockquote" or _is_quote_container(attributes)
        if tag not in _VOID:
            self.stack.append((tag, quote))
            if quote:
                self.quote_depth += 1
        if tag == "pre":
            self.pre_depth += 1
        elif tag == "li":
            self.current.append("- ")
        elif tag == "a":
            self.link = attributes.get("href") or None
            self.link_text = []
        elif tag == "img" and attributes.get("alt", "").strip():
            self.current.append(f"[{attributes['alt'].strip()}]")
        elif tag in ("td", "th"):
            self.current.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in _DROP:
            self.drop_depth = max(0, self.drop_depth - 1)
            return
        if self.drop_depth or tag in _VOID:
            return
        if tag == "a" and self.link is not None:
            text = "".join(self.link_text).strip()
            href = self.link
            if href.lower().startswith(("http://", "https://")) and href not in text:
                self.current.append(f" ({href})")
            self.link = None
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag in _BLOCK:
            self._break()
        # Close up to the matching open element (HTML in mail is often unbalanced).
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                for _, was_quote in self.stack[index:]:
                    if was_quote:
                        self._break()
                        self.quote_depth -= 1
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if self.drop_depth:
            return
        if self.pre_depth == 0:
            data = data.replace("\r", " ").replace("\n", " ")
        self.current.append(data)
        if self.link is not None:
            self.link_text.append(data)

    def handle_comment(self, data: str) -> None:
        """Comments (conditional Outlook blocks included) carry no text for a reader."""

    def text(self) -> str:
        self._break()
        joined = "\n".join(line.rstrip() for line in self.lines)
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _is_quote_container(attributes: dict[str, str]) -> bool:
    classes = attributes.get("class", "").lower().split()
    if any(name in classes for name in _QUOTE_CLASSES):
        return True
    if attributes.get("id", "").lower() in _QUOTE_IDS:
        return True
    return attributes.get("type", "").lower() == "cite"


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()
