"""Reading and appending execution rows in the lake, idempotently.

Every append goes through :func:`append_new` (or :func:`append_records`, the same for a
list of records, or the audit's :func:`write_audits`, which write what it would): rows
whose key is already stored for that trade date are dropped, and the rest are written
under a batch id derived from their keys, so a retried task, a re-run day or two racing
workers never duplicate a fact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake import get_table
from pipelines.lake.interface import DayKeys, Store
from pipelines.lake.spec import TableSpec
from pipelines.timeline import LATEST

if TYPE_CHECKING:
    from pipelines.risk.pretrade import PreTradeResult

# Reads that must see everything we ever recorded use a knowledge time far in the future
# (callers may stamp rows with a simulated clock that runs ahead of the wall clock).


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def short_hash(*parts: object, n: int = 16) -> str:
    """First ``n`` hex digits of sha256 over the ``|``-joined parts (stable across runs)."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


#: ``json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))`` without
#: building an encoder per call (the audit encodes thousands of details a session).
_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))

#: The C encoder ``_JSON.encode`` builds on every call (the same arguments, so the same
#: bytes), built once. It runs without the circular-reference markers: a failure of any
#: kind (a circular value among them) is left to ``_JSON.encode``, which raises its own.
_C_ENCODE: Callable[[Any, int], Sequence[str]] | None = (
    c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", True, False, True)
    if c_make_encoder is not None
    else None
)


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON (stable bytes for the same content)."""
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(value, 0))
        except Exception:  # re-done by the full encoder, which raises its own error
            pass
    return _JSON.encode(value)


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
    if not data.num_rows:
        return _empty(table)
    key = (table, id(data))
    seen = _FRAMES.get(key)
    if seen is not None and seen[0]() is data:
        return seen[1].copy()
    # Only the business columns are converted; Arrow gives ``valid_date`` as
    # ``datetime.date`` objects already.
    frame = data.select([f.name for f in spec.input_fields]).to_pandas()
    if not any(pa.types.is_nested(f.type) for f in spec.input_fields):
        # Cells are immutable values: a copy of the frame is a fresh frame.
        _FRAMES[key] = (weakref.ref(data, _forget(key)), frame)
        return frame.copy()
    return frame


#: read_day's frame of a store answer, by the answer's identity while it lives: a store
#: that answers the same read with the same (immutable) table — the backtest's buffer,
#: until the next write to the table — is read by several stages of a session, and the
#: conversion to pandas cost ~20 times the copy each caller gets.
_FRAMES: dict[tuple[str, int], tuple[weakref.ref[pa.Table], pd.DataFrame]] = {}


def _forget(key: tuple[str, int]) -> Callable[[weakref.ref[pa.Table]], None]:
    """Drops ``key``'s frame once its answer is gone (before its id can be reused)."""

    def forget(_: weakref.ref[pa.Table]) -> None:
        _FRAMES.pop(key, None)

    return forget


def stored_keys(
    lake: Store, table: str, trade_date: dt.date, *, known_at: dt.datetime = LATEST
) -> set[tuple[str, ...]]:
    """The keys (as strings) of the rows of ``table`` stored for ``trade_date``, every
    portfolio: what :func:`read_day` would return, reading only the key columns (an
    append checks its rows against them; the audit's rows carry large JSON details)."""
    if known_at == LATEST and isinstance(lake, DayKeys):
        # A store that indexes its rows' keys by day (the backtest's buffer): the day's
        # keys without resolving a read of them after every append.
        keys = lake.day_keys(table, trade_date)
        if keys is not None:
            return keys
    spec = get_table(table)
    data = lake.as_of(table, known_at=known_at, valid_at=trade_date, columns=list(spec.key))
    if not data.num_rows:
        return set()
    columns = [_key_strings(data.column(k)) for k in spec.key]
    return set(zip(*columns, strict=True))


