"""The model registry in the lake: ``model_registry`` rows and ``model_champion`` decisions.

A model row carries the artifact (:meth:`models.base.Model.to_artifact`) and the full :class:`ModelRecord` JSON,
plus ``panel_start`` so the training panel can be rebuilt. It is written with
``valid_date`` = fit session and ``known_at`` = that session's research cutoff, so
``Lake.as_of`` answers "which models existed, and which was champion, at T" — a backtest
re-run for an old session scores with the champion of that session.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd

from models.record import ModelRecord
from pipelines.errors import AlphaFactoryError
from pipelines.lake import Lake
from pipelines.timeline import ALL_DATES, LATEST

SLOT = "alpha"


class ModelNotFoundError(AlphaFactoryError, KeyError):
    """A model id that is not in the lake's ``model_registry`` (as known then)."""


_EPOCH, _LAST_DATE = ALL_DATES


def _date(value: str | None) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


def save_model(
    lake: Lake, record: ModelRecord, fit_day: dt.date, panel_start: dt.date, known_at: dt.datetime
) -> None:
    """Append the record (idempotent: the batch id is the model id and fit day)."""
    row = {
        "model_id": record.model_id,
        "created_at": pd.Timestamp(record.created_at),
        "panel_start": panel_start,
        "train_start": _date(record.train_start),
        "train_end": _date(record.train_end),
        "valid_start": _date(record.valid_start),
        "valid_end": _date(record.valid_end),
        "features": json.dumps(list(record.features)),
        "label": record.label,
        "params": json.dumps(record.params, sort_keys=True, default=str),
        "metrics": json.dumps(record.metrics, sort_keys=True),
        "input_versions": json.dumps(record.input_versions, sort_keys=True),
        "booster": record.booster,
        "record": record.to_json(),
        "valid_date": fit_day,
        "known_at": known_at,
    }
    lake.write(
        "model_registry",
        pd.DataFrame([row]),
        batch_id=f"model_registry:{record.model_id}:{fit_day.isoformat()}",
    )


@dataclass(frozen=True)
class StoredModel:
    """A registry row: the record plus where it was fit from."""

    record: ModelRecord
    fit_day: dt.date
    panel_start: dt.date


def _rows(lake: Lake, known_at: dt.datetime, day: dt.date) -> pd.DataFrame:
    if lake.table("model_registry") is None:
        return pd.DataFrame()
    return lake.as_of("model_registry", known_at=known_at, valid_at=(_EPOCH, day)).to_pandas()


def load_model(lake: Lake, model_id: str, known_at: dt.datetime | None = None) -> StoredModel:
    """The registry entry of ``model_id`` (known by ``known_at``); KeyError if absent."""
    rows = _rows(lake, known_at or LATEST, _LAST_DATE)
    hit = rows[rows["model_id"] == model_id] if len(rows) else rows
    if not len(hit):
        raise ModelNotFoundError(f"model {model_id!r} is not in the lake's model_registry")
    last = hit.iloc[-1]
    return StoredModel(
        record=ModelRecord.from_json(str(last["record"])),
        fit_day=pd.Timestamp(last["valid_date"]).date(),
        panel_start=pd.Timestamp(last["panel_start"]).date(),
    )


def list_models(lake: Lake, known_at: dt.datetime, day: dt.date) -> list[StoredModel]:
    """Every model fit on or before ``day`` and known at ``known_at``, oldest first."""
    rows = _rows(lake, known_at, day)
    if rows.empty:  # no model table yet (a price-only lake before its first retrain)
        return []
    return [
        StoredModel(
            ModelRecord.from_json(str(r["record"])),
            pd.Timestamp(r["valid_date"]).date(),
            pd.Timestamp(r["panel_start"]).date(),
        )
        for _, r in rows.sort_values(["valid_date", "model_id"]).iterrows()
    ]


def champion_id(lake: Lake, known_at: dt.datetime, day: dt.date, slot: str = SLOT) -> str | None:
    """The champion after the latest decision on or before ``day`` known at ``known_at``."""
    if lake.table("model_champion") is None:
        return None
    rows = lake.as_of("model_champion", known_at=known_at, valid_at=(_EPOCH, day)).to_pandas()
    rows = rows[rows["slot"] == slot]
    if not len(rows):
        return None
    return str(rows.sort_values("valid_date").iloc[-1]["model_id"])


def record_decision(
    lake: Lake,
    day: dt.date,
    known_at: dt.datetime,
    *,
    champion: str,
    challenger: str,
    promoted: bool,
    reason: str,
    challenger_metric: float | None,
    champion_metric: float | None,
    slot: str = SLOT,
) -> None:
    """Append one champion/challenger decision effective from ``day`` (idempotent).

    ``known_at`` is when the decision was made (the fit session's cutoff).
    """
    row = {
        "slot": slot,
        "model_id": champion,
        "challenger_id": challenger,
        "promoted": promoted,
        "reason": reason,
        "challenger_metric": challenger_metric,
        "champion_metric": champion_metric,
        "valid_date": day,
        "known_at": known_at,
    }
    lake.write(
        "model_champion",
        pd.DataFrame([row]),
        batch_id=f"model_champion:{slot}:{day.isoformat()}:{challenger}",
    )
