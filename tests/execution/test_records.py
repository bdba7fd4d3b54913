"""The execution records' Arrow paths write and read exactly what their pandas paths did:
same rows, same batch ids, same frames."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.execution import records
from pipelines.lake import get_table
from pipelines.lake.conform import FrameLike, conform
from pipelines.lake.store import WriteResult

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 5)
CLOCK = dt.datetime(2024, 3, 5, 21, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


class Recorder:
    """A store that records what is written (conformed, as the lake checks it) and holds
    ``stored`` as the rows of every read."""

    def __init__(self, stored: pa.Table | None = None) -> None:
        self.stored = stored
        self.writes: list[tuple[str, str, pa.Table]] = []

    def write(
        self,
        name: str,
        data: FrameLike,
        *,
        known_at: dt.datetime | None = None,
        valid_date: dt.date | None = None,
        batch_id: str | None = None,
    ) -> WriteResult:
        tbl = conform(get_table(name), data, known_at=known_at, valid_date=valid_date)
        assert batch_id is not None
        self.writes.append((name, batch_id, tbl))
        return WriteResult(name, batch_id, tbl.num_rows, True, None)

    def as_of(self, name: str, **_: Any) -> pa.Table:
        if self.stored is not None:
            return self.stored
        return get_table(name).arrow_schema().empty_table()

    def has_batch(self, name: str, batch_id: str) -> bool:
        return False


def _frame(table: str, n: int, *, keys: list[str] | None = None) -> pd.DataFrame:
    """``n`` rows of ``table``'s business columns (keys repeat when ``keys`` is short)."""
    spec = get_table(table)
    out: dict[str, list[Any]] = {}
    for f in spec.fields:
        if f.name in spec.key and keys is not None:
            out[f.name] = [keys[i % len(keys)] for i in range(n)]
        elif pa.types.is_string(f.type):
            out[f.name] = [f"{f.name}-{i}" for i in range(n)]
        elif pa.types.is_floating(f.type):
            out[f.name] = [i * 1.25 for i in range(n)]
        elif pa.types.is_integer(f.type):
            out[f.name] = list(range(n))
        elif pa.types.is_boolean(f.type):
            out[f.name] = [i % 2 == 0 for i in range(n)]
        elif pa.types.is_date(f.type):
            out[f.name] = [DAY] * n
        elif pa.types.is_timestamp(f.type):
            out[f.name] = [CLOCK] * n
        else:
            out[f.name] = [None] * n
    return pd.DataFrame(out)


@pytest.mark.parametrize("table", ["orders", "fills", "positions", "execution_audit"])
def test_append_new_writes_what_the_frame_path_wrote(table: str) -> None:
    spec = get_table(table)
    rows = _frame(table, 7, keys=["k1", "k2", "k3", "k2", "k4", "k5", "k1"])
    stored = conform(spec, _frame(table, 1, keys=["k4"]), known_at=CLOCK, valid_date=DAY)
    for existing in (None, _frame(table, 1, keys=["k5"])):
        for frame in (rows, rows.assign(known_at=CLOCK), rows.assign(valid_date=DAY)):
            new, old = Recorder(stored), Recorder(stored)
            args = (table, frame, DAY)
            n_new = records.append_new(new, *args, known_at=CLOCK, existing=existing)
            n_old = records._append_frame(old, *args, known_at=CLOCK, existing=existing)
            assert n_new == n_old > 0
            assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
                (b, t.to_pylist()) for _, b, t in old.writes
            ]
            assert new.writes[0][2].schema == old.writes[0][2].schema


def test_write_audit_writes_what_audit_rows_and_append_new_wrote() -> None:
    events: list[dict[str, Any]] = [
        {
            "event": "sent",
            "client_order_id": "o1",
            "security_id": "S1",
            "detail": {"b": 1, "a": 2.5},
        },
        {
            "event": "sent",
            "client_order_id": "o1",
            "security_id": "S1",
            "detail": {"b": 1, "a": 2.5},
        },
        {"event": "note", "detail": {"when": DAY}},
        {"event": "named", "event_id": "fixed"},
    ]
    new, old = Recorder(), Recorder()
    n = records.write_audit(new, "P", DAY, "execute", events, known_at=CLOCK)
    frame = records.audit_rows("P", "execute", events)
    assert n == records._append_frame(old, "execution_audit", frame, DAY, known_at=CLOCK) == 3
    assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
        (b, t.to_pylist()) for _, b, t in old.writes
    ]


def test_to_json_is_json_dumps() -> None:
    value = {"z": [1, 2.5, None], "a": {"d": DAY, "s": "é"}, "n": float("nan")}
    expected = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    assert records.to_json(value) == expected


