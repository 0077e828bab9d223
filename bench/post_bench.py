"""How long a scanned letter takes to read, and a reply letter to make.

    .venv/bin/python bench/post_bench.py [--pages 4] [--dpi 300]

Per page: the text layer with pypdf (the baseline: what a letter costs without OCR), and OCR
(pdftoppm renders the page, Tesseract reads it with the Dutch data), one page at a time as the
service does. Then rendering a two-page reply letter. Prints the figures; keeps no files.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.post.config import PostConfig
from adapters.post.letter import LetterContent, page_count, render_letter
from adapters.post.reading import ocr_available, read_letter
from sandbox.post import image_pdf, text_pdf

PAGE = (
    "Geachte heer, mevrouw,\n\n"
    "Ik wil een nieuw paspoort aanvragen in verband met mijn verhuizing naar Groningen. "
    "Mijn oude paspoort is verlopen en ik ga binnenkort op reis. Wanneer kan ik een afspraak "
    "maken en welke papieren moet ik meenemen? Ik ben overdag moeilijk bereikbaar.\n\n"
    "Met vriendelijke groet,\nPetra Bakker\nHereweg 12\n9725 AA Groningen"
)


async def per_page(pdf: bytes, pages: int, config: PostConfig, dpi: int) -> float:
    intake = config.intake.__class__(**{**config.intake.__dict__, "ocr_dpi": dpi})
    started = time.perf_counter()
    letter = await read_letter(pdf, intake)
    elapsed = time.perf_counter() - started
    assert len(letter.pages) == pages
    return elapsed / pages


async def run(args: argparse.Namespace, config: PostConfig) -> None:
    pages = [PAGE] * args.pages

    text = [await per_page(text_pdf(pages), args.pages, config, args.dpi) for _ in range(3)]
    print(f"text layer (pypdf), per page:      {statistics.median(text) * 1000:8.1f} ms")
    if ocr_available():
        scanned = image_pdf(pages, dpi=200)
        ocr = [await per_page(scanned, args.pages, config, args.dpi) for _ in range(2)]
        print(f"OCR at {args.dpi} dpi (nld), per page:  {statistics.median(ocr) * 1000:8.1f} ms")
    else:
        print("OCR: tesseract/pdftoppm not installed")

    content = LetterContent(
        "KCC-2026-000123", date(2026, 11, 23), "Uw brief van 20 november 2026",
        "Dank voor uw brief. " * 300, "Petra Bakker", ("Hereweg 12", "9725 AA Groningen"),
    )  # fmt: skip
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        pdf = render_letter(config.letter, content)
        timings.append(time.perf_counter() - started)
    label = f"reply letter ({page_count(pdf)} pages), render:"
    print(f"{label:35}{statistics.median(timings) * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--dpi", type=int, default=300)
    args = parser.parse_args()
    config = PostConfig.load(Path(__file__).resolve().parent.parent / "config")
    asyncio.run(run(args, config))


if __name__ == "__main__":
    main()