def _key_strings(column: pa.ChunkedArray) -> list[str]:
    """``str()`` of each value of a key column (strings as they are)."""
    values = column.to_pylist()
    return values if pa.types.is_string(column.type) else [str(v) for v in values]


_EMPTY: dict[str, pd.DataFrame] = {}


def _empty(table: str) -> pd.DataFrame:
    """An empty frame with ``table``'s business columns (a fresh copy per call: callers
    may add to it)."""
    empty = _EMPTY.get(table)
    if empty is None:
        spec = get_table(table)
        names = [f.name for f in spec.input_fields]
        empty = _EMPTY[table] = spec.arrow_schema().empty_table().select(names).to_pandas()
    return empty.copy()


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
    tbl = _as_arrow(spec, rows, known_at)
    if tbl is None:
        return _append_frame(lake, table, rows, trade_date, known_at=known_at, existing=existing)
    return _append_arrow(lake, table, tbl, trade_date, known_at=known_at, existing=existing)


def _as_arrow(spec: TableSpec, rows: pd.DataFrame, known_at: dt.datetime) -> pa.Table | None:
    """``rows``' input columns as Arrow, ``known_at`` read as UTC (as the frame path does);
    None when the Arrow path cannot promise the frame path's exact outcome (a business
    column missing, a naive clock, a key that is not all non-null strings...)."""
    names = [f.name for f in spec.input_fields]
    if known_at.tzinfo is None or any(f.name not in rows.columns for f in spec.fields):
        return None
    try:
        tbl = pa.Table.from_pandas(
            rows, columns=[c for c in names if c in rows.columns], preserve_index=False
        )
        if "known_at" in rows.columns:
            stamps = pa.Array.from_pandas(pd.to_datetime(rows["known_at"], utc=True))
            tbl = tbl.set_column(tbl.column_names.index("known_at"), "known_at", stamps)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    return tbl if _text_keys(spec, tbl) else None


def _text_keys(spec: TableSpec, tbl: pa.Table) -> bool:
    """Whether every key column of ``tbl`` is strings without nulls (then a key's ``str``
    is its value, whichever of pandas or Arrow holds it)."""
    for k in spec.key:
        col = tbl.column(k)
        text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        if col.null_count or not text:
            return False
    return True


def append_records(
    lake: Store,
    table: str,
    records: Sequence[Mapping[str, Any]],
    trade_date: dt.date,
    *,
    known_at: dt.datetime,
    existing: pd.DataFrame | None = None,
) -> int:
    """:func:`append_new` of ``pd.DataFrame(records)``: the same rows, batch id and return
    value, built straight into Arrow when :func:`records_table` can (no pandas frame and
    conversion per call: the send loop flushes its events a few times a session)."""
    if not records:
        return 0
    tbl = records_table(get_table(table), records) if known_at.tzinfo is not None else None
    if tbl is None:
        return append_new(
            lake, table, pd.DataFrame(records), trade_date, known_at=known_at, existing=existing
        )
    return _append_arrow(lake, table, tbl, trade_date, known_at=known_at, existing=existing)


def records_table(spec: TableSpec, records: Sequence[Mapping[str, Any]]) -> pa.Table | None:
    """``records``' input columns as Arrow, each in the table's type: the values
    :func:`_as_arrow` gives ``pd.DataFrame(records)`` once the lake conforms them (NaN and
    None as nulls, floats and timestamps as the same instants). None when that is not
    certain: records with different keys, a business column missing, a value of a type
    this does not take (only exact ``str``, ``float``/``int`` for floats, aware
    ``datetime`` for timestamps, ``date`` for dates, and None), or keys that are not all
    non-null strings."""
    if not records:
        return None
    names = records[0].keys()
    if any(f.name not in names for f in spec.fields):
        return None
    for r in records:
        if r.keys() != names:
            return None
    arrays: list[pa.Array] = []
    columns: list[str] = []
    for f in spec.input_fields:
        if f.name not in names:
            continue
        values = [r[f.name] for r in records]
        array = _typed_array(values, f.type)
        if array is None:
            return None
        arrays.append(array)
        columns.append(f.name)
    tbl = pa.Table.from_arrays(arrays, names=columns)
    return tbl if _text_keys(spec, tbl) else None


