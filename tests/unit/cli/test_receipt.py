from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image

from qrpay.iiko_integration.schemas import BillLine, BillLineType
from qrpay_tools.pos_sim.bill import build_order_request
from qrpay_tools.pos_sim.client import CreatedOrder
from qrpay_tools.pos_sim.receipt import (
    WIDTH,
    Receipt,
    receipt_lines,
    render_receipt_image,
    save_files,
    terminal_qr,
)

LINK = "http://127.0.0.1:8080/go-pay/orders?order_id=ord-1&hmac=" + "ab" * 32


def make_receipt(order_id: str = "iiko-1", link: str | None = LINK) -> Receipt:
    lines = [BillLine(type=BillLineType.TEXT, value="Оплати через yandex-go и получи кэшбэк 30%!")]
    if link is not None:
        lines.append(BillLine(type=BillLineType.QR_CODE, value=link))
    return Receipt(
        request=build_order_request(
            order_id=order_id, items=["Borscht=450", "A very long dish name " * 4 + "=1"]
        ),
        order=CreatedOrder(order_id="ord-1", bill_lines=lines),
    )


def test_receipt_text_has_the_restaurant_items_total_and_bill_text() -> None:
    lines = receipt_lines(make_receipt())
    text = "\n".join(lines)
    assert "Restaurant: rest-1" in text
    assert "POS order:  iiko-1" in text
    assert "Order id:   ord-1" in text
    assert any(line.startswith("Borscht ") and line.endswith("450.00") for line in lines)
    assert any(line.startswith("TOTAL") and line.endswith("451.00 RUB") for line in lines)
    assert "Оплати через yandex-go и получи кэшбэк 30%!" in " ".join(lines)
    assert all(len(line) <= WIDTH for line in lines)


def test_terminal_qr_is_drawn_with_block_characters() -> None:
    drawing = terminal_qr(LINK)
    assert drawing.count("\n") > 10
    assert any(ch in drawing for ch in "█▀▄")


def test_saved_pngs_hold_a_readable_qr_code(tmp_path: Path) -> None:
    files = save_files(make_receipt(), tmp_path / "out")
    assert files.qr is not None
    assert files.qr.name == "iiko-1-qr.png"
    assert files.receipt.name == "iiko-1-receipt.png"
    for path in (files.qr, files.receipt):
        decoded = zxingcpp.read_barcodes(Image.open(path), formats=zxingcpp.BarcodeFormat.QRCode)
        assert [code.text for code in decoded] == [LINK]


def test_receipt_image_without_a_qr_line_still_renders() -> None:
    image = render_receipt_image(make_receipt(link=None))
    assert image.width > 100
    assert image.height > 100


def test_file_names_cannot_escape_the_out_dir(tmp_path: Path) -> None:
    files = save_files(make_receipt(order_id="../../etc/passwd"), tmp_path)
    assert files.receipt.parent == tmp_path
    assert files.qr is not None
    assert files.qr.parent == tmp_path


def test_receipt_image_holds_every_line_whole() -> None:
    """The right margin stays blank: no amount, order id or link runs off the picture."""
    long_link = (
        "http://127.0.0.1:8080/go-pay/orders?order_id=ord-" + "9" * 40 + "&hmac=" + "ab" * 32
    )
    image = render_receipt_image(make_receipt(link=long_link)).convert("L")
    strip = image.crop((image.width - 12, 0, image.width, image.height))
    assert strip.getextrema()[0] > 200, "dark pixels in the right margin: text is cut off"
    lines = receipt_lines(make_receipt(link=long_link))
    assert any(line.endswith("451.00 RUB") for line in lines)
    decoded = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [code.text for code in decoded] == [long_link]
