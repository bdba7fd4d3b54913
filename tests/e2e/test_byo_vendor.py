"""Bring your own vendor, for real (issue 13's acceptance test).

A vendor unlike the simulator in every respect (:mod:`pipelines.testing.foreign_vendor`:
latin-1, ``;``, decimal comma, ``%d/%m/%Y``, FIGI ids, ``/outgoing/YYYYMMDD/`` with dated
file names and its own manifest name; 22 securities over the 501 sessions of 2022-2023
with two splits, a delisting, a regular and a special dividend on one ex-date, and the
ticker ``NA``) is served by OpenSSH's sshd (:func:`pipelines.testing.sshd.run_sshd`) under
the user's own Airflow connection ``sftp_acme`` (key auth, host key pinned). The test
does exactly what ``docs/bring-your-own-vendor.md`` tells a user to do:

1. write three feed YAML files into a folder named by ``ALPHAFACTORY_FEEDS_DIR`` and turn
   the shipped simulator feeds off (``ALPHAFACTORY_SHIPPED_FEEDS=false``);
2. export ``AIRFLOW_CONN_SFTP_ACME``;
3. ``alphafactory ingest backfill`` over the whole history: nothing quarantined;
4. ``alphafactory airflow dags-test vendor_ingest <session>`` for the first two sessions on
   a fresh lake, and for the last session on the backfilled lake (adds nothing);

then checks the lake against the vendor's ground truth: the point-in-time total returns
(the research panel's ``ret`` and the daily snapshot's ``returns``) equal the
independently computed series to 1e-10, on the split days, the two-dividend day and the
delisting too; ``NA`` is the text ``NA``. Finally research, scores, targets and the PM
report are produced with no fundamentals and no sentiment feed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from pipelines.lake import Lake
from pipelines.testing.foreign_vendor import ForeignVendorTruth, write_foreign_vendor
from pipelines.testing.sshd import Sshd, SshdUnavailable, run_sshd
from pipelines.timeline import LATEST, decision_cutoff

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-10

# --- what the user writes: three feed files (docs/bring-your-own-vendor.md) -----------------
# ``{root}`` is "" when sshd runs chrooted to the vendor's tree (as root), else the tree's
# local path (sshd then serves the whole filesystem); a real vendor's folder is /outgoing.

ACME_SECURITY_MASTER = """\
# ACME's security master: deltas, full record state after each change
name: acme_security_master
table: security_master
contract: security_master
protocol: sftp
connection_id: sftp_acme
remote_dir: "{root}/outgoing/{{date:%Y%m%d}}"
file: SECMASTER_{{date:%Y%m%d}}.csv
manifest: MANIFEST_{{date:%Y%m%d}}.json
format: csv
compression: none
delimiter: ";"
encoding: latin-1
date_format: "%d/%m/%Y"
known_at: manifest
columns:
  security_id: Code FIGI
  valid_date: Date effet
  ticker: Mnémo
  name: Libellé
  sector:
    sql: >-
      CASE "Secteur GICS" WHEN '10' THEN 'Energy' WHEN '15' THEN 'Materials'
      WHEN '20' THEN 'Industrials' WHEN '25' THEN 'Consumer Discretionary'
      WHEN '30' THEN 'Consumer Staples' WHEN '35' THEN 'Health Care'
      WHEN '40' THEN 'Financials' WHEN '45' THEN 'Information Technology'
      WHEN '50' THEN 'Communication Services' WHEN '55' THEN 'Utilities'
      WHEN '60' THEN 'Real Estate' END
  exchange:
    sql: "CASE Place WHEN 'NYSE' THEN 'XNYS' WHEN 'NASDAQ' THEN 'XNAS' END"
  currency: Devise
  listed:
    sql: "Statut = 'A'"
  list_date: Date cotation
  delist_date: Date radiation
  delist_reason:
    sql: "CASE \\"Motif radiation\\" WHEN 'RACHAT' THEN 'ACQUIRED' WHEN 'FAILLITE' THEN 'BANKRUPTCY' END"
