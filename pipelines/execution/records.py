"""Reading and appending execution rows in the lake, idempotently.

Every append goes through :func:`append_new`: rows whose key is already stored for that
trade date are dropped, and the rest are written under a batch id derived from their keys,
so a retried task, a re-run day or two racing workers never duplicate a fact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake import get_table
from pipelines.lake.interface import Store
from pipelines.timeline import LATEST

# Reads that must see everything we ever recorded use a knowledge time far in the future
# (callers may stamp rows with a simulated clock that runs ahead of the wall clock).


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def short_hash(*parts: object, n: int = 16) -> str:
    """First ``n`` hex digits of sha256 over the ``|``-joined parts (stable across runs)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:n]


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON (stable bytes for the same content)."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def read_day(
    lake: Store,
    table: str,
    trade_date: dt.date | tuple[dt.date, dt.date],
    portfolio_id: str | None = None,
    *,
    known_at: dt.datetime = LATEST,
) -> pd.DataFrame:
    """Rows of ``table`` for a trade date (or inclusive date range), optionally one portfolio,
    as known at ``known_at`` (latest version per key); an empty frame with the table's
    columns when there are none."""
    spec = get_table(table)
    flt = None
    if portfolio_id is not None:
        flt = pc.field("portfolio_id") == pa.scalar(portfolio_id, pa.string())
    data = lake.as_of(table, known_at=known_at, valid_at=trade_date, filter=flt)
    frame = data.to_pandas()
    if frame.empty:
        return _empty(table)
    frame["valid_date"] = pd.to_datetime(frame["valid_date"]).dt.date
    keep = [f.name for f in spec.input_fields]
    return frame[keep].reset_index(drop=True)


def stored_keys(
    lake: Store, table: str, trade_date: dt.date, *, known_at: dt.datetime = LATEST
) -> set[tuple[str, ...]]:
    """The keys (as strings) of the rows of ``table`` stored for ``trade_date``, every
    portfolio: what :func:`read_day` would return, reading only the key columns (an
    append checks its rows against them; the audit's rows carry large JSON details)."""
    spec = get_table(table)
    data = lake.as_of(table, known_at=known_at, valid_at=trade_date, columns=list(spec.key))
    if not data.num_rows:
        return set()
    columns = [[str(v) for v in data.column(k).to_pylist()] for k in spec.key]
    return set(zip(*columns, strict=True))


def _empty(table: str) -> pd.DataFrame:
    spec = get_table(table)
    return spec.arrow_schema().empty_table().select([f.name for f in spec.input_fields]).to_pandas()


def append_new(
    lake: Store,
    table: str,
    rows: pd.DataFrame,
    trade_date: dt.date,
    *,
    known_at: dt.datetime,
    existing: pd.DataFrame | None = None,
) -> int:
    """Append the rows of ``rows`` whose key is not yet stored for ``trade_date``.

    ``rows`` carries the table's business columns (``valid_date``/``known_at`` optional:
    they default to ``trade_date``/``known_at``). Returns the number of rows written. The
    batch id hashes the new keys, so the same rows written again (even concurrently) add
    nothing.
    """
    if rows.empty:
        return 0
    spec = get_table(table)
    frame = rows.copy()
    if "valid_date" not in frame:
        frame["valid_date"] = trade_date
    if "known_at" not in frame:
        frame["known_at"] = known_at
    frame = frame.drop_duplicates(subset=list(spec.key), keep="first")
    if existing is not None:
        have = (
            set(map(tuple, existing[list(spec.key)].astype(str).to_numpy().tolist()))
            if not existing.empty
            else set()
        )
    else:
        have = stored_keys(lake, table, trade_date)
    if have:
        mine = list(map(tuple, frame[list(spec.key)].astype(str).to_numpy().tolist()))
        frame = frame[[k not in have for k in mine]]
    if frame.empty:
        return 0
    keys = sorted("/".join(map(str, k)) for k in frame[list(spec.key)].to_numpy().tolist())
    batch_id = f"{table}:{trade_date.isoformat()}:{short_hash(*keys, n=32)}"
    frame["known_at"] = pd.to_datetime(frame["known_at"], utc=True)
    result = lake.write(table, frame[[f.name for f in spec.input_fields]], batch_id=batch_id)
    return result.rows if result.written else 0


def audit_rows(
    portfolio_id: str,
    stage: str,
    events: list[dict[str, Any]],
) -> pd.DataFrame:
    """``execution_audit`` rows. Each event dict has ``event`` and optionally
    ``client_order_id``, ``security_id``, ``detail`` (JSON-able) and ``event_id`` (default:
    a hash of stage, event, order, security and detail — the same fact hashes the same)."""
    out = []
    for e in events:
        detail = to_json(e.get("detail", {}))
        cid = e.get("client_order_id")
        sid = e.get("security_id")
        eid = e.get("event_id") or short_hash(
            portfolio_id, stage, e["event"], cid, sid, detail, n=24
        )
        out.append(
            {
                "event_id": f"{stage}:{eid}",
                "portfolio_id": portfolio_id,
                "stage": stage,
                "event": e["event"],
                "client_order_id": cid,
                "security_id": sid,
                "detail": detail,
            }
        )
    return pd.DataFrame(
        out,
        columns=[
            "event_id",
            "portfolio_id",
            "stage",
            "event",
            "client_order_id",
            "security_id",
            "detail",
        ],
    )


def write_audit(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    stage: str,
    events: list[dict[str, Any]],
    *,
    known_at: dt.datetime,
) -> int:
    """Append audit events (idempotent per event id)."""
    if not events:
        return 0
    return append_new(
        lake,
        "execution_audit",
        audit_rows(portfolio_id, stage, events),
        trade_date,
        known_at=known_at,
    )