def _old_read_day(data: pa.Table, table: str) -> pd.DataFrame:
    frame = data.to_pandas()
    if frame.empty:
        return records._empty(table)
    frame["valid_date"] = pd.to_datetime(frame["valid_date"]).dt.date
    keep = [f.name for f in get_table(table).input_fields]
    return frame[keep].reset_index(drop=True)


@pytest.mark.parametrize("table", ["orders", "positions", "execution_audit"])
def test_read_day_frames_are_the_old_conversions(table: str) -> None:
    spec = get_table(table)
    full = conform(spec, _frame(table, 4), known_at=CLOCK, valid_date=DAY)
    n = full.num_rows
    stored = full.append_column("_deleted", pa.array([False] * n)).append_column(
        "_batch_id", pa.array(["b"] * n)
    )
    for data in (stored, stored.slice(0, 0)):
        got = records.read_day(Recorder(data), table, DAY)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got, _old_read_day(data, table))
    empty = records.read_day(Recorder(stored.slice(0, 0)), table, DAY)  # type: ignore[arg-type]
    empty["extra"] = 1  # a caller's change to its frame is its own
    assert "extra" not in records._empty(table).columns


def test_read_day_of_the_same_answer_again_is_a_fresh_equal_frame() -> None:
    spec = get_table("orders")
    data = conform(spec, _frame("orders", 3), known_at=CLOCK, valid_date=DAY)
    data = data.append_column("_deleted", pa.array([False] * 3))
    store = Recorder(data)
    first = records.read_day(store, "orders", DAY)  # type: ignore[arg-type]
    first.loc[0, "client_order_id"] = "changed"
    first["extra"] = 1
    again = records.read_day(store, "orders", DAY)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(again, _old_read_day(data, "orders"))
    store.stored = data.slice(1)  # another answer: converted anew
    assert len(records.read_day(store, "orders", DAY)) == 2  # type: ignore[arg-type]


