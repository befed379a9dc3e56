"""The printed pre-check: the bill, the lines iiko-integration returned and the QR code."""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from qrpay_tools.pos_sim.bill import OrderRequest, format_money
from qrpay_tools.pos_sim.client import CreatedOrder

WIDTH = 42
# A font with Cyrillic: the bill text comes from a Russian template.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/Library/Fonts/Menlo.ttc",
    "C:/Windows/Fonts/consola.ttf",
)


@dataclass(frozen=True)
class Receipt:
    request: OrderRequest
    order: CreatedOrder

    @property
    def link(self) -> str | None:
        return self.order.deeplink


def _dotted(left: str, right: str, width: int) -> str:
    room = width - len(right) - 3  # two spaces and at least one dot
    if len(left) > room:
        left = left[: max(room - 1, 1)] + "…"
    dots = max(width - len(left) - len(right) - 2, 1)
    return f"{left} {'.' * dots} {right}"


def receipt_lines(receipt: Receipt, width: int = WIDTH) -> list[str]:
    """The receipt as text, without the QR code (drawn separately) and without the link."""
    request = receipt.request
    lines = [
        "=" * width,
        "PRE-CHECK".center(width).rstrip(),
        "=" * width,
        f"Restaurant: {request.client_id}",
        f"POS order:  {request.internal_order_id}",
        f"Order id:   {receipt.order.order_id}",
        "-" * width,
    ]
    lines += [_dotted(item.name, format_money(item.amount), width) for item in request.items]
    lines += [
        "-" * width,
        _dotted("TOTAL", f"{format_money(request.amount)} {request.currency}", width),
    ]
    lines.append("=" * width)
    for text in receipt.order.text_lines:
        lines += textwrap.wrap(text, width) or [""]
    return lines


def make_qr(link: str) -> segno.QRCode:
    return segno.make(link, error="m", micro=False)


def terminal_qr(link: str) -> str:
    out = io.StringIO()
    make_qr(link).terminal(out=out, compact=True, border=2)
    return out.getvalue()


def save_qr_png(link: str, path: Path, *, scale: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_qr(link).save(str(path), kind="png", scale=scale, border=4)
    return path


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size)


def render_receipt_image(receipt: Receipt, *, width: int = WIDTH) -> Image.Image:
    """The receipt as a picture, as wide as its widest line measured in the font in use."""
    font = _font(18)
    line_h = 24
    margin = 24
    text = receipt_lines(receipt, width)
    link = receipt.link
    qr_img: Image.Image | None = None
    link_lines: list[str] = []
    if link is not None:
        buffer = io.BytesIO()
        make_qr(link).save(buffer, kind="png", scale=6, border=2)
        buffer.seek(0)
        qr_img = Image.open(buffer).convert("RGB")
        link_lines = textwrap.wrap(f"Link: {link}", width, break_long_words=True)
    # Measured, not counted: a glyph's advance is fractional and "…" or Cyrillic may differ.
    text_w = max(math.ceil(font.getlength(line)) for line in text + link_lines)
    page_w = margin * 2 + max(text_w, qr_img.width if qr_img else 0)
    page_h = margin * 2 + line_h * (len(text) + len(link_lines) + 1)
    if qr_img is not None:
        page_h += qr_img.height + line_h
    page = Image.new("RGB", (page_w, page_h), "white")
    draw = ImageDraw.Draw(page)
    y = margin
    for line in text:
        draw.text((margin, y), line, fill="black", font=font)
        y += line_h
    if qr_img is not None:
        y += line_h // 2
        page.paste(qr_img, ((page_w - qr_img.width) // 2, y))
        y += qr_img.height + line_h // 2
    for line in link_lines:
        draw.text((margin, y), line, fill="black", font=font)
        y += line_h
    return page


def save_receipt_png(receipt: Receipt, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    render_receipt_image(receipt).save(path, format="PNG")
    return path


@dataclass(frozen=True)
class SavedFiles:
    qr: Path | None
    receipt: Path


def save_files(receipt: Receipt, out_dir: Path) -> SavedFiles:
    stem = _safe_stem(receipt.request.internal_order_id)
    qr = save_qr_png(receipt.link, out_dir / f"{stem}-qr.png") if receipt.link else None
    return SavedFiles(qr=qr, receipt=save_receipt_png(receipt, out_dir / f"{stem}-receipt.png"))


def _safe_stem(name: str) -> str:
    # The POS order id comes from the operator; keep it from escaping out-dir.
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".")
    return cleaned[:80] or "order"
