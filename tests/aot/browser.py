"""A small client of the Chrome DevTools Protocol over a pipe, to test pages in headless
Chromium (Debian's `chromium`, installed by `make chromium`) with no extra Python package.

    with Browser() as b:
        b.open("file:///tmp/page.html")
        b.click("g.node[data-node='2']")
        text = b.evaluate("document.title")
        Path("shot.png").write_bytes(b.screenshot())

Chromium started with --remote-debugging-pipe reads JSON commands, each ended by a NUL
byte, from its fd 3 and writes replies and events the same way to its fd 4.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

TIMEOUT = 30.0


class BrowserError(RuntimeError):
    """Chromium is missing, died, answered with an error or took too long."""


def chromium() -> str:
    """The path of the Chromium binary.

    Raises:
        BrowserError: when none is installed, saying how to install it.
    """
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no chromium binary on PATH: run `make chromium` as root (it runs "
                       "apt-get install chromium) or install Debian's chromium package")


class Browser:
    """One headless Chromium and one page in it (see the module docstring)."""

    def __init__(self, width: int = 1400, height: int = 1000):
        self._profile = tempfile.TemporaryDirectory(prefix="mlf-chromium-")
        read_end, self._out = os.pipe()  # we write commands into the child's fd 3
        self._in, write_end = os.pipe()   # and read its replies from its fd 4
        # above any fd the redirections below touch, so `3<&` cannot clobber `4>&`'s source
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (read_end, write_end)]
        os.close(read_end)
        os.close(write_end)
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                   "--no-first-run", "--disable-extensions", "--remote-debugging-pipe",
                   f"--window-size={width},{height}", f"--user-data-dir={self._profile.name}",
                   "about:blank"]
        # bash (dash takes no fd above 9) puts the pipe ends at fds 3 and 4, then execs chromium
        self._proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{high[0]} 4>&{high[1]} {high[0]}<&- {high[1]}>&-',
             *command],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=high)
        for fd in high:
            os.close(fd)
        self._buffer, self._next_id, self._events, self.session = b"", 0, [], None

    # ---- the protocol ----

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Sends one command (to the page's session unless `session` is False) and returns
        its result.

        Raises:
            BrowserError: on an error reply, or when no reply comes within TIMEOUT.
        """
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, method: str) -> dict:
        """The next event called `method` (one already received counts)."""
        while True:
            for k, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(k).get("params", {})
            self._events.append(self._read())

    def _read(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                raise BrowserError("chromium did not answer" if left <= 0 else
                                   f"chromium exited with status {self._proc.returncode}")
            ready, _, _ = select.select([self._in], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise BrowserError("chromium closed its debugging pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # ---- what tests do ----

    def open(self, url: str) -> None:
        """Opens `url` in a new page and waits until it has loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page.

        Raises:
            BrowserError: when it throws.
        """
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions the page has thrown so far."""
        self.evaluate("0")  # lets pending events arrive
        return [e["params"]["exceptionDetails"].get("text", "")
                for e in self._events if e.get("method") == "Runtime.exceptionThrown"]

    def click(self, selector: str) -> None:
        """Scrolls the first element matching `selector` into view and clicks its centre
        with the mouse, as a user would.

        Raises:
            BrowserError: when nothing matches.
        """
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if box is None:
            raise BrowserError(f"nothing on the page matches {selector!r}")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                   "button": "left", "clickCount": 1})

    def screenshot(self) -> bytes:
        """The visible page as PNG bytes."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self.send("Browser.close", session=False)
                except BrowserError:
                    pass
                self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        finally:
            os.close(self._out)
            os.close(self._in)
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
