"""The data engineer's Airflow (issue 18), seen in the UI by headless Chromium.

A ``vendor_ingest`` run against the simulator writes its asset events into the embedded
home; ``alphafactory airflow ui`` serves that home. The test signs in as the README says
(the admin password the simple auth manager generated, exchanged at ``/auth/token``), gives
the browser that token as the UI's ``_token`` session cookie, and reads the rendered pages
through the DevTools protocol: the project's DAGs, the run's grid, the prices asset's
event, and the ingest task instance's "Data Docs" extra link, which it follows to the GX
page the API server serves. The asset events' extras (rows, contract, quarantines, Data
Docs pages) and the task's links are checked through the REST API with the same token,
and the Data Docs page each names is on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pipelines.cli.status import dag_runs
from pipelines.config import get_settings
from pipelines.contracts.data_docs import REPORTS_URL_ENV
from pipelines.orchestration.airflow_env import airflow_environment, run_dag_test
from pipelines.testing.backdate import HISTORY
from pipelines.vendors.clock import FrozenClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.server import VendorEndpoints, run_vendor
from tests.orchestration.test_airflow_ui import PROJECT_DAGS, REPO, _free_port, _request, _wait

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SESSION = dt.date(2024, 7, 3)
MARKET = MarketConfig(
    seed=23, universe_size=20, start=SESSION, end=dt.date(2024, 7, 12), signal_strength=0.0
)


@pytest.fixture
def vendor(tmp_path: Path) -> Iterator[VendorEndpoints]:
    clock = FrozenClock(dt.datetime(2024, 7, 4, 5, tzinfo=dt.UTC))
    cfg = VendorConfig(market=MARKET, state_dir=tmp_path / "vendor", clock=clock, rate_limit=10_000)
    with run_vendor(cfg) as endpoints:
        yield endpoints


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Page:
    """One Chromium tab driven over the DevTools protocol (no driver package needed)."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.n = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.n += 1
        await self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.n:
                return dict(msg.get("result", {}))

    async def text_when(self, url: str, wanted: list[str], timeout: float = 90) -> str:
        """Navigate to ``url``; the page's visible text once it holds every ``wanted``."""
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            res = await self.call(
                "Runtime.evaluate", expression="document.body ? document.body.innerText : ''"
            )
            text = str(res.get("result", {}).get("value", ""))
            if all(w in text for w in wanted):
                return text
            await asyncio.sleep(1)
        raise AssertionError(f"{url} never showed {wanted}; it showed:\n{text[:3000]}")

    async def href_of(self, text: str) -> str:
        """The ``href`` of the page's first link whose text is ``text`` ("" if none)."""
        res = await self.call(
            "Runtime.evaluate",
            expression="[...document.querySelectorAll('a')]"
            f".filter(a => a.textContent.trim() === {json.dumps(text)})"
            ".map(a => a.getAttribute('href'))[0] || ''",
        )
        return str(res.get("result", {}).get("value", ""))


