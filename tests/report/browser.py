"""Headless Chromium driven over the DevTools protocol: open a page, evaluate JavaScript.

No browser-automation package: Chromium's own ``--remote-debugging-port`` and the
``websockets`` client already in the environment. ``chromium()`` is None when Chromium is
not installed (``.ci/system-deps.sh`` installs it as root).
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Page:
    """One page of a headless Chromium; :meth:`js` evaluates an expression in it."""

    def __init__(self, binary: str, url: str, profile: Path) -> None:
        port = _free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                "--remote-allow-origins=*",
                "--window-size=1400,1000",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = itertools.count(1)
        deadline = time.monotonic() + 60
        target = None
        while time.monotonic() < deadline and target is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                target = next((t for t in pages if t.get("url", "").startswith("file:")), None)
            except OSError:
                pass
            if target is None:
                time.sleep(0.2)
        if target is None:
            self.close()
            raise RuntimeError("headless Chromium did not open the page")
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        # The target lists the URL before its document replaces about:blank: wait for both.
        while self.js("location.href + ' ' + document.readyState") != f"{url} complete":
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"headless Chromium did not load {url}")
            time.sleep(0.1)

    def js(self, expression: str) -> Any:
        """The JSON value of ``expression`` evaluated in the page."""
        ident = next(self._ids)
        self.ws.send(
            json.dumps(
                {
                    "id": ident,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "returnByValue": True},
                }
            )
        )
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == ident:
                result = msg["result"]
                if "exceptionDetails" in result:
                    raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
                return result["result"].get("value")

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
