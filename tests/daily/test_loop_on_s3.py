"""The daily loop with its lake on S3 (moto's S3-compatible server on loopback): the paper
account, the stages' state and the PM report all live under the lake's S3 root."""

from __future__ import annotations

import datetime as dt
import math

import boto3
import pytest

from pipelines.config import Settings
from pipelines.daily.config import DailyConfig
from pipelines.daily.loop import run_day
from pipelines.daily.stages import paper_broker
from pipelines.execution.records import read_day
from pipelines.lake import Lake
from pipelines.lake.stage_state import StageState
from pipelines.timeline import decision_cutoff

pytestmark = pytest.mark.integration
DAYS = (dt.date(2024, 4, 25), dt.date(2024, 4, 26))


def test_two_sessions_on_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.testing.lakes import simulated_lake

    # Test-only credentials for the local fake; real ones come from the environment.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="loop")
    settings = Settings(
        lake_root="s3://loop/alpha", s3_endpoint_url=s3_endpoint, s3_allow_http=True
    )
    lake = simulated_lake(
        settings.lake_root,
        universe=15,
        start=dt.date(2024, 1, 2),
        end=DAYS[-1],
        signal=0.3,
        seed=3,
        storage_options=settings.storage_options(),
    )
    config = DailyConfig(lookback_sessions=40)
    broker = paper_broker(lake, config)
    assert broker.account.location == "s3://loop/alpha/broker/paper-main.json"
    for day in DAYS:
        broker.prices.known_at = decision_cutoff(day)  # type: ignore[attr-defined]
        out = run_day(lake, day, config, broker)
        assert math.isfinite(out.outputs["reconcile"]["nav"])
        assert out.outputs["report"] == f"s3://loop/alpha/reports/pm-report-main-{day}.html"
    assert len(read_day(lake, "fills", DAYS[-1], config.portfolio_id)) > 0
    other = Lake(settings.lake_root, settings.storage_options())  # another worker
    assert StageState(other, config.portfolio_id, DAYS[-1]).get("targets").optimization.ok
    for key in ("alpha/broker/paper-main.json", f"alpha/reports/pm-report-main-{DAYS[-1]}.html"):
        assert client.head_object(Bucket="loop", Key=key)["ContentLength"] > 0, key
