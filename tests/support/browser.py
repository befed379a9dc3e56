from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


SCREENSHOTS = REPO / "out" / "screenshots"


DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"


# A phone-sized window: the pages are mobile first.
PHONE = {"width": 390, "height": 844}


# How long a page's action or expectation waits, in milliseconds (Playwright's default timeout).
TIMEOUT = 10_000


def screenshot(page: Any, name: str) -> Path:
    """Save the page as ``out/screenshots/<name>.png`` (the whole page, phone-sized)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def publish(path: Path, name: str) -> None:
    """Copy a screenshot to docs/screenshots/ (committed; the README shows it)."""
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_SCREENSHOTS / name)
