"""A PNG of the report page, taken by Playwright driving the system's headless Chromium.

Playwright is the optional extra `screenshot` (`pip install 'workspace-images[screenshot]'`,
and part of the test extra `make demo` installs). It drives the Chromium already on the
machine (Debian's `chromium`), so no browser is downloaded. Without Playwright or without a
Chromium there is no screenshot, and a warning says what to install.
"""

from __future__ import annotations

import importlib
import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from workspace_images.failures import first_line

logger = logging.getLogger("workspace_images")


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# beyond what Playwright passes itself: no sandbox, which fails when run as root, and no GPU
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu")
SCREENSHOT_WIDTH = 1280
SCREENSHOT_TIMEOUT = 60.0
MAX_SCREENSHOT_HEIGHT = 30000


class ScreenshotFailed(Exception):
    """Chromium was found but did not produce the screenshot."""


def find_chromium() -> Optional[str]:
    """The first Chromium-family browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html_path: Path, png_path: Path, width: int = SCREENSHOT_WIDTH) -> Optional[Path]:
    """Capture the whole page at `html_path` as a PNG, `width` CSS pixels wide, with headless Chromium.

    Returns:
        `png_path`, or None (with a warning) when Playwright or Chromium is not installed.

    Raises:
        ScreenshotFailed: Chromium is there but did not deliver the image.
    """
    try:
        importlib.import_module("playwright.sync_api")  # installed? `_capture` uses it
    except ImportError:
        logger.warning(
            "playwright is not installed, so no screenshot of %s: "
            "install it with `pip install 'workspace-images[screenshot]'`", html_path,
        )
        return None
    binary = find_chromium()
    if binary is None:
        logger.warning(
            "no chromium found, so no screenshot of %s: install it with `apt-get install chromium` "
            "(or `make demo` as root)", html_path,
        )
        return None
    png_path = Path(png_path)
    url = Path(html_path).resolve().as_uri()
    # in a thread of its own: Playwright's sync API refuses a thread that runs an asyncio loop
    # (a notebook's, or another Playwright session's), and a fresh thread has none
    with ThreadPoolExecutor(1, thread_name_prefix="workspace-images-screenshot") as pool:
        png = pool.submit(_capture, binary, url, width).result()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    return png_path


def _capture(binary: str, url: str, width: int) -> bytes:
    """The whole page at `url`, `width` pixels wide, as PNG bytes."""
    from playwright.sync_api import Error, sync_playwright

    timeout_ms = SCREENSHOT_TIMEOUT * 1000
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=binary, args=list(CHROMIUM_ARGS), headless=True, timeout=timeout_ms
            )
            try:
                page = browser.new_page(viewport={"width": width, "height": 800}, device_scale_factor=1)
                page.goto(url, wait_until="load", timeout=timeout_ms)
                height = page.evaluate("Math.ceil(document.documentElement.scrollHeight)")
                height = min(max(int(height), 1), MAX_SCREENSHOT_HEIGHT)
                return page.screenshot(
                    full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}, timeout=timeout_ms
                )
            finally:
                browser.close()
    except Error as exc:
        raise ScreenshotFailed(f"{binary}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """One line of a Playwright error: its first line, with the browser's last words on stderr if any."""
    text = str(exc)
    first = first_line(exc)
    said = re.findall(r"^\[pid=\d+\]\[err\] (.+)$", text, flags=re.MULTILINE)
    return f"{first} ({said[-1].strip()})" if said else first
