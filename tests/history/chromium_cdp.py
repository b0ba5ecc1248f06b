"""A tiny Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no websocket, no
third-party package): open pages in headless Chromium and collect console errors, exceptions,
failed requests, DOM facts and screenshots."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--remote-debugging-pipe"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium, one page (target) driven through the DevTools pipe."""

    def __init__(self, exe: str, user_data_dir: str, width: int = 1280, height: int = 1600
                 ) -> None:
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()

        def child_fds() -> None:  # runs in the child: put the pipe ends on fds 3 and 4
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            close_fds=False, preexec_fn=child_fds)
        os.close(to_child_r)
        os.close(from_child_w)
        self._id = 0
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue[dict] = queue.Queue()
        self._cond = threading.Condition()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target,
                                                           "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method, session=True)
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child_r, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._events.put(msg)
        with self._cond:
            self._cond.notify_all()

    def call(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float = 30) -> dict:
        self._id += 1
        mid = self._id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no reply to {method} (chromium stderr: "
                                       f"{b''.join(self._stderr[-5:])!r})")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str, timeout: float = 30) -> dict:
        """Load ``url``; return what went wrong while it loaded (console errors, exceptions,
        failed requests, HTTP errors) and the requests made."""
        while not self._events.empty():
            self._events.get_nowait()
        self.call("Page.navigate", {"url": url}, session=True)
        problems: list[str] = []
        requests: list[str] = []
        deadline = time.monotonic() + timeout
        loaded = False
        settle = None
        while time.monotonic() < deadline:
            try:
                ev = self._events.get(timeout=0.2)
            except queue.Empty:
                if loaded and settle is not None and time.monotonic() > settle:
                    break
                continue
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Page.loadEventFired":
                loaded = True
                settle = time.monotonic() + 0.5
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                problems.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                       for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                problems.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                problems.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                requests.append(p.get("request", {}).get("url", ""))
            elif method == "Network.loadingFailed":
                problems.append(f"request failed: {p.get('errorText')} "
                                f"({p.get('type')}, {p.get('requestId')})")
            elif method == "Network.responseReceived":
                status = p.get("response", {}).get("status") or 0
                if status >= 400:
                    problems.append(f"HTTP {status}: {p['response'].get('url')}")
        if not loaded:
            problems.append(f"the page did not finish loading within {timeout:g}s")
        return {"problems": problems, "requests": requests}

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                        session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(str(res["exceptionDetails"]))
        return res.get("result", {}).get("value")

    def screenshot(self, path: str) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child_w, self._from_child_r):
            try:
                os.close(fd)
            except OSError:
                pass
