"""The research report of a young lake (the demo's: a trained model, a few score dates, no
matured live IC) has no empty section, per-feature IC, and charts whose labels do not
overlap — checked in headless Chromium (issue 18)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from pipelines.lake import Lake
from pipelines.research import stages
from pipelines.research.report import hbar_figure, overlapping_labels
from pipelines.research.report_lake import model_table, signal_ic, write_lake_report
from pipelines.research.stages import ResearchContext
from pipelines.testing.lakes import simulated_lake
from pipelines.timeline import trading_calendar
from tests.research.lake_helpers import SMALL_CONFIG

pytestmark = pytest.mark.unit

START, END = dt.date(2020, 1, 2), dt.date(2021, 6, 30)
FIT = dt.date(2021, 6, 24)  # the demo trains at the session before the latest one
FEATURES = ("reversal_5d", "volatility_21d", "momentum_12_1", "sentiment_5d", "book_to_price")
CONFIG = dataclasses.replace(SMALL_CONFIG, features=FEATURES)
SESSIONS = 60


@pytest.fixture(scope="module")
def young_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake as the demo leaves it: history, one model fit at ``FIT``, scores of the
    sessions after it (none matured at h=5)."""
    lake = simulated_lake(
        tmp_path_factory.mktemp("young") / "lake", universe=40, start=START, end=END
    )
    stages.retrain(ResearchContext(lake, FIT, CONFIG))
    for day in trading_calendar().sessions(trading_calendar().offset(FIT, 1), END):
        stages.score_day(ResearchContext(lake, day, CONFIG))
    return lake


@pytest.fixture(scope="module")
def report(young_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "research.html"
    return write_lake_report(young_lake, out, signal_sessions=SESSIONS)


class _Sections(HTMLParser):
    """Each <section>: its title and how many table cells / images / notes it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, object]] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.sections.append({"title": "", "cells": 0, "images": 0, "note": False})
        elif self.sections:
            current = self.sections[-1]
            if tag == "h2":
                self._in_h2 = True
            elif tag == "td":
                current["cells"] = int(str(current["cells"])) + 1
            elif tag == "img" and str(dict(attrs).get("src", "")).startswith("data:image/png"):
                current["images"] = int(str(current["images"])) + 1
            elif tag == "p":
                current["note"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2 and self.sections:
            self.sections[-1]["title"] = str(self.sections[-1]["title"]) + data


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_signal_ic_is_point_in_time_per_feature_and_model(young_lake: Lake) -> None:
    signals = signal_ic(young_lake, sessions=SESSIONS)
    assert signals.end == END
    assert set(signals.features["feature"]) >= set(FEATURES)
    main = signals.features[signals.features["horizon"] == 5].set_index("feature")
    assert (main["n_dates"] > 30).all()  # 60 sessions, the last 5 not matured at h=5
    assert main["t_stat"].notna().all()
    # the model is measured from the session after its training window only
    assert len(signals.models) == 4  # one row per horizon
    model_dates = signals.daily[signals.daily["model_id"] == signals.models["model_id"][0]]
    record = model_table(young_lake).iloc[0]
    train_end = record["train"].split(" .. ")[1]
    assert model_dates["date"].min() > pd.Timestamp(train_end)
    # a label dated t is used only once it matured: nothing after END - h at h = 21
    h21 = signals.daily[signals.daily["horizon"] == 21]
    assert h21["date"].max() <= pd.Timestamp(trading_calendar().offset(END, -21))


def test_no_section_is_empty(report: Path) -> None:
    parser = _Sections()
    parser.feed(report.read_text())
    titles = [str(s["title"]) for s in parser.sections]
    assert titles[:3] == [
        "Models: champion and challengers",
        "Model rank IC (validation window and after)",
        "Feature rank IC (each feature on its own)",
    ]
    for section in parser.sections:
        assert section["cells"] or section["images"] or section["note"], section
    html = report.read_text()
    meta = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", html))
    assert meta["models"] == "1"
    assert meta["score dates"].startswith(str(trading_calendar().offset(FIT, 1)))
    assert "matures at h=5" in html  # the live IC says when it fills
    for feature in FEATURES:
        assert f"<td>{feature}</td>" in html


def test_chart_labels_do_not_overlap() -> None:
    names = [f"a_rather_long_feature_name_{i:02d}" for i in range(40)]
    frame = pd.DataFrame({"feature": names, "value": range(40)})
    fig = hbar_figure(frame, "feature", "value", None, "forty features")
    assert overlapping_labels(fig) == []


@pytest.mark.integration
def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/system-deps.sh installs it as root)")
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    parser = _Sections()
    parser.feed(proc.stdout)  # the DOM as Chromium built it
    assert len(parser.sections) >= 4
    for section in parser.sections:
        assert section["cells"] or section["images"] or section["note"], section
    images = sum(int(str(s["images"])) for s in parser.sections)
    assert images >= 3
