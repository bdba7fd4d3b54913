"""Look-ahead on the lake: perturb everything knowable after D, nothing up to D may move.

Two lakes from the same simulated vendor: A as published, B with every fact published
after D's research cutoff rewritten (prices, sentiment, fundamentals, corporate actions,
sector) plus adversarial late facts about the past (a 4:1 split announced after D with an
ex-date before D, restatements of every reported period, price corrections, a retroactive
delisting). Universe, every feature, labels usable at D, the model trained at D0 <= D and
the scores of dates <= D must be bit-identical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.base import ModelSpec
from models.walk_forward import run_walk_forward
from pipelines.features.registry import compute_features, registry
from pipelines.lake import Lake
from pipelines.pit.dataset import build_dataset
from pipelines.pit.labels import make_label
from pipelines.pit.lake_panel import build_panel
from pipelines.pit.panel import Panel
from pipelines.pit.splits import walk_forward_splits
from pipelines.research import stages
from pipelines.research.stages import ResearchContext
from pipelines.testing.lakes import market_frames, perturb_after, simulated_lake, simulated_market
from pipelines.testing.lookahead import frames_equal
from pipelines.timeline import decision_cutoff, trading_calendar
from tests.research.lake_helpers import SMALL_CONFIG, SMALL_PARAMS

pytestmark = pytest.mark.unit

START, END = dt.date(2020, 1, 2), dt.date(2021, 12, 31)
PANEL_START = dt.date(2020, 3, 2)
D = dt.date(2021, 9, 1)
D0 = dt.date(2021, 8, 25)  # retrain session (a Wednesday, inside the week before D)
FEW = ("sentiment_5d", "reversal_5d", "book_to_price", "volatility_21d", "roe")
CONFIG = dataclasses.replace(SMALL_CONFIG, features=FEW)


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, Lake]:
    root = tmp_path_factory.mktemp("lookahead")
    a = simulated_lake(root / "a", universe=60, start=START, end=END)
    b = simulated_lake(
        root / "b",
        universe=60,
        start=START,
        end=END,
        perturb=lambda frames: perturb_after(frames, decision_cutoff(D), seed=5),
    )
    return a, b


@pytest.fixture(scope="module")
def panels(lakes: tuple[Lake, Lake]) -> tuple[Panel, Panel]:
    a, b = lakes
    return build_panel(a, PANEL_START, END), build_panel(b, PANEL_START, END)


def _upto(frame: pd.DataFrame, day: dt.date = D) -> pd.DataFrame:
    return frame.loc[: pd.Timestamp(day)]


def test_panel_rows_up_to_d_are_bit_identical(panels: tuple[Panel, Panel]) -> None:
    pa_, pb = panels
    assert pa_.securities.equals(pb.securities)
    for name in pa_.field_names:
        fa, fb = _upto(pa_.field(name)), _upto(pb.field(name))
        if name == "sector":
            assert fa.equals(fb), name
        else:
            assert frames_equal(fa.astype(float), fb.astype(float)), name
    # the perturbation bites after D: prices, fundamentals and membership all move
    after = slice(pd.Timestamp(D) + pd.Timedelta(days=1), None)
    for name in ("adj_close", "book_equity", "net_income", "sentiment", "in_universe"):
        a_tail = pa_.field(name).loc[after].astype(float)
        b_tail = pb.field(name).loc[after].astype(float)
        assert not frames_equal(a_tail, b_tail), name


def test_adjusted_returns_and_universe_match_the_vendor_truth(
    panels: tuple[Panel, Panel],
) -> None:
    """Splits and dividends known at each row are applied: ret is the true total return."""
    panel = panels[0]
    m = simulated_market(60, START, END)
    rows = [m.sessions.index(d.date()) for d in panel.dates]
    cols = [list(m.security_ids).index(s) for s in panel.securities]
    truth = m.total_return[np.ix_(rows, cols)].astype(np.float64)
    ret = panel.array("ret")
    ok = np.isfinite(ret)
    assert ok.sum() > 0.8 * np.isfinite(truth).sum()
    # raw prices are rounded to 4 decimals by the vendor; nothing else may differ
    assert np.nanmax(np.abs(ret[ok] - truth[ok])) < 1e-3
    splits = frames_split_count(market_frames(60, START, END))
    assert splits > 0
    # survivorship-free: names that delist later are in the universe while they trade
    universe = panel.universe()
    last = m.last_idx[cols]
    gone = [j for j, t in enumerate(last) if rows[0] + 30 < t < rows[-1] - 1]
    assert gone and all(universe[: last[j] - rows[0] - 1, j].any() for j in gone)
    assert not any(universe[last[j] - rows[0] + 1 :, j].any() for j in gone)


def frames_split_count(frames: dict[str, pd.DataFrame]) -> int:
    actions = frames["corporate_actions"]
    return int((actions["action_type"] == "split").sum())


def test_features_and_usable_labels_up_to_d_are_bit_identical(
    panels: tuple[Panel, Panel],
) -> None:
    pa_, pb = panels
    specs = registry()
    fa, fb = compute_features(None, pa_, specs), compute_features(None, pb, specs)
    assert len(fa) >= 20
    for name in fa:
        assert frames_equal(_upto(fa[name]), _upto(fb[name])), name
    for kind in ("raw", "market", "sector"):
        la = make_label(pa_, 5, kind).usable_at(pd.Timestamp(D))
        lb = make_label(pb, 5, kind).usable_at(pd.Timestamp(D))
        assert frames_equal(la, lb), kind
        assert np.isfinite(la.to_numpy()).sum() > 1000


def test_walk_forward_scores_up_to_d_are_bit_identical(panels: tuple[Panel, Panel]) -> None:
    names = list(FEW)
    spec = ModelSpec("lgbm", {**SMALL_PARAMS, "num_boost_round": 40, "early_stopping_rounds": 10})
    results = []
    for panel in panels:
        ds = build_dataset(panel, compute_features(names, panel), make_label(panel, 5, "market"))
        splits = walk_forward_splits(len(panel.dates), SMALL_CONFIG.walk_forward())
        fit_by_d = [s for s in splits if panel.dates[s.fit_position] <= pd.Timestamp(D)]
        results.append(run_walk_forward(ds, fit_by_d[-3:], spec))
    sa, sb = (r.scores[r.scores["date"] <= pd.Timestamp(D)] for r in results)
    assert len(sa) > 0
    pd.testing.assert_frame_equal(sa.reset_index(drop=True), sb.reset_index(drop=True))


def test_stage_outputs_up_to_d_are_bit_identical(lakes: tuple[Lake, Lake]) -> None:
    a, b = lakes
    out: list[dict[str, pd.DataFrame]] = []
    for lake in lakes:
        result = stages.retrain(ResearchContext(lake, D0, CONFIG))
        assert result.promoted
        next_day = trading_calendar().offset(D0, 1)
        out.append(
            {
                "model": pd.DataFrame({"id": [result.record.model_id]}),
                "universe": stages.compute_universe(ResearchContext(lake, D)),
                "features": stages.compute_features(ResearchContext(lake, D)),
                "score_next": stages.score_day(ResearchContext(lake, next_day)),
                "score_d": stages.score_day(ResearchContext(lake, D)),
            }
        )
    for key in out[0]:
        pd.testing.assert_frame_equal(out[0][key], out[1][key], check_exact=True, obj=key)
    # the model trained at D0 scores from the next session on, and is the one in alpha_scores
    assert set(out[0]["score_d"]["model_id"]) == {out[0]["model"]["id"].iloc[0]}
    with pytest.raises(stages.NoChampionError):
        stages.score_day(
            ResearchContext(a, D0)
        )  # its own fit session was scored before the decision
    # idempotent: re-running a day writes nothing new
    version = a.table("alpha_scores").version()  # type: ignore[union-attr]
    stages.score_day(ResearchContext(a, D))
    stages.compute_features(ResearchContext(a, D))
    assert a.table("alpha_scores").version() == version  # type: ignore[union-attr]
    # and the registry entry rebuilds the model bit for bit
    model_id = str(out[0]["model"]["id"].iloc[0])
    rebuilt = stages.rebuild_model(a, model_id, CONFIG)
    stored = stages.models_known(a, D)[-1].record
    assert stored.model_id == model_id and rebuilt.to_artifact() == stored.booster
    assert stored.inputs_hash and stored.inputs_known_at == decision_cutoff(D0).isoformat()
    assert b is not a


def test_diagnostics_and_report_cli(
    lakes: tuple[Lake, Lake], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pipelines.cli.main import app
    from pipelines.config import get_settings

    a, _ = lakes
    stages.retrain(ResearchContext(a, D0, CONFIG))  # same content as above: writes nothing new
    days = [trading_calendar().offset(D0, k) for k in (1, 2)]
    for day in days:
        stages.score_day(ResearchContext(a, day))
    # h = 1 matures for both score dates the day after the second; h = 5 for the first later
    rows = [
        stages.diagnose(ResearchContext(a, trading_calendar().offset(days[0], h))) for h in (2, 5)
    ]
    stored = pd.concat(rows, ignore_index=True)
    assert {"ic", "quantile"} <= set(stored["kind"])
    assert set(stored["horizon"]) >= {1, 5}
    assert {"Q1", "Q5", "Q5-Q1"} <= set(stored["bucket"])

    monkeypatch.setenv("ALPHAFACTORY_LAKE_ROOT", a.location.root)
    get_settings.cache_clear()
    out = tmp_path / "research.html"
    result = CliRunner().invoke(app, ["research", "report", "--out", str(out), "--horizon", "1"])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for section in (
        "Live scores: cumulative rank IC",
        "Live scores: IC decay",
        "Live scores: quantile returns",
        "Feature rank IC (each feature on its own)",
    ):
        assert section in html, section
    assert "Feature importance" in html and "sentiment_5d" in html
    assert html.count("data:image/png;base64,") >= 3
