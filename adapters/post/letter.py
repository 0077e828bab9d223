"""A reply to a letter as a printable A4 letter (PDF): letterhead, the resident's address in
the window of a standard envelope, date, our reference, subject, the text and the footer.

fpdf2 and pypdf are imported on first use (in a worker thread): together they take about a
second to import, which every `kcc serve` start would otherwise pay.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from adapters.post.config import LetterConfig

MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni",
    "juli", "augustus", "september", "oktober", "november", "december",
)  # fmt: skip
# The address window of a Dutch window envelope (EA5/6, C5 with window left): about 20 mm from
# the left edge and 50 mm from the top, 90 x 45 mm.
WINDOW_X, WINDOW_Y, WINDOW_W = 22.0, 47.0, 88.0


@dataclass(frozen=True)
class LetterContent:
    reference: str
    date: date
    subject: str
    text: str
    name: str | None
    address_lines: tuple[str, ...]


def dutch_date(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


@functools.cache
def _letter_class() -> type[Any]:
    from fpdf import FPDF

    class _Letter(FPDF):
        def __init__(self, config: LetterConfig) -> None:
            super().__init__(orientation="P", unit="mm", format="A4")
            self.config = config
            self.font_name = "Helvetica"
            if config.font and Path(config.font).exists():
                self.add_font("LetterSans", "", config.font)
                bold = config.font_bold if Path(config.font_bold or "-").exists() else config.font
                self.add_font("LetterSans", "B", bold)
                self.font_name = "LetterSans"
            self.set_margins(22, 20, 20)
            self.set_auto_page_break(True, margin=28)

        def text_for_font(self, text: str) -> str:
            if self.font_name != "Helvetica":
                return text
            # The core fonts know only Windows-1252; anything else would stop the rendering.
            return text.encode("cp1252", errors="replace").decode("cp1252")

        def footer(self) -> None:
            self.set_y(-20)
            self.set_font(self.font_name, "", 8)
            self.set_text_color(80, 80, 80)
            self.cell(
                0,
                4,
                self.text_for_font(self.config.footer),
                align="L",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            self.cell(0, 4, f"Pagina {self.page_no()} van {{nb}}", align="R")
            self.set_text_color(0, 0, 0)

    return _Letter


def render_letter(config: LetterConfig, content: LetterContent) -> bytes:
    """The letter as PDF bytes. Blocking (run it in a worker thread)."""
    pdf = _letter_class()(config)
    t = pdf.text_for_font
    pdf.set_title(t(f"Brief {content.reference}"))
    pdf.set_author(t(config.sender_block[0] if config.sender_block else ""))
    pdf.add_page()

    # Letterhead, top right.
    pdf.set_font(pdf.font_name, "B", 11)
    pdf.set_xy(125, 18)
    for number, line in enumerate(config.sender_block):
        if number == 1:
            pdf.set_font(pdf.font_name, "", 9)
        pdf.set_x(125)
        pdf.cell(65, 5, t(line), new_x="LMARGIN", new_y="NEXT")

    # Return address and the resident's address in the envelope window.
    pdf.set_xy(WINDOW_X, WINDOW_Y)
    pdf.set_font(pdf.font_name, "", 7)
    if config.return_address:
        pdf.cell(WINDOW_W, 4, t(config.return_address), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.font_name, "", 10)
    pdf.set_y(WINDOW_Y + 6)
    for line in ((content.name,) if content.name else ()) + content.address_lines:
        pdf.set_x(WINDOW_X)
        pdf.cell(WINDOW_W, 5, t(line), new_x="LMARGIN", new_y="NEXT")

    # Date, reference, subject.
    pdf.set_y(100)
    pdf.set_font(pdf.font_name, "", 10)
    rows = (
        ("Datum", f"{config.city}, {dutch_date(content.date)}" if config.city else ""),
        ("Ons kenmerk", content.reference),
        ("Onderwerp", content.subject),
    )
    for label, value in rows:
        pdf.set_font(pdf.font_name, "B", 10)
        pdf.cell(30, 5, t(label))
        pdf.set_font(pdf.font_name, "", 10)
        pdf.multi_cell(0, 5, t(value), new_x="LMARGIN", new_y="NEXT")

    # Salutation, the reply, closing.
    pdf.ln(10)
    pdf.set_font(pdf.font_name, "", 11)
    salutation = (
        config.salutation.format(name=content.name) if content.name else config.salutation_unknown
    )
    pdf.multi_cell(0, 6, t(salutation), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for paragraph in content.text.replace("\r\n", "\n").split("\n\n"):
        pdf.multi_cell(0, 6, t(paragraph.strip()), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    pdf.ln(4)
    for line in config.closing:
        pdf.multi_cell(0, 6, t(line) or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)
