"""Reading a scanned letter: check that it is a PDF we can open, take each page's text layer,
and OCR the pages that have none (or hardly any) with Tesseract.

pypdf runs in a worker thread and OCR in subprocesses (pdftoppm renders a page, tesseract reads
it), so the event loop never waits on either. Which pages came from OCR is recorded, because OCR
text may contain errors an agent should know about.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from adapters.post.config import IntakeConfig

log = logging.getLogger(__name__)

_WORD_CHARS = re.compile(r"\w", re.UNICODE)


class PostInputError(ValueError):
    """The file cannot become a letter; `status` is the HTTP answer (413, 415, 422), the text is
    safe to show and to keep as a quarantine reason (no personal data)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PageText:
    page: int  # 1-based
    source: str  # text (the PDF's text layer) | ocr | empty (OCR found nothing) | not_read
    text: str
    detail: str = ""

    def summary(self) -> dict[str, object]:
        view: dict[str, object] = {
            "page": self.page,
            "source": self.source,
            "chars": len(self.text),
        }
        if self.detail:
            view["detail"] = self.detail
        return view


@dataclass(frozen=True)
class ReadLetter:
    pages: tuple[PageText, ...]

    @property
    def text(self) -> str:
        """The letter's text for the agent; pages are marked when OCR was involved."""
        marked = any(p.source != "text" for p in self.pages)
        parts = []
        for page in self.pages:
            if not marked:
                if page.text:
                    parts.append(page.text)
                continue
            label = {
                "text": "tekst uit de PDF",
                "ocr": "tekst via OCR, kan fouten bevatten",
                "empty": "geen tekst gevonden",
                "not_read": f"niet gelezen: {page.detail}",
            }[page.source]
            parts.append(f"[Pagina {page.page}: {label}]" + (f"\n{page.text}" if page.text else ""))
        return "\n\n".join(parts).strip()

    @property
    def has_text(self) -> bool:
        return any(p.text.strip() for p in self.pages)

    @property
    def ocr_pages(self) -> int:
        return sum(1 for p in self.pages if p.source in ("ocr", "empty"))


def check_pdf(data: bytes, config: IntakeConfig) -> list[str]:
    """Open the PDF and return each page's text layer; raises `PostInputError`. Blocking."""
    if len(data) > config.max_pdf_bytes:
        raise PostInputError(413, f"het bestand is groter dan {config.max_pdf_bytes} bytes")
    if b"%PDF-" not in data[:1024]:
        raise PostInputError(415, "het bestand is geen PDF")
    from pypdf import PdfReader  # on first use, in a worker thread: a slow import

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise PostInputError(
                422, "de PDF is versleuteld; scan de brief opnieuw zonder wachtwoord"
            )
        count = len(reader.pages)
    except PostInputError:
        raise
    except Exception:  # pypdf parses hostile input: whatever it trips over, the file is unreadable
        raise PostInputError(422, "de PDF is beschadigd en kan niet worden gelezen") from None
    if count == 0:
        raise PostInputError(422, "de PDF heeft geen pagina's")
    if count > config.max_pages:
        raise PostInputError(422, f"de PDF heeft meer dan {config.max_pages} pagina's")
    texts = []
    for page in reader.pages:
        try:
            texts.append(_clean(page.extract_text() or ""))
        except Exception:  # one broken content stream: that page goes to OCR
            texts.append("")
    return texts


async def read_letter(
    data: bytes, config: IntakeConfig, ocr_slots: asyncio.Semaphore | None = None
) -> ReadLetter:
    """`ocr_slots`: shared by the callers of one process, so pages are OCR'd one at a time
    (Tesseract may otherwise take both cores and the service stops answering)."""
    layers = await asyncio.to_thread(check_pdf, data, config)
    needs_ocr = [
        i for i, text in enumerate(layers) if len(_WORD_CHARS.findall(text)) < config.min_text_chars
    ]
    ocr: dict[int, PageText] = {}
    if needs_ocr:
        ocr = await _ocr_pages(data, needs_ocr, config, ocr_slots or asyncio.Semaphore(1))
    pages = [ocr.get(i) or PageText(i + 1, "text", text) for i, text in enumerate(layers)]
    return ReadLetter(tuple(pages))


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None and shutil.which("pdftoppm") is not None


async def _ocr_pages(
    data: bytes, indexes: list[int], config: IntakeConfig, slots: asyncio.Semaphore
) -> dict[int, PageText]:
    results: dict[int, PageText] = {}
    if not ocr_available():
        log.warning("OCR unavailable: install tesseract-ocr, tesseract-ocr-nld and poppler-utils")
        return {i: PageText(i + 1, "not_read", "", "OCR niet beschikbaar") for i in indexes}
    with tempfile.TemporaryDirectory(prefix="kcc-post-") as workdir:
        source = Path(workdir) / "letter.pdf"
        await asyncio.to_thread(source.write_bytes, data)
        for count, index in enumerate(indexes):
            if count >= config.ocr_max_pages:
                results[index] = PageText(
                    index + 1, "not_read", "", f"meer dan {config.ocr_max_pages} pagina's voor OCR"
                )
                continue
            results[index] = await _ocr_page(source, index + 1, config, slots)
    return results


async def _ocr_page(
    source: Path, page: int, config: IntakeConfig, slots: asyncio.Semaphore
) -> PageText:
    image = source.with_name(f"page-{page}")
    timeout = config.ocr_page_timeout_seconds
    async with slots:
        try:
            async with asyncio.timeout(timeout):
                await _run(
                    "pdftoppm",
                    "-f",
                    str(page),
                    "-l",
                    str(page),
                    "-r",
                    str(config.ocr_dpi),
                    "-gray",
                    "-png",
                    "-singlefile",
                    str(source),
                    str(image),
                )
                text = await _run(
                    "tesseract",
                    f"{image}.png",
                    "stdout",
                    "-l",
                    config.ocr_language,
                    "--psm",
                    "3",
                )
        except TimeoutError:
            log.warning("OCR of page %d timed out after %.0f s", page, timeout)
            return PageText(page, "not_read", "", f"OCR duurde langer dan {timeout:.0f} s")
        except OcrFailed as error:
            log.warning("OCR of page %d failed: %s", page, error)
            return PageText(page, "not_read", "", "OCR mislukt")
    text = _clean(text)
    return PageText(page, "ocr" if _WORD_CHARS.search(text) else "empty", text)


class OcrFailed(RuntimeError):
    pass


async def _run(*command: str) -> str:
    # One thread for Tesseract: the machine is shared, and pages run one at a time anyway.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        out, _ = await process.communicate()
    except asyncio.CancelledError:  # the timeout: do not leave the process running
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise OcrFailed(f"{command[0]} exited with {process.returncode}")
    return out.decode("utf-8", errors="replace")


def _clean(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.replace("\r", "\n").split("\n")]
    cleaned = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip()
