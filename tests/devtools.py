"""Headless Chromium driven over the DevTools protocol (a WebSocket), for the browser tests.

Measured here (design notes): ``chromium --headless --screenshot`` captures before the data arrives; waiting
until the page says it is ready, a few times in a row, and then capturing over the protocol is reliable."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

START_TIMEOUT_S = 30.0


class Page:
    """One browser tab: protocol calls, evaluation and screenshots."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_until(self, expression: str, timeout: float, times_in_a_row: int = 3) -> None:
        """Until ``expression`` is true at ``times_in_a_row`` polls 0.25 s apart; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < times_in_a_row:
            assert time.monotonic() < deadline, f"the page never got to: {expression}"
            streak = streak + 1 if self.evaluate(expression) else 0
            time.sleep(0.25)

    def screenshot_png(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


@contextmanager
def chromium(width: int, height: int) -> Iterator[Callable[[str], Page]]:
    """A headless Chromium (software WebGL); yields ``open(url) -> Page``. Always stopped."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail(
            "the browser tests need chromium (apt-get install chromium; make test-deps does it as root)"
        )
    profile = Path(tempfile.mkdtemp(prefix="zarrfs-chromium-"))
    process = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run", "--disable-extensions",
         f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    sockets = ExitStack()
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (active.exists() and active.read_text().count("\n") >= 1):
            assert process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(active.read_text().split()[0])

        def open_page(url: str) -> Page:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
            with urllib.request.urlopen(request, timeout=30) as response:
                target = json.load(response)
            page = Page(sockets.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None)))
            page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)  # fmt: skip
            page.call("Page.navigate", url=url)
            return page

        yield open_page
    finally:
        sockets.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)
