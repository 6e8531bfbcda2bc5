"""A small Chrome DevTools Protocol client for the browser test: headless Chromium driven over a websocket.

    with Browser.start("http://127.0.0.1:8888/lab?token=...") as page:
        page.wait_for("document.title.length > 0", timeout=30)
        title = page.evaluate("document.title")

The test reads and drives the page with JavaScript (``Runtime.evaluate``) and clicks and types with
real input events (``Input.dispatchMouseEvent``, ``Input.dispatchKeyEvent``). Needs Chromium
(``bash scripts/install_browser.sh``) and ``websocket-client`` (the ``test`` extra).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, process: subprocess.Popen, profile: str, ws):
        self.process, self.profile, self.ws = process, profile, ws
        self._id = 0

    @classmethod
    def start(cls, url: str, timeout: float = 30.0, chromium: str | None = None) -> "Browser":
        import websocket  # websocket-client

        chromium = chromium or find_chromium()
        if not chromium:
            raise BrowserError("no Chromium found: run `bash scripts/install_browser.sh`")
        profile = tempfile.mkdtemp(prefix="rlcourse-chromium-")
        args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", "--window-size=1400,900", url]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        port = None
        seen = []
        while time.monotonic() < deadline:  # Chromium prints "DevTools listening on ws://127.0.0.1:PORT/..."
            line = process.stderr.readline()
            if not line:
                if process.poll() is not None:
                    break
                continue
            seen.append(line)
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            process.kill()
            shutil.rmtree(profile, ignore_errors=True)
            raise BrowserError("Chromium did not start:\n" + "".join(seen[-20:]))
        # keep reading stderr so that Chromium never blocks on a full pipe
        import threading

        threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
        ws_url = None
        while time.monotonic() < deadline and ws_url is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            ws_url = pages[0]["webSocketDebuggerUrl"] if pages else None
            if ws_url is None:
                time.sleep(0.2)
        if ws_url is None:
            process.kill()
            raise BrowserError("Chromium opened no page")
        ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        return cls(process, profile, ws)

    def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        self.ws.settimeout(timeout)
        while True:  # skip events until our answer comes
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str, timeout: float = 60.0):
        """The value of a JavaScript expression (promises are awaited); raises on a JavaScript exception."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True, "timeout": int(timeout * 1000)},
                           timeout=timeout + 5)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates (Input.dispatchMouseEvent), as a user's mouse would."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                   "buttons": 1 if kind == "mousePressed" else 0, "clickCount": 1})

    def key(self, key: str, code: int) -> None:
        """Press and release one key (e.g. "Escape", 27)."""
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key,
                                                 "windowsVirtualKeyCode": code})

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.25):
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic()))
            except BrowserError:
                last = None
            if last:
                return last
            time.sleep(interval)
        raise BrowserError(f"timed out after {timeout:.0f} s waiting for: {expression}")

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