_TEXT_TYPES = frozenset((str, type(None)))
_NUMBER_TYPES = frozenset((float, int, type(None)))


def _typed_array(values: list[Any], kind: pa.DataType) -> pa.Array | None:
    """``values`` as an Arrow array of type ``kind`` when every value is of a Python type
    whose conversion is the pandas path's (see :func:`records_table`), else None."""
    types = set(map(type, values))
    if pa.types.is_string(kind):
        ok = types <= _TEXT_TYPES
    elif pa.types.is_float64(kind):
        # pandas makes a float64 column of them (None as NaN); from_pandas reads NaN as null
        ok = types <= _NUMBER_TYPES
    elif pa.types.is_timestamp(kind):
        # Aware only (pandas keeps a naive stamp naive, which the lake refuses); one zone
        zone = values[0].tzinfo if values and type(values[0]) is dt.datetime else None
        ok = zone is not None and all(type(v) is dt.datetime and v.tzinfo is zone for v in values)
    elif pa.types.is_date32(kind):
        ok = types <= {dt.date}
    else:
        ok = False
    if not ok:
        return None
    try:
        return pa.array(values, type=kind, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def _append_arrow(
    lake: Store,
    table: str,
    tbl: pa.Table,
    trade_date: dt.date,
    *,
    known_at: dt.datetime,
    existing: pd.DataFrame | None = None,
    stored: set[tuple[str, ...]] | None = None,
) -> int:
    """:func:`append_new` of rows already in Arrow whose key columns are non-null
    strings (:func:`_text_keys`): the same rows and batch id as the frame path, without a
    pandas copy, dedup and boolean selection per call.

    ``stored``: the keys stored for ``trade_date`` (:func:`stored_keys`), kept by the
    caller across its appends: used instead of reading them, and the keys written added."""
    spec = get_table(table)
    have = stored if stored is not None else _stored_or_given(lake, table, trade_date, existing)
    columns = [tbl.column(k).to_pylist() for k in spec.key]
    mine: list[tuple[str, ...]] = list(zip(*columns, strict=True))
    # The first row of each key not stored yet (drop_duplicates(keep="first"), then the
    # stored keys dropped: a stored key drops every one of its rows either way).
    unique = set(mine)
    if len(unique) == len(mine) and unique.isdisjoint(have):
        kept = mine  # the usual case: every row (no key repeats, none stored)
    else:
        seen = set(have)
        keep: list[int] = []
        for i, k in enumerate(mine):
            if k not in seen:
                seen.add(k)
                keep.append(i)
        if not keep:
            return 0
        if len(keep) < len(mine):
            tbl = tbl.take(pa.array(keep, pa.int64()))
        kept = [mine[i] for i in keep]
    keys = sorted([k[0] for k in kept] if len(spec.key) == 1 else ["/".join(k) for k in kept])
    batch_id = f"{table}:{trade_date.isoformat()}:{short_hash(*keys, n=32)}"
    result = lake.write(table, tbl, known_at=known_at, valid_date=trade_date, batch_id=batch_id)
    if stored is not None and result.written:
        stored.update(kept)
    return result.rows if result.written else 0


def _stored_or_given(
    lake: Store, table: str, trade_date: dt.date, existing: pd.DataFrame | None
) -> set[tuple[str, ...]]:
    """The keys already stored for ``trade_date``: those of ``existing`` when the caller
    read them, else :func:`stored_keys`."""
    if existing is None:
        return stored_keys(lake, table, trade_date)
    if existing.empty:
        return set()
    key = list(get_table(table).key)
    return set(map(tuple, existing[key].astype(str).to_numpy().tolist()))


def _append_frame(
    lake: Store,
    table: str,
    rows: pd.DataFrame,
    trade_date: dt.date,
    *,
    known_at: dt.datetime,
    existing: pd.DataFrame | None = None,
) -> int:
    """:func:`append_new` in pandas, for the frames :func:`_as_arrow` does not take."""
    spec = get_table(table)
    frame = rows.copy()
    if "valid_date" not in frame:
        frame["valid_date"] = trade_date
    if "known_at" not in frame:
        frame["known_at"] = known_at
    frame = frame.drop_duplicates(subset=list(spec.key), keep="first")
    have = _stored_or_given(lake, table, trade_date, existing)
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


_AUDIT_COLUMNS = [
    "event_id",
    "portfolio_id",
    "stage",
    "event",
    "client_order_id",
    "security_id",
    "detail",
]


def _audit_columns(
    portfolio_id: str, stage: str, events: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """The ``execution_audit`` records of ``events`` (see :func:`audit_rows`), by column
    (in :data:`_AUDIT_COLUMNS` order): Arrow builds a table from columns without the
    per-record dicts."""
    sha256 = hashlib.sha256
    head = f"{portfolio_id!s}|{stage!s}|"
    event_ids: list[str] = []
    kinds: list[Any] = []
    orders: list[Any] = []
    securities: list[Any] = []
    details: list[str] = []
    for e in events:
        detail = detail_json(e.get("detail", {}))
        kind = e["event"]
        cid = e.get("client_order_id")
        sid = e.get("security_id")
        # short_hash(portfolio_id, stage, kind, cid, sid, detail, n=24), inlined
        eid = (
            e.get("event_id")
            or sha256(
                (head + "|".join((str(kind), str(cid), str(sid), detail))).encode()
            ).hexdigest()[:24]
        )
        event_ids.append(f"{stage}:{eid}")
        kinds.append(kind)
        orders.append(cid)
        securities.append(sid)
        details.append(detail)
    return _by_column(portfolio_id, stage, event_ids, kinds, orders, securities, details)


def _by_column(
    portfolio_id: str,
    stage: str,
    event_ids: list[str],
    kinds: list[Any],
    orders: list[Any],
    securities: list[Any],
    details: list[str],
) -> dict[str, list[Any]]:
    """One stage's audit columns, in :data:`_AUDIT_COLUMNS` order."""
    n = len(event_ids)
    return {
        "event_id": event_ids,
        "portfolio_id": [portfolio_id] * n,
        "stage": [stage] * n,
        "event": kinds,
        "client_order_id": orders,
        "security_id": securities,
        "detail": details,
    }


#: The keys of a pre-trade check's audit detail (:func:`detail_json`'s fast case).
_CHECK_KEYS = frozenset(("rule", "passed", "value", "limit", "reason"))


def detail_json(value: Any) -> str:
    """:func:`to_json` of an audit detail. A pre-trade check's detail (``rule``,
    ``passed``, ``value``, ``limit``, ``reason`` of exact str, bool, float, float, str:
    most of a session's audit events) is written directly, as the encoder writes it: keys
    sorted, strings ASCII-escaped, floats by ``repr`` (NaN, Infinity, -Infinity)."""
    if type(value) is dict and len(value) == 5 and value.keys() == _CHECK_KEYS:
        fields = (value["rule"], value["passed"], value["value"], value["limit"], value["reason"])
        if _plain_check(*fields):
            return _check_text(*fields)
    return to_json(value)


def _plain_check(rule: Any, passed: Any, value: Any, limit: Any, reason: Any) -> bool:
    """Whether a check's fields are of the exact types :func:`_check_text` writes."""
    return (
        type(rule) is str
        and type(reason) is str
        and type(passed) is bool
        and type(value) is float
        and type(limit) is float
    )


def _check_text(rule: str, passed: bool, value: float, limit: float, reason: str) -> str:
    """``to_json({"rule": rule, "passed": passed, ...})`` of a check whose fields are of
    the plain types (:func:`_plain_check`), written directly."""
    return (
        f'{{"limit":{_float_json(limit)},"passed":{"true" if passed else "false"},'
        f'"reason":{encode_basestring_ascii(reason)},'
        f'"rule":{encode_basestring_ascii(rule)},"value":{_float_json(value)}}}'
    )


def _check_columns(portfolio_id: str, checks: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """:func:`_audit_columns` of stage ``pretrade`` for the events of pre-trade check
    records (``client_order_id``, ``security_id``, ``rule``, ``passed``, ``value``,
    ``limit``, ``reason``): event ``check_passed``/``check_failed``, the order and
    security, the detail of the five check fields — without building the events."""
    return _grouped_check_columns(
        portfolio_id,
        (
            (
                r["client_order_id"],
                r["security_id"],
                ((r["rule"], r["passed"], r["value"], r["limit"], r["reason"]),),
            )
            for r in checks
        ),
    )


def _grouped_check_columns(
    portfolio_id: str, groups: Iterable[tuple[Any, Any, Iterable[Sequence[Any]]]]
) -> dict[str, list[Any]]:
    """:func:`_check_columns` of checks grouped by order: ``(client_order_id,
    security_id, checks)`` with each check ``(rule, passed, value, limit, reason)`` (a
    :class:`~pipelines.risk.pretrade.PreTradeResult`'s orders and checks, without a
    record per check)."""
    sha256 = hashlib.sha256
    head = f"{portfolio_id!s}|pretrade|"
    event_ids: list[str] = []
    kinds: list[Any] = []
    orders: list[Any] = []
    securities: list[Any] = []
    details: list[str] = []
    # Each detail made once per batch (a batch's orders repeat most checks: the same
    # rule, bounds, value and verdict): most of a session's audit events are checks.
    made: dict[object, str] = {}
    frepr = float.__repr__
    for cid, sid, order_checks in groups:
        # The hashed text's start, per event kind: short_hash(portfolio_id, "pretrade",
        # kind, cid, sid, detail)'s parts up to the detail.
        tail = f"|{cid!s}|{sid!s}|"
        on_pass, on_fail = f"{head}check_passed{tail}", f"{head}check_failed{tail}"
        for check in order_checks:
            rule, passed, value, limit, reason = check
            if _plain_check(rule, passed, value, limit, reason):
                # Checks equal as tuples have the same detail, but for a zero's sign
                # (0.0 == -0.0): a check with a zero is keyed with the zeros' reprs.
                key: object = (
                    check
                    if value and limit and type(check) is tuple
                    else (rule, passed, value, limit, reason, frepr(value), frepr(limit))
                )
                detail = made.get(key)  # type: ignore[assignment]
                if detail is None:
                    detail = made[key] = _check_text(rule, passed, value, limit, reason)
            else:
                detail = to_json(
                    {
                        "rule": rule,
                        "passed": passed,
                        "value": value,
                        "limit": limit,
                        "reason": reason,
                    }
                )
            if passed:
                kind, text = "check_passed", on_pass + detail
            else:
                kind, text = "check_failed", on_fail + detail
            event_ids.append("pretrade:" + sha256(text.encode()).hexdigest()[:24])
            kinds.append(kind)
            orders.append(cid)
            securities.append(sid)
            details.append(detail)
    return _by_column(portfolio_id, "pretrade", event_ids, kinds, orders, securities, details)


def _float_json(x: float) -> str:
    """A float as the JSON encoder writes it (``allow_nan``)."""
    if x - x == 0.0:  # finite
        return float.__repr__(x)
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def _audit_records(
    portfolio_id: str, stage: str, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One ``execution_audit`` record per event (see :func:`audit_rows`)."""
    columns = _audit_columns(portfolio_id, stage, events)
    return [
        dict(zip(_AUDIT_COLUMNS, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]


def audit_rows(
    portfolio_id: str,
    stage: str,
    events: list[dict[str, Any]],
) -> pd.DataFrame:
    """``execution_audit`` rows. Each event dict has ``event`` and optionally
    ``client_order_id``, ``security_id``, ``detail`` (JSON-able) and ``event_id`` (default:
    a hash of stage, event, order, security and detail — the same fact hashes the same)."""
    return pd.DataFrame(_audit_records(portfolio_id, stage, events), columns=_AUDIT_COLUMNS)


def write_audit(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    stage: str,
    events: list[dict[str, Any]],
    *,
    known_at: dt.datetime,
    stored: set[tuple[str, ...]] | None = None,
) -> int:
    """Append audit events (idempotent per event id); ``stored`` as for :func:`write_audits`."""
    return write_audits(
        lake, portfolio_id, trade_date, [(stage, events)], known_at=known_at, stored=stored
    )


def write_audits(
    lake: Store,
    portfolio_id: str,
    trade_date: dt.date,
    stages: Sequence[tuple[str, list[dict[str, Any]]]],
    *,
    known_at: dt.datetime,
    checks: Sequence[Mapping[str, Any]] = (),
    verdict: PreTradeResult | None = None,
    stored: set[tuple[str, ...]] | None = None,
) -> int:
    """Append the audit events of several stages in one idempotent append (one lake
    commit): the rows of ``append_new`` of the stages' :func:`audit_rows` concatenated.

    ``checks``: pre-trade check records (:attr:`~pipelines.risk.pretrade.PreTradeResult.records`),
    audited after the stages as stage ``pretrade`` events ``check_passed``/``check_failed``
    with the check's ``rule``, ``passed``, ``value``, ``limit`` and ``reason`` as detail.
    ``verdict``: instead of ``checks``, the pre-trade verdict whose records they are (the
    same rows, read from its orders and checks without a record per check).
    ``stored``: the audit's keys stored for ``trade_date`` as :func:`stored_keys` read
    them, kept by a caller that appends several times in a row (no other writer of the
    day's audit in between): used instead of reading them again, and the keys written
    are added to it."""
    parts = [_audit_columns(portfolio_id, stage, events) for stage, events in stages if events]
    if verdict is not None:
        if checks:
            raise ValueError("write_audits takes checks or a verdict, not both")
        if any(verdict.checks):
            groups = (
                (o.client_order_id, o.security_id, order_checks)
                for o, order_checks in zip(verdict.orders, verdict.checks, strict=True)
            )
            parts.append(_grouped_check_columns(portfolio_id, groups))
    elif checks:
        parts.append(_check_columns(portfolio_id, checks))
    if not parts:
        return 0
    if len(parts) == 1:
        columns = parts[0]
    else:
        columns = {c: [v for part in parts for v in part[c]] for c in _AUDIT_COLUMNS}
    if known_at.tzinfo is not None:
        # Straight to Arrow: the rows append_new would write from audit_rows' frame
        # (pa.table of the columns is what Table.from_pylist of the records builds).
        try:
            tbl = pa.table(columns)
        except (pa.ArrowException, TypeError, ValueError):
            tbl = None
        if tbl is not None and _text_keys(get_table("execution_audit"), tbl):
            return _append_arrow(
                lake, "execution_audit", tbl, trade_date, known_at=known_at, stored=stored
            )
    records = [
        dict(zip(_AUDIT_COLUMNS, row, strict=True)) for row in zip(*columns.values(), strict=True)
    ]
    written = append_new(
        lake,
        "execution_audit",
        pd.DataFrame(records, columns=_AUDIT_COLUMNS),
        trade_date,
        known_at=known_at,
    )
    if stored is not None:  # the frame path read the keys itself: the caller's, read again
        stored.clear()
        stored.update(stored_keys(lake, "execution_audit", trade_date))
    return written
