"""``alphafactory audit leaks`` on a small simulated lake: clean, then with two planted leaks.

The daily research stages run for five sessions on the lake (as the daily loop would); the
audit then reports none. Two leaks are planted and each is named with its stage, table,
first key and cause: a price correction loaded with ``lake load --backdate --reason`` (known
"before" the cutoff of an audited session, but loaded after its outputs were computed),
and a feature module on ``ALPHAFACTORY_FEATURE_PATHS`` whose row ``t`` reads row ``t + 1``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipelines.cli.audit import LEAK_EXIT_CODE
from pipelines.cli.main import app
from pipelines.config import get_settings
from pipelines.features.registry import unregister
from pipelines.lake import Lake
from pipelines.research.stages import (
    ResearchContext,
    compute_features,
    compute_labels,
    compute_universe,
)
from pipelines.timeline import trading_calendar

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

START, END = dt.date(2019, 9, 3), dt.date(2020, 3, 31)
AUDITED = (dt.date(2020, 2, 3), dt.date(2020, 2, 7))
PEEK = "peek_ahead"
PEEK_MODULE = f'''
import numpy as np

from pipelines.features.registry import feature


@feature(name="{PEEK}", inputs=["close"], lookback=1)
def peek_ahead(panel):
    """Tomorrow's return: row t reads row t + 1 (a planted look-ahead)."""
    close = panel.array("close")
    out = np.full_like(close, np.nan)
    out[:-1] = close[1:] / close[:-1] - 1.0
    return out
'''

runner = CliRunner()


def _audit(*extra: str) -> tuple[int, dict[str, Any]]:
    args = ["audit", "leaks", "--start", str(AUDITED[0]), "--end", str(AUDITED[1]), "--json"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code in (0, LEAK_EXIT_CODE), result.output
    return result.exit_code, json.loads(result.stdout)


def _comparison(report: dict[str, Any], stage: str, against: str) -> dict[str, Any]:
    (found,) = [c for c in report["comparisons"] if c["stage"] == stage and c["against"] == against]
    return found


def test_audit_names_a_backdated_fact_and_a_feature_reading_ahead(
    tmp_path: Path, make_simulated_lake: Callable[..., Lake], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = make_simulated_lake(universe=30, start=START, end=END)
    sessions = trading_calendar().sessions(*AUDITED)
    for day in sessions:  # what the daily loop wrote for these sessions
        ctx = ResearchContext(lake, day)
        compute_universe(ctx)
        compute_features(ctx)
        compute_labels(ctx)
    versions = {t: len(lake.versions(t)) for t in ("universe", "features", "labels", "prices")}

    # clean: every stage identical to the lake and to hindsight
    code, report = _audit("--no-record")
    assert report["verdict"] == "clean", "\n".join(
        c["stage"] + " " + json.dumps(c["first"]) for c in report["comparisons"]
    )
    assert code == 0 and report["sessions"] == 5
    by_stage = {(c["stage"], c["against"]): c for c in report["comparisons"]}
    assert all(
        c["sessions"] == 5 and c["rows"] > 0 for k, c in by_stage.items() if k[0] != "scores"
    )
    # no model was trained on this lake: nothing to score, said so
    assert by_stage[("scores", "lake")]["note"] == "sessions without a champion skipped"
    # the audit's recomputations never reached the lake
    assert {t: len(lake.versions(t)) for t in versions} == versions

    # (2) a correction of one close, loaded now but backdated to a minute after the print
    day = sessions[1]
    security = str(lake.as_of("universe", known_at=_cutoff(day), valid_at=day)["security_id"][3])
    row = lake.as_of(
        "prices",
        known_at=_cutoff(day),
        valid_at=day,
        filter=_eq("security_id", security),
    )
    printed = row["known_at"][0].as_py()
    fixed = row.select(
        [
            c
            for c in row.column_names
            if not c.startswith("_") and c not in ("known_at", "valid_year")
        ]
    ).to_pandas()
    fixed["close"] = fixed["close"] * 1.07
    path = tmp_path / "fix.parquet"
    pq.write_table(_arrow(fixed), path)
    when = (printed + dt.timedelta(minutes=1)).isoformat()
    loaded = runner.invoke(
        app,
        [
            "lake",
            "load",
            "prices",
            str(path),
            "--known-at",
            when,
            "--backdate",
            "--reason",
            "vendor correction",
        ],
    )
    assert loaded.exit_code == 0, loaded.output

    # (1) a feature that reads one row ahead, added the way a quant adds one
    sandbox = tmp_path / "features"
    sandbox.mkdir()
    (sandbox / "peek.py").write_text(PEEK_MODULE)
    monkeypatch.setenv("ALPHAFACTORY_FEATURE_PATHS", str(sandbox))
    get_settings.cache_clear()
    try:
        code, report = _audit()
    finally:
        unregister(PEEK)

    assert code == LEAK_EXIT_CODE
    features_lake = _comparison(report, "features", "lake")
    first = features_lake["first"]
    assert first["key"]["valid_date"] == str(day)
    assert first["key"]["security_id"] == security
    assert first["cause"]["kind"] == "backdated"
    assert first["cause"]["table"] == "prices"
    assert first["cause"]["key"] == {"security_id": security, "valid_date": str(day)}
    universe_lake = _comparison(report, "universe", "lake")
    assert universe_lake["first"]["key"] == {"valid_date": str(day), "security_id": security}
    assert universe_lake["first"]["cause"]["table"] == "prices"

    hindsight = _comparison(report, "features", "hindsight")["first"]
    assert hindsight["key"]["valid_date"] == str(sessions[0])
    assert hindsight["key"]["feature"] == PEEK
    assert hindsight["recomputed"] == "absent"
    assert hindsight["cause"]["kind"] == "reads_ahead"
    assert hindsight["cause"]["key"] == {"feature": PEEK}
    # the hindsight history reads the backdated close as known at its session: no leak there
    assert _comparison(report, "universe", "hindsight")["identical"]

    # the verdict is in the lake for `alphafactory status`
    status = runner.invoke(app, ["status", "--no-runs"])
    assert status.exit_code == 0, status.output
    assert "leak audit: last" in status.output and "leaks (" in status.output


def _cutoff(day: dt.date) -> dt.datetime:
    from pipelines.timeline import decision_cutoff

    return decision_cutoff(day)


def _eq(column: str, value: str) -> Any:
    import pyarrow.compute as pc

    return pc.field(column) == value


def _arrow(frame: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)