"""

ACME_CORPORATE_ACTIONS = """\
# ACME's corporate actions: announced in the session's file, valid on their ex-date
name: acme_corporate_actions
table: corporate_actions
contract: corporate_actions
protocol: sftp
connection_id: sftp_acme
remote_dir: "{root}/outgoing/{{date:%Y%m%d}}"
file: CORPACT_{{date:%Y%m%d}}.csv
manifest: MANIFEST_{{date:%Y%m%d}}.json
format: csv
compression: none
delimiter: ";"
encoding: latin-1
date_format: "%d/%m/%Y"
known_at: manifest
columns:
  security_id: Code FIGI
  action_id: Réf opération
  valid_date: Date détachement
  action_type:
    sql: "CASE Nature WHEN 'DIVISION' THEN 'split' WHEN 'DIV' THEN 'dividend' WHEN 'DIVEXC' THEN 'dividend' END"
  ratio:
    sql: "TRY_CAST(split_part(\\"Parité\\", ':', 1) AS DOUBLE) / TRY_CAST(split_part(\\"Parité\\", ':', 2) AS DOUBLE)"
  amount:
    sql: "TRY_CAST(replace(Montant, ',', '.') AS DOUBLE)"
  currency: Devise
  announce_date: Date annonce
ignore_columns: [Date paiement]
"""

ACME_PRICES = """\
# ACME's end-of-day prices: raw (unadjusted), decimal comma
name: acme_prices
table: prices
contract: prices
protocol: sftp
connection_id: sftp_acme
remote_dir: "{root}/outgoing/{{date:%Y%m%d}}"
file: EOD_{{date:%Y%m%d}}.csv
manifest: MANIFEST_{{date:%Y%m%d}}.json
format: csv
compression: none
delimiter: ";"
encoding: latin-1
date_format: "%d/%m/%Y"
known_at: manifest
columns:
  security_id: Code FIGI
  ticker: Mnémo
  valid_date: Date de séance
  currency: Devise
  open:
    sql: "TRY_CAST(replace(Ouverture, ',', '.') AS DOUBLE)"
  high:
    sql: "TRY_CAST(replace(\\"Plus haut\\", ',', '.') AS DOUBLE)"
  low:
    sql: "TRY_CAST(replace(\\"Plus bas\\", ',', '.') AS DOUBLE)"
  close:
    sql: "TRY_CAST(replace(\\"Clôture\\", ',', '.') AS DOUBLE)"
  volume: Volume
ignore_columns: [Place]
"""

FEEDS = {
    "acme_security_master.yaml": ACME_SECURITY_MASTER,
    "acme_corporate_actions.yaml": ACME_CORPORATE_ACTIONS,
    "acme_prices.yaml": ACME_PRICES,
}
FEED_NAMES = ("acme_security_master", "acme_corporate_actions", "acme_prices")


def test_the_guide_shows_exactly_these_feed_files() -> None:
    """docs/bring-your-own-vendor.md's worked example is what this test runs."""
    guide = (REPO / "docs" / "bring-your-own-vendor.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    shown = [b for b in blocks if b.startswith("# ACME")]
    assert shown == [text.format(root="") for text in FEEDS.values()]


@dataclass(frozen=True)
class Vendor:
    sshd: Sshd
    truth: ForeignVendorTruth
    env: dict[str, str]  # the user's shell: feeds folder, connection, lake, Airflow home
    work: Path


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vendor]:
    work = tmp_path_factory.mktemp("byov")
    try:
        with run_sshd(work / "sshd") as sshd:
            truth = write_foreign_vendor(sshd.root)
            feeds = work / "feeds"
            feeds.mkdir()
            root = "" if sshd.chrooted else str(sshd.root)
            for name, text in FEEDS.items():
                (feeds / name).write_text(text.format(root=root), encoding="utf-8")
            base = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("ALPHAFACTORY_", "AIRFLOW"))
            }
            env = {
                **base,
                "PYTHONPATH": str(REPO),
                "ALPHAFACTORY_FEEDS_DIR": str(feeds),
                "ALPHAFACTORY_SHIPPED_FEEDS": "false",
                "AIRFLOW_CONN_SFTP_ACME": json.dumps(sshd.connection()),
                "ALPHAFACTORY_LAKE_ROOT": str(work / "lake"),
                "ALPHAFACTORY_AIRFLOW_HOME": str(work / "airflow"),
                "ALPHAFACTORY_INGEST_POKE_SECONDS": "1",
                "ALPHAFACTORY_INGEST_DEADLINE_SECONDS": "120",
            }
            yield Vendor(sshd, truth, env, work)
    except SshdUnavailable as exc:
        pytest.skip(str(exc))


