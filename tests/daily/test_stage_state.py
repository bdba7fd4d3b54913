"""Stage state in the lake: the latest value wins, an identical re-run writes nothing, and a
value written on one "worker" (a fresh object, as another process would build) is read on
another — locally and on S3 (moto's S3-compatible server on loopback)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pandas as pd
import pytest

from pipelines.config import Settings
from pipelines.lake import Lake
from pipelines.lake.stage_state import MissingStageStateError, StageState, history
from pipelines.report.html import write_document
from pipelines.timeline import decision_cutoff

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 6, 3)


def _state(lake: Lake, day: dt.date = DAY) -> StageState:
    return StageState(lake, "p1", day, clock=lambda: decision_cutoff(day))


def test_latest_value_wins_and_reruns_write_nothing(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    frame = pd.DataFrame({"security_id": ["A", "B"], "score": [0.5, -0.5]})
    assert _state(lake).put("scores", frame)
    assert not _state(lake).put("scores", frame)  # same content: nothing new
    assert _state(lake).put("scores", {"x": 1})  # version 2
    assert _state(lake).put("scores", frame)  # back to the first value: version 3
    pd.testing.assert_frame_equal(_state(lake).get("scores"), frame)
    assert _state(lake).find("targets") is None
    assert _state(lake, DAY + dt.timedelta(days=1)).find("scores") is None
    with pytest.raises(MissingStageStateError, match="targets"):
        _state(lake).get("targets")
    versions = lake.history("stage_state", {"portfolio_id": "p1", "name": "scores"})
    assert sorted(versions.column("version").to_pylist()) == [1, 2, 3]


def test_history_reads_every_sessions_latest_value_oldest_first(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    later = DAY + dt.timedelta(days=1)
    assert _state(lake, later).put("mark", {"n": 2})
    assert _state(lake).put("mark", {"n": 1})
    assert _state(lake).put("mark", {"n": 10})  # the session's latest version counts
    assert _state(lake).put("other", {"n": 3})  # another name
    assert StageState(lake, "p2", DAY, clock=lambda: decision_cutoff(DAY)).put("mark", 4)
    assert history(lake, "p1", "mark") == [(DAY, {"n": 10}), (later, {"n": 2})]
    assert history(lake, "p3", "mark") == []


@pytest.mark.integration
def test_state_and_report_on_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Test-only credentials for the local fake; real ones come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="state")
    settings = Settings(
        lake_root="s3://state/alpha", s3_endpoint_url=s3_endpoint, s3_allow_http=True
    )
    lake = Lake(settings.lake_root, settings.storage_options())
    assert _state(lake).put("book", {"nav": 1.0})
    other = Lake(settings.lake_root, settings.storage_options())  # another worker
    assert _state(other).get("book") == {"nav": 1.0}
    uri = write_document("s3://state/alpha/reports/r.html", "<p>hi</p>", lake.location.options())
    assert uri == "s3://state/alpha/reports/r.html"
    body = client.get_object(Bucket="state", Key="alpha/reports/r.html")["Body"].read()
    assert body == b"<p>hi</p>"