async def _browse(
    chromium: str,
    base: str,
    token: str,
    checks: list[tuple[str, list[str]]],
    link: tuple[str, str, list[str]] | None = None,
) -> tuple[str, str]:
    """Open each page of ``checks`` until it shows its texts; then, for ``link`` =
    (page, link text, wanted), find the link on the page, follow it and wait for the
    wanted texts. Returns the link's ``href`` and the text of the page it opened."""
    import websockets

    port = _free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         f"--remote-debugging-port={port}", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        targets = _wait_targets(port, proc)
        page_ws = next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"]
        async with websockets.connect(page_ws, max_size=2**24) as ws:
            page = _Page(ws)
            await page.call("Network.enable")
            await page.call("Network.setCookie", name="_token", value=token, url=base)
            for url, wanted in checks:
                await page.text_when(url, wanted)
            if link is None:
                return "", ""
            url, name, wanted = link
            await page.text_when(url, [name])
            href = await page.href_of(name)
            assert href, f"no link named {name!r} on {url}"
            target = href if "://" in href else f"{base}{href}"
            return href, await page.text_when(target, wanted)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def _wait_targets(port: int, proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "chromium exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as resp:
                targets: list[dict[str, Any]] = json.loads(resp.read())
            if any(t.get("type") == "page" for t in targets):
                return targets
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("chromium's DevTools endpoint never answered")


@pytest.mark.timeout(1500)
def test_ui_shows_dags_grid_and_asset_extras_with_data_docs(
    vendor: VendorEndpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/system-deps.sh installs it as root)")
    monkeypatch.delenv(REPORTS_URL_ENV, raising=False)  # the link is served by Airflow itself
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_SFTP_PORT", str(vendor.sftp_port))
    monkeypatch.setenv("ALPHAFACTORY_VENDOR_HTTP_PORT", str(vendor.http_port))
    get_settings.cache_clear()
    env = airflow_environment(vendor_host_key=vendor.host_public_key)
    lake_root = get_settings().lake_root
    run = run_dag_test(
        "vendor_ingest",
        SESSION,
        conf={"backdate_reason": HISTORY.reason},
        env=env,
        extra_env={"ALPHAFACTORY_LAKE_ROOT": lake_root, "ALPHAFACTORY_INGEST_POKE_SECONDS": "1"},
    )
    assert run.ok, run.output[-5000:]
    assert "Data Docs (vendor_prices" in run.output  # the task log names the page

    # status without an API server reads the runs from the metadata DB, in well under the
    # 32 s that one `airflow dags list-runs` per DAG took (issue 18).
    port = _free_port()
    monkeypatch.setenv("ALPHAFACTORY_AIRFLOW_API_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    started = time.perf_counter()
    source, runs = dag_runs()
    took = time.perf_counter() - started
    assert source.startswith("metadata DB") and took < 5, (source, took)
    assert any(r["dag_id"] == "vendor_ingest" and r["state"] == "success" for r in runs), runs
    print(f"status DAG runs from the metadata DB in {took:.2f}s")
    home = env.home
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    child_env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli.main", "airflow", "ui", "--port", str(port)],
        env=child_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait("the API's health", lambda: _request(f"{base}/api/v2/monitor/health"), proc)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        password = _wait("the admin password", lambda: json.loads(passwords.read_text()), proc)
        token = _request(
            f"{base}/auth/token", {"username": "admin", "password": password["admin"]}
        )["access_token"]

        def dag_ids() -> set[str] | None:
            ids = {
                d["dag_id"] for d in _request(f"{base}/api/v2/dags?limit=100", token=token)["dags"]
            }
            return ids if ids >= PROJECT_DAGS else None

        _wait("the project's DAGs", dag_ids, proc)
        # The asset events' extras, through the REST API with the same token.
        events = _request(f"{base}/api/v2/assets/events?limit=100", token=token)["asset_events"]
        by_uri = {e["uri"]: e["extra"] for e in events if e.get("source_dag_id") == "vendor_ingest"}
        prices = by_uri["alphafactory://lake/prices"]
        assert prices["rows"] == MARKET.universe_size
        assert prices["contract"]["result"] in ("passed", "warned")
        assert prices["quarantine_ids"] == []
        assert prices["data_docs"] and all(Path(p).is_file() for p in prices["data_docs"])
        assert prices["data_docs_url"] == Path(prices["data_docs"][0]).as_uri()
        assets = _request(f"{base}/api/v2/assets?limit=100", token=token)["assets"]
        (prices_id,) = [a["id"] for a in assets if a["uri"] == "alphafactory://lake/prices"]
        # The ingest task's "Data Docs" extra link, through the REST API: the worker stored
        # the API server's path of the run's GX page, which it serves to a signed-in user.
        (run_id,) = [
            r["dag_run_id"]
            for r in _request(f"{base}/api/v2/dags/vendor_ingest/dagRuns", token=token)["dag_runs"]
        ]
        task_path = f"dags/vendor_ingest/runs/{quote(run_id, safe='')}/tasks/ingest_vendor_prices"
        links = _request(
            f"{base}/api/v2/dags/vendor_ingest/dagRuns/{quote(run_id, safe='')}"
            "/taskInstances/ingest_vendor_prices/links",
            token=token,
        )["extra_links"]
        docs_link = links["Data Docs"]
        page = Path(prices["data_docs"][0])
        assert docs_link == f"/alphafactory/reports/data_docs/validations/{page.name}", links
        served = urllib.request.Request(
            f"{base}{docs_link}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(served, timeout=30) as resp:
            assert resp.read() == page.read_bytes()  # the page on disk, over HTTP
            assert resp.headers["Content-Security-Policy"].startswith("sandbox")
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{base}{docs_link}", timeout=30)  # not signed in
        # What the browser shows: the project's DAGs, the run's grid with its tasks, the
        # prices asset's page with its event from vendor_ingest. (The UI renders the
        # event's extra in a folded code view, "{ }" in the page text: its content is
        # checked through the REST API above.) Then the ingest task instance's page, its
        # "Data Docs" button, and the GX validation page the button opens.
        href, opened = asyncio.run(
            _browse(
                chromium,
                base,
                token,
                [
                    (f"{base}/dags", sorted(PROJECT_DAGS)[:4]),
                    (f"{base}/dags/vendor_ingest", ["ingest_vendor_prices", "wait_vendor_prices"]),
                    (
                        f"{base}/assets/{prices_id}",
                        ["1 Asset Event", "Source:", "vendor_ingest"],
                    ),
                ],
                # Airflow 3.3 lists a task instance's extra links on its Details tab
                link=(
                    f"{base}/{task_path}/details",
                    "Data Docs",
                    ["Expectation Validation Result", "Overview"],
                ),
            )
        )
        assert href == docs_link
        print(f"Data Docs link in the UI: {href} ({len(opened)} characters of page text)")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=10)
