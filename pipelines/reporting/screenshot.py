"""A PNG of the report page, taken by a headless Chromium driven over its DevTools pipe."""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple




logger = logging.getLogger("workspace_images")


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_WIDTH = 1280
SCREENSHOT_TIMEOUT = 60.0
MAX_SCREENSHOT_HEIGHT = 30000


class ScreenshotFailed(Exception):
    """Chromium was found but did not produce the screenshot."""



# -- screenshot ----------------------------------------------------------------------------


def find_chromium() -> Optional[str]:
    """The first Chromium-family browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _DevTools:
    """A headless Chromium driven over `--remote-debugging-pipe` (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: str, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        to_child, self._write = self._pipe()
        self._read, from_child = self._pipe()
        self._next_id = 0
        self._buffer = b""
        self.events: List[str] = []

        def wire() -> None:  # in the child, before exec
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.process = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
                "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child)
        os.close(from_child)

    @staticmethod
    def _pipe() -> Tuple[int, int]:
        # move both ends above fd 4, close-on-exec, so that the child's dup2 onto 3 and 4 never aliases them
        ends = []
        for fd in os.pipe():
            ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
            os.close(fd)
        return ends[0], ends[1]

    def _receive(self) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ScreenshotFailed("chromium did not answer in time")
            ready, _, _ = select.select([self._read], [], [], remaining)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise ScreenshotFailed("chromium exited early")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(
        self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None
    ) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._write, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise ScreenshotFailed("chromium exited early") from None
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ScreenshotFailed(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer["method"])

    def wait_for(self, event: str) -> None:
        while event not in self.events:
            answer = self._receive()
            if "method" in answer:
                self.events.append(answer["method"])

    def close(self) -> str:
        """Close the browser; return what it wrote on stderr."""
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        os.close(self._write)
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        os.close(self._read)
        return err.decode("utf-8", "replace") if err else ""


def screenshot(html_path: Path, png_path: Path, width: int = SCREENSHOT_WIDTH) -> Optional[Path]:
    """Capture the whole page at `html_path` as a PNG, `width` CSS pixels wide, with headless Chromium.

    Returns:
        `png_path`, or None (with a warning) when no Chromium is installed.

    Raises:
        ScreenshotFailed: Chromium is there but did not deliver the image.
    """
    binary = find_chromium()
    if binary is None:
        logger.warning(
            "no chromium found, so no screenshot of %s: install it with `apt-get install chromium` "
            "(or `make demo` as root)", html_path,
        )
        return None
    url = Path(html_path).resolve().as_uri()
    png_path = Path(png_path)
    with tempfile.TemporaryDirectory(prefix="workspace-images-chromium-") as profile:
        try:
            browser = _DevTools(binary, profile, SCREENSHOT_TIMEOUT)
        except OSError as exc:
            raise ScreenshotFailed(f"{binary}: cannot start: {exc}") from None
        failure: Optional[str] = None
        try:
            png = _capture(browser, url, width)
        except (ScreenshotFailed, KeyError, ValueError) as exc:
            failure = str(exc)
        finally:
            stderr = browser.close().strip()
        if failure is not None:
            detail = f" ({stderr.splitlines()[-1]})" if stderr else ""
            raise ScreenshotFailed(f"{binary}: {failure}{detail}")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    return png_path


def _capture(browser: _DevTools, url: str, width: int) -> bytes:
    """Open `url` in a new tab `width` pixels wide and return the whole page as PNG bytes."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.call("Page.enable", session=session)
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session=session,
    )
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired")
    size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
    height = min(max(int(size["height"]), 1), MAX_SCREENSHOT_HEIGHT)
    shot = browser.call(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True,
         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
        session=session,
    )
    return base64.b64decode(shot["data"])