def alphafactory(
    vendor: Vendor, *args: str, timeout: float = 1200, **env: str
) -> subprocess.CompletedProcess[str]:
    """``alphafactory <args>`` in the user's shell (this worktree's code)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", *args],
        env={**vendor.env, **env, "COLUMNS": "200"},
        cwd=vendor.work,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(
        f"alphafactory {' '.join(args)}: exit {proc.returncode} in {time.perf_counter() - started:.1f}s"
    )
    return proc


def _rows(lake: Lake, table: str) -> int:
    return 0 if lake.table(table) is None else lake.dataset(table).count_rows()


def _statuses(lake: Lake) -> set[str]:
    runs = lake.dataset("ingest_runs").to_table(columns=["feed", "status"])
    assert set(runs["feed"].to_pylist()) == set(FEED_NAMES)
    return set(runs["status"].to_pylist())


@pytest.fixture(scope="module")
def backfilled(vendor: Vendor) -> Lake:
    """The whole history through ``alphafactory ingest backfill``."""
    sessions = vendor.truth.sessions
    proc = alphafactory(
        vendor,
        "ingest",
        "backfill",
        "--start",
        sessions[0].isoformat(),
        "--end",
        sessions[-1].isoformat(),
        "--workers",
        "2",
        "--backdate",
        "--reason",
        "test: the vendor's history as published",
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return Lake(vendor.env["ALPHAFACTORY_LAKE_ROOT"])


def test_backfill_loads_the_whole_history_with_nothing_quarantined(
    vendor: Vendor, backfilled: Lake
) -> None:
    lake, truth = backfilled, vendor.truth
    assert _rows(lake, "quarantine") == 0
    assert _statuses(lake) <= {"loaded", "warned"}
    # every delivered row, each exactly once (nothing lost, nothing doubled)
    assert _rows(lake, "prices") == truth.price_rows
    assert _rows(lake, "corporate_actions") == len(truth.splits) + len(truth.dividends)
    assert _rows(lake, "security_master") == len(truth.ids) + 1  # + the delisting
    prices = lake.as_of("prices", known_at=LATEST, valid_at=(truth.sessions[0], truth.sessions[-1]))
    assert prices.num_rows == truth.price_rows
    # knowledge time: the manifest's published_at of the row's own folder
    day = truth.sessions[100]
    one = prices.filter(pc.field("valid_date") == day)
    assert set(one["known_at"].to_pylist()) == {truth.published_at[day]}
    # the bytes came from OpenSSH, with the user's key, and landed unchanged in the raw zone
    assert "Accepted publickey" in (vendor.work / "sshd" / "sshd.log").read_text()
    name = f"EOD_{day:%Y%m%d}.csv"
    (raw,) = lake.history("raw_manifest", {"feed": "acme_prices", "file_name": name}).to_pylist()
    served = vendor.sshd.root / "outgoing" / f"{day:%Y%m%d}" / name
    assert Path(raw["uri"].removeprefix("file://")).read_bytes() == served.read_bytes()
    # vendor values, as written: FIGI ids, raw closes with a decimal comma
    wide = prices.to_pandas().pivot(index="valid_date", columns="security_id", values="close")
    wide.index = pd.DatetimeIndex(wide.index)
    assert sorted(wide.columns) == sorted(truth.ids)
    expected = truth.close.reindex(index=wide.index, columns=wide.columns)
    assert np.array_equal(wide.to_numpy(), expected.to_numpy(), equal_nan=True)


def test_na_is_a_ticker_and_latin1_text_survives(vendor: Vendor, backfilled: Lake) -> None:
    truth, lake = vendor.truth, backfilled
    sid = truth.na_security
    prices = lake.as_of("prices", known_at=LATEST, valid_at=truth.sessions[-1])
    tickers = dict(
        zip(prices["security_id"].to_pylist(), prices["ticker"].to_pylist(), strict=True)
    )
    assert tickers[sid] == "NA"
    assert None not in tickers.values()
    master = lake.as_of("security_master", known_at=LATEST, valid_at=truth.sessions[0])
    rows = {r["security_id"]: r for r in master.to_pylist()}
    assert rows[sid]["ticker"] == "NA"
    assert {r["name"] for r in rows.values()} == set(truth.names.values())  # "Société Lumière"
    assert {r["exchange"] for r in rows.values()} == {"XNYS", "XNAS"}


def _at(frame: pd.DataFrame, day: dt.date, sid: str) -> float:
    """The value of ``frame`` (sessions × securities) on ``day`` for ``sid``."""
    i = int(frame.index.get_indexer(pd.DatetimeIndex([pd.Timestamp(day)]))[0])
    j = int(frame.columns.get_indexer(pd.Index([sid]))[0])
    assert i >= 0 and j >= 0, (day, sid)
    return float(frame.to_numpy(dtype=float)[i, j])


def _event_days(truth: ForeignVendorTruth) -> list[tuple[str, dt.date, str]]:
    double_sid, double_day = truth.double_dividend
    return [
        *((s.security_id, s.ex_date, f"split {s.new}:{s.old}") for s in truth.splits),
        (double_sid, double_day, "regular + special dividend"),
        (truth.delisting.security_id, truth.delisting.last_session, "delisting"),
    ]


def test_total_returns_equal_the_independent_series(vendor: Vendor, backfilled: Lake) -> None:
    from pipelines.pit.lake_panel import build_panel
    from pipelines.pit.snapshot import load_snapshot

    truth, lake = vendor.truth, backfilled
    expected = truth.total_return
    # the two dividends of one ex-date both count, the split ratio multiplies the close
    double_sid, double_day = truth.double_dividend
    assert (
        sum(d.ex_date == double_day and d.security_id == double_sid for d in truth.dividends) == 2
    )

    # the research panel: every row as known at its own session's cutoff
    panel = build_panel(lake, truth.sessions[0], truth.sessions[-1])
    ret = panel.fields["ret"].reindex(index=expected.index, columns=expected.columns)
    assert np.array_equal(np.isnan(ret.to_numpy()), np.isnan(expected.to_numpy()))
    diff = np.nanmax(np.abs(ret.to_numpy() - expected.to_numpy()))
    assert diff < TOLERANCE, diff
    after = truth.sessions[truth.sessions.index(truth.delisting.last_session) + 1]
    assert np.isnan(_at(ret, after, truth.delisting.security_id))

    # the daily loop's snapshot, as known at each event session's decision cutoff
    for sid, day, what in _event_days(truth):
        want = _at(expected, day, sid)
        assert abs(_at(ret, day, sid) - want) < TOLERANCE, (what, day)
        snap = load_snapshot(lake, day, lookback=5)
        assert snap.known_at == decision_cutoff(day)
        got = _at(snap.returns, day, sid)
        assert abs(got - want) < TOLERANCE, (what, day, got, want)
        # the event is visible: a split or a dividend moves the raw close far from the return
        if what != "delisting":
            raw = _at(truth.close, day, sid) / _at(truth.close.shift(1), day, sid) - 1.0
            assert abs(raw - want) > 0.01, what


def test_vendor_ingest_through_airflow(vendor: Vendor, backfilled: Lake) -> None:
    truth = vendor.truth
    fresh = str(vendor.work / "lake-airflow")
    # A fresh lake, session by session from the first (its file holds the whole master).
    for day in truth.sessions[:2]:
        proc = alphafactory(
            vendor,
            "airflow",
            "dags-test",
            "vendor_ingest",
            day.isoformat(),
            "--backdate-reason",
            "test: past sessions as published",
            ALPHAFACTORY_LAKE_ROOT=fresh,
        )
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        for feed in FEED_NAMES:
            assert f"wait_{feed}: success" in proc.stdout
            assert f"ingest_{feed}: success" in proc.stdout
        assert "vendor_prices" not in proc.stdout  # the shipped feeds are off
    lake = Lake(fresh)
    assert _rows(lake, "quarantine") == 0
    assert _statuses(lake) <= {"loaded", "warned"}
    got = lake.as_of("prices", known_at=LATEST, valid_at=(truth.sessions[0], truth.sessions[1]))
    assert got.num_rows == _rows(lake, "prices") == 2 * len(truth.ids)
    assert set(got["known_at"].to_pylist()) == {truth.published_at[d] for d in truth.sessions[:2]}

    # The backfilled lake: the DAG run of its last session finds everything loaded.
    last = truth.sessions[-1]
    versions = {t: backfilled.table(t).version() for t in ("prices", "corporate_actions")}  # type: ignore[union-attr]
    proc = alphafactory(
        vendor,
        "airflow",
        "dags-test",
        "vendor_ingest",
        last.isoformat(),
        "--backdate-reason",
        "test",
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    lake = Lake(vendor.env["ALPHAFACTORY_LAKE_ROOT"])
    assert {t: lake.table(t).version() for t in versions} == versions  # type: ignore[union-attr]
    assert _rows(lake, "prices") == truth.price_rows
    assert _rows(lake, "quarantine") == 0


def test_research_scores_targets_and_report_without_fundamentals_or_sentiment(
    vendor: Vendor, backfilled: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrain at the session before the last (``alphafactory research retrain``), score
    the last session (``alphafactory research score``), then the daily loop for it (as the
    ``portfolio_rebalance`` DAG runs it, auto-approved): targets, orders and the PM report.
    """
    from pipelines.config import get_settings
    from pipelines.daily.config import DailyConfig
    from pipelines.daily.loop import run_day
    from pipelines.daily.stages import paper_broker
    from pipelines.report import pm_report_uri

    truth, lake = vendor.truth, backfilled
    assert lake.table("fundamentals") is None and lake.table("sentiment") is None
    last, train_at = truth.sessions[-1], truth.sessions[-2]
    proc = alphafactory(vendor, "research", "retrain", train_at.isoformat())
    # Features needing fundamentals or sentiment are skipped with a line saying why.
    assert "skipped" in proc.stdout + proc.stderr, proc.stdout[-2000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = alphafactory(vendor, "research", "score", last.isoformat())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    listed = len(truth.ids) - 1  # one name delisted before the last session
    scores = lake.as_of("alpha_scores", known_at=LATEST, valid_at=last)
    assert sorted(scores["security_id"].to_pylist()) == sorted(
        set(truth.ids) - {truth.delisting.security_id}
    )
    assert scores.num_rows == listed

    for key, value in vendor.env.items():
        if key.startswith(("ALPHAFACTORY_", "AIRFLOW_CONN_")):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    config = DailyConfig.load(REPO / "pipelines/daily/configs/demo.yaml")
    broker = paper_broker(lake, config, known_at=decision_cutoff(last))
    out = run_day(lake, last, config, broker, write_report=True)
    assert out.outputs["research"]["securities"] == listed
    assert out.outputs["optimize"]["status"] == "optimal"
    assert out.outputs["execute"]["submitted"] > 0
    targets = lake.as_of("target_portfolios", known_at=LATEST, valid_at=last)
    assert targets.num_rows > 0
    report = Path(pm_report_uri(lake, config.portfolio_id, last).removeprefix("file://"))
    assert out.outputs["report"] == str(report)
    assert report.is_file() and report.stat().st_size > 0
