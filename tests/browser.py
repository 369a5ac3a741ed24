"""A real headless Chromium driven over the Chrome DevTools Protocol (CDP) through a pipe.

`--remote-debugging-pipe` speaks CDP as NUL-terminated JSON on file descriptors 3 (to the browser)
and 4 (from it), so no websocket client is needed. Every request the page makes, every console
message, exception and log entry is recorded, so tests can assert that nothing leaves 127.0.0.1
and nothing ran that should not have.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def chromium_path() -> str | None:
    """The Chromium binary on PATH (Debian's `chromium`), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser answered a command with an error, died, or a wait timed out."""


class Browser:
    """One headless Chromium with one page; records requests, console output and exceptions."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="discovery-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child must see our pipe ends as fds 3 and 4: dup them there just before exec.
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--metrics-recording-only",
            "--no-sandbox",  # tests run as root in containers, where Chromium's own sandbox cannot start
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            **_fd_mapping(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = self._attach()
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    # ----- protocol ----------------------------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("timed out waiting for the browser")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser closed its pipe (exit {self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, timeout: float = 30, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session unless session=False) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session and getattr(self, "session", None):
            message["sessionId"] = self.session
        self._write(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(max(0.01, deadline - time.monotonic()))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _attach(self) -> str:
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        return self.send("Target.attachToTarget", session=False, targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """Wait for the next event called method (events already seen are kept in self.events)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(max(0.01, deadline - time.monotonic()))
            if "method" in event:
                self.events.append(event)
                if event["method"] == method:
                    return event

    # ----- what tests use ----------------------------------------------------------------------

    def open(self, url: str, settle_s: float = 0.3) -> None:
        """Navigate and wait for the load event, then let scripts settle a little."""
        self.events.clear()
        if "loaderId" in self.send("Page.navigate", url=url):  # none for a same-document (#anchor) move
            self.wait_for("Page.loadEventFired")
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            try:
                event = self._read(end - time.monotonic())
            except BrowserError:
                break
            if "method" in event:
                self.events.append(event)

    def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (our test code, not the page's) and return its value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"
        ]

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and error log entries (CSP violations included)."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
                found.append(f"console.{p['type']}: {[a.get('value') for a in p['args']]}")
            elif e["method"] == "Runtime.exceptionThrown":
                found.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                found.append(f"log {p['entry']['level']}: {p['entry']['text']}")
        return found

    def dialogs(self) -> list[str]:
        return [e["params"]["message"] for e in self.events if e["method"] == "Page.javascriptDialogOpening"]

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._write({"id": 0, "method": "Browser.close", "params": {}})
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fd_mapping(read_end: int, write_end: int) -> dict[str, Any]:
    """Popen keyword arguments that place read_end at fd 3 and write_end at fd 4 in the child."""

    def place() -> None:
        # dup to high numbers first, so placing one cannot clobber the other
        r, w = os.dup(read_end), os.dup(write_end)
        os.dup2(r, 3)
        os.dup2(w, 4)

    return {"preexec_fn": place}
