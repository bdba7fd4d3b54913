"""The PM report: every section present, self-contained, and rendered by headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.daily.stages import report_subject
from pipelines.lake import Lake
from pipelines.report import write_pm_report
from tests.daily.helpers import CONFIG, LOOP_DAYS
from tests.report.browser import chromium as find_chromium

pytestmark = [pytest.mark.unit, pytest.mark.slow]
SECTIONS = (
    "Optimizer status and relaxed constraints",
    "Target vs current portfolio",
    "Trades and their reasons",
    "Sector and factor exposures",
    "Ex-ante risk",
    "P&amp;L attribution",
    "Alpha diagnostics",
    "Data quality and freshness",
)


def _report(loop_root: Path, tmp_path: Path) -> Path:
    # Written elsewhere than the shared root (``out``): the shared root stays read-only.
    out = tmp_path / "pm-report.html"
    lake = Lake(str(loop_root / "lake"))
    return Path(write_pm_report(lake, LOOP_DAYS[-1], report_subject(CONFIG), str(out)))


def test_report_has_every_section_and_loads_nothing(loop_root: Path, tmp_path: Path) -> None:
    html = _report(loop_root, tmp_path).read_text()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in html, section
    assert html.count("data:image/png;base64,") >= 5
    # Self-contained: no external scripts, stylesheets or images.
    assert not re.search(r'(src|href)="(https?:|//|/)', html)
    for table in ("prices", "sentiment", "security_master"):
        assert f">{table}<" in html
    assert "alpha" in html and "risk" in html and "cost" in html
    assert "Whole-share rounding moved" in html


@pytest.mark.integration
def test_report_renders_in_headless_chromium(loop_root: Path, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/system-deps.sh installs it as root)")
    page = _report(loop_root, tmp_path)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    # Non-blank: text and charts give many distinct shades and a real spread.
    assert pixels.std() > 10, "screenshot is blank"
    assert len(np.unique(pixels)) > 20
    dark = (pixels < 128).mean()
    assert 0.005 < dark < 0.6


def test_a_past_report_does_not_show_what_was_learnt_later(loop_root: Path, tmp_path: Path) -> None:
    """Issue 14: rendering the report of a past session after later data landed (here a
    price correction for that session, received two months later) showed the later data."""
    import datetime as dt

    import pandas as pd

    from pipelines.report.pm import render_pm_report
    from pipelines.timeline import LATEST
    from tests.daily.helpers import copy_root

    root = copy_root(loop_root, tmp_path / "copy")
    lake = Lake(str(root / "lake"))
    day = LOOP_DAYS[-1]
    prices = lake.as_of("prices", known_at=LATEST, valid_at=day).to_pandas().head(1)
    later = pd.Timestamp(day + dt.timedelta(days=61)).tz_localize("UTC") + pd.Timedelta(hours=3)
    from pipelines.lake import get_table

    fields = [f.name for f in get_table("prices").input_fields if f.name != "known_at"]
    correction = prices[fields].assign(close=prices["close"] * 1.05)
    lake.write("prices", correction, known_at=later.to_pydatetime(), batch_id="late-correction")
    stamp = later.isoformat(timespec="minutes")
    subject = report_subject(CONFIG)
    assert stamp[:16] in render_pm_report(lake, day, subject, known_at=LATEST)  # the old view
    assert stamp[:16] not in render_pm_report(lake, day, subject)


def test_every_trade_is_listed_and_no_number_is_scientific(loop_root: Path, tmp_path: Path) -> None:
    """Issue 18: weights printed as 6.619e-05 and only 30 of 133 trades listed."""
    from pipelines.lake.stage_state import StageState
    from pipelines.report.pm import trade_reasons

    html = _report(loop_root, tmp_path).read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells and not [c for c in cells if re.fullmatch(r"-?[\d.]+e[-+]\d+", c)]
    lake = Lake(str(loop_root / "lake"))
    art = StageState(lake, CONFIG.portfolio_id, LOOP_DAYS[-1])
    trades = trade_reasons(art, report_subject(CONFIG))
    assert len(trades) > 0
    table = html.split('<table class="sortable">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == len(trades) + 1  # the header and every trade
    assert "delta_bps" in table and "click a header to sort" in html