def _event_records(n: int) -> list[dict[str, Any]]:
    """``order_events`` records as the send loop buffers them (None, NaN, -0.0 included)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append(
            {
                "event_id": f"AF{i % 5}:ack",
                "client_order_id": f"AF{i % 5}",
                "portfolio_id": "P",
                "security_id": f"S{i}",
                "event_type": "ack",
                "status": "new",
                "broker_order_id": None if i % 3 == 0 else f"B{i}",
                "quantity": [100.0, 7, -0.0, float("nan")][i % 4],
                "filled_quantity": 0.0,
                "leaves_quantity": None,
                "avg_price": None if i % 2 else 1.5 * i,
                "reason": "found at broker; not re-sent" if i == 2 else None,
                "broker": "paper",
                "known_at": CLOCK,
            }
        )
    return out


@pytest.mark.parametrize("n", [1, 7])
def test_append_records_writes_what_append_new_of_the_frame_wrote(n: int) -> None:
    rows = _event_records(n)
    stored = conform(
        get_table("order_events"), pd.DataFrame(rows[:1]), known_at=CLOCK, valid_date=DAY
    )
    for have in (None, stored):
        new, old = Recorder(have), Recorder(have)
        assert records.records_table(get_table("order_events"), rows) is not None
        n_new = records.append_records(new, "order_events", rows, DAY, known_at=CLOCK)
        n_old = records.append_new(old, "order_events", pd.DataFrame(rows), DAY, known_at=CLOCK)
        assert n_new == n_old
        assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
            (b, t.to_pylist()) for _, b, t in old.writes
        ]


def test_append_records_of_orders_and_fills_as_the_frame_path() -> None:
    orders = [
        {
            **{c: f"{c}-{i}" for c in ("client_order_id", "portfolio_id", "security_id")},
            "side": "buy",
            "quantity": 10.0 * i,
            "order_type": "market",
            "limit_price": None,
            "algo": "none",
            "algo_params": "{}",
            "decision_price": float("nan") if i == 1 else 12.5,
            "adv": 1e6,
            "sector": None if i else "Tech",
            "target_shares": 1.0,
            "current_shares": 0.0,
            "status": "accepted",
            "reject_rules": None,
            "reject_reason": None,
            "broker": "paper",
            "valid_date": DAY,
        }
        for i in range(3)
    ]
    fills = [
        {
            "fill_id": f"F{i}",
            "client_order_id": "AF1",
            "broker_order_id": "B1",
            "portfolio_id": "P",
            "security_id": "S1",
            "side": "sell",
            "quantity": 5.0,
            "price": 10.25,
            "commission": None,
            "executed_at": CLOCK,
            "broker": "paper",
            "known_at": CLOCK,
        }
        for i in range(2)
    ]
    for table, rows in (("orders", orders), ("fills", fills)):
        assert records.records_table(get_table(table), rows) is not None
        new, old = Recorder(), Recorder()
        records.append_records(new, table, rows, DAY, known_at=CLOCK)
        records.append_new(old, table, pd.DataFrame(rows), DAY, known_at=CLOCK)
        assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
            (b, t.to_pylist()) for _, b, t in old.writes
        ]


def test_records_table_declines_what_it_cannot_promise() -> None:
    spec = get_table("order_events")
    base = _event_records(2)
    naive = [{**r, "known_at": CLOCK.replace(tzinfo=None)} for r in base]
    odd_keys = [base[0], {k: v for k, v in base[1].items() if k != "reason"}]
    pd_na = [{**r, "quantity": pd.NA} for r in base]
    null_key = [{**r, "event_id": None} for r in base]
    for rows in (naive, odd_keys, pd_na, null_key):
        assert records.records_table(spec, rows) is None


def test_detail_json_is_to_json() -> None:
    values: list[Any] = [
        {"rule": "adv", "passed": True, "value": 0.1, "limit": 0.05, "reason": ""},
        {
            "rule": 'é"x',
            "passed": False,
            "value": float("nan"),
            "limit": float("inf"),
            "reason": "a\nb",
        },
        {"rule": "r", "passed": False, "value": -0.0, "limit": -float("inf"), "reason": "ü"},
        {"rule": "r", "passed": 1, "value": 0.5, "limit": 1.0, "reason": ""},  # not a bool
        {"rule": "r", "passed": True, "value": 1, "limit": 1.0, "reason": ""},  # an int
        {"rule": "r", "passed": True, "value": 1.0, "limit": 1.0, "other": ""},
        {"side": "buy", "quantity": 3.0, "reason": None},
        "text",
    ]
    for value in values:
        assert records.detail_json(value) == records.to_json(value)


def test_write_audits_writes_what_the_concatenated_audit_rows_wrote() -> None:
    checks: list[dict[str, Any]] = [
        {
            "event": "check_passed" if i % 2 else "check_failed",
            "client_order_id": f"o{i}",
            "security_id": f"S{i}",
            "detail": {
                "rule": "adv",
                "passed": bool(i % 2),
                "value": i / 3,
                "limit": 0.1,
                "reason": "" if i % 2 else "too big",
            },
        }
        for i in range(5)
    ]
    received = [{"event": "targets_received", "detail": {"rows": [{"a": 1.5}], "nav": 1e6}}]
    new, old = Recorder(), Recorder()
    n = records.write_audits(
        new, "P", DAY, [("targets", received), ("pretrade", checks)], known_at=CLOCK
    )
    frame = pd.concat(
        [records.audit_rows("P", "targets", received), records.audit_rows("P", "pretrade", checks)],
        ignore_index=True,
    )
    assert n == records.append_new(old, "execution_audit", frame, DAY, known_at=CLOCK) == 6
    assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
        (b, t.to_pylist()) for _, b, t in old.writes
    ]
    ids = {
        e: records.short_hash(
            "P",
            "pretrade",
            c["event"],
            c["client_order_id"],
            c["security_id"],
            records.to_json(c["detail"]),
            n=24,
        )
        for e, c in enumerate(checks)
    }
    written = new.writes[0][2].column("event_id").to_pylist()
    assert [f"pretrade:{ids[i]}" for i in range(5)] == written[1:]


def test_write_audits_of_check_records_is_their_pretrade_events() -> None:
    checks: list[dict[str, Any]] = [
        {
            "timestamp": CLOCK,
            "client_order_id": f"o{i}",
            "portfolio_id": "P",
            "security_id": f"S{i}",
            "rule": ["adv", "collar", "kill_switch"][i % 3],
            "passed": bool(i % 2),
            "value": [i / 3, float("nan"), -0.0][i % 3],
            "limit": 0.1 if i % 4 else 1,  # an int: encoded by the encoder
            "reason": "" if i % 2 else "too big é",
        }
        for i in range(8)
    ]
    events = [
        {
            "event": "check_passed" if r["passed"] else "check_failed",
            "client_order_id": r["client_order_id"],
            "security_id": r["security_id"],
            "detail": {k: r[k] for k in ("rule", "passed", "value", "limit", "reason")},
        }
        for r in checks
    ]
    received = [{"event": "targets_received", "detail": {"rows": [], "nav": 1.0}}]
    new, old = Recorder(), Recorder()
    records.write_audits(new, "P", DAY, [("targets", received)], known_at=CLOCK, checks=checks)
    records.write_audits(
        old, "P", DAY, [("targets", received), ("pretrade", events)], known_at=CLOCK
    )
    assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
        (b, t.to_pylist()) for _, b, t in old.writes
    ]


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1.5, "a": [1, 2, None], "c": {"z": True, "y": "é\n"}},
        {"fill_id": "P1-1", "side": "buy", "quantity": 3.0, "price": float("nan")},
        {"x": float("inf"), "y": -float("inf"), "d": dt.date(2024, 1, 2)},
        {3: "int keys", 1: None, 2.5: False},
        "text",
        1.25,
        [{"k": dt.datetime(2024, 1, 2, tzinfo=dt.UTC)}],
    ],
)
def test_to_json_is_the_encoder_output(value: Any) -> None:
    want = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    assert records.to_json(value) == want
    assert records.detail_json(value) == want


def test_to_json_of_a_circular_value_raises_as_json_does() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        records.to_json(loop)
    assert records.to_json({"a": 1}) == '{"a":1}'  # the encoder is still sound afterwards


def test_write_audits_of_a_verdict_is_the_write_of_its_records() -> None:
    """``verdict=`` writes the rows and batch id of ``checks=verdict.records``, repeated
    checks and signed zeros included (a batch's details are made once per equal check)."""
    from pipelines.risk.pretrade import Order, PreTradeResult

    def order(i: int) -> Order:
        return Order(f"o{i}", "P", DAY, f"S{i}", "buy", 1.0, 1.0, 1.0)

    orders = [order(i) for i in range(4)]
    repeated = ("kill_switch", True, 0.0, 0.0, "")
    checks = [
        [repeated, ("adv", True, 0.25, 0.1, ""), ("collar", False, -0.0, 0.0, "wide é")],
        [repeated, ("adv", True, 0.25, 0.1, ""), ("collar", False, 0.0, -0.0, "wide é")],
        [repeated, ("adv", False, float("nan"), 0.1, "nan"), ("net", True, 1.5, 2, "")],
        [repeated, ("adv", True, 0.25, 0.1, ""), ("collar", True, float("inf"), 0.5, "")],
    ]
    verdict = PreTradeResult([], [], orders=orders, checks=checks, timestamp=CLOCK)
    received = [{"event": "targets_received", "detail": {"rows": [], "nav": 1.0}}]
    new, old = Recorder(), Recorder()
    records.write_audits(new, "P", DAY, [("targets", received)], known_at=CLOCK, verdict=verdict)
    records.write_audits(
        old, "P", DAY, [("targets", received)], known_at=CLOCK, checks=verdict.records
    )
    assert [(b, t.to_pylist()) for _, b, t in new.writes] == [
        (b, t.to_pylist()) for _, b, t in old.writes
    ]
    with pytest.raises(ValueError):
        records.write_audits(
            new, "P", DAY, [], known_at=CLOCK, verdict=verdict, checks=verdict.records
        )


def test_write_audit_with_the_callers_stored_keys_writes_what_a_fresh_read_would(
    tmp_path: Any,
) -> None:
    """``stored=`` (the day's audit keys, read once and kept current by the appends) gives
    the rows, batch ids and stored keys of reading them before every append."""
    from pipelines.lake import Lake

    def events(stage: str, n: int) -> list[dict[str, Any]]:
        return [{"event": "e", "detail": {"i": i, "stage": stage}} for i in range(n)]

    writes = [("a", events("a", 3)), ("b", events("b", 2)), ("a", events("a", 4))]
    fresh, kept = Lake(str(tmp_path / "fresh")), Lake(str(tmp_path / "kept"))
    counts_fresh = [
        records.write_audit(fresh, "P", DAY, stage, ev, known_at=CLOCK) for stage, ev in writes
    ]
    keys = records.stored_keys(kept, "execution_audit", DAY)
    counts_kept = [
        records.write_audit(kept, "P", DAY, stage, ev, known_at=CLOCK, stored=keys)
        for stage, ev in writes
    ]
    assert counts_kept == counts_fresh == [3, 2, 1]
    assert keys == records.stored_keys(kept, "execution_audit", DAY)

    def rows(lake: Lake) -> list[tuple[Any, ...]]:
        t = lake.as_of("execution_audit", known_at=CLOCK, valid_at=DAY).to_pylist()
        return sorted((r["event_id"], r["_batch_id"], r["detail"]) for r in t)

    assert rows(kept) == rows(fresh)
