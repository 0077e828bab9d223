"""Stand-in for the mail room's scanner: makes letter PDFs (with a text layer, or image-only as
a scanner without OCR makes them) and submits them through the real inbound path.

    letter_pdf(text, scanned=False) -> bytes
    await submit_letter(base_url, token, pdf, *, session=None, **metadata) -> dict

`metadata`: sender_name, postal_address, email, email_consent, phone, received_on
("2026-11-20"), scan_id, reference. The token is an `integration` (or `admin`) bearer token.
The answer is the API's JSON: {"reference", "outcome", "pages"}.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def text_pdf(pages: list[str]) -> bytes:
    """A PDF with a real text layer, one page per string."""
    pdf = FPDF(format="A4", unit="mm")
    if FONT.exists():
        pdf.add_font("Sans", "", str(FONT))
        font = "Sans"
    else:
        font = "Helvetica"
    for text in pages:
        pdf.add_page()
        pdf.set_font(font, "", 12)
        pdf.multi_cell(0, 7, text, align="L")
    return bytes(pdf.output())


def scanned_page(text: str, dpi: int = 200) -> Image.Image:
    """An A4 page image with the text drawn on it, as a scanner without OCR delivers it."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size = int(dpi * 0.17)  # about 12 pt
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont = (
        ImageFont.truetype(str(FONT), size) if FONT.exists() else ImageFont.load_default()
    )
    y = int(dpi * 1.0)
    for paragraph in text.split("\n"):
        for line in textwrap.wrap(paragraph, 70) or [""]:
            draw.text((int(dpi * 0.9), y), line, fill=0, font=font)
            y += int(size * 1.5)
    return image


def image_pdf(pages: list[str], dpi: int = 200) -> bytes:
    """An image-only PDF (no text layer): every page needs OCR."""
    images = [scanned_page(text, dpi) for text in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def mixed_pdf(text_page: str, scanned: str, dpi: int = 200) -> bytes:
    """Page 1 with a text layer, page 2 scanned only."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in (text_pdf([text_page]), image_pdf([scanned], dpi)):
        for page in PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def letter_pdf(text: str, scanned: bool = False) -> bytes:
    return image_pdf([text]) if scanned else text_pdf([text])


async def submit_letter(
    base_url: str,
    token: str,
    pdf: bytes,
    *,
    session: aiohttp.ClientSession | None = None,
    filename: str = "brief.pdf",
    **metadata: Any,
) -> dict[str, Any]:
    """POST the PDF and metadata to `{base_url}/channels/post`; raises on a 4xx/5xx answer."""
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename=filename, content_type="application/pdf")
    for name, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "ja" if value else "nee"
        form.add_field(name, str(value))
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.post(
            f"{base_url.rstrip('/')}/channels/post",
            data=form,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            body: dict[str, Any] = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"post intake refused ({response.status}): {body.get('error')}")
            return body
    finally:
        if own:
            await client.close()
