"""Portfolio stage functions on the lake: the risk model and the rebalance of one session.

Both are functions of ``(lake, day, inputs)`` that read the lake only point-in-time (as of
the decision's knowledge time, default :func:`pipelines.timeline.decision_cutoff` of
``day``) and write their outputs back with ``valid_date = day`` and ``known_at`` = that
knowledge time, under deterministic batch ids: re-running a day adds nothing. None imports
Airflow; the daily DAG and a backtest call the same functions.

* :func:`build_risk_model` → ``risk_exposures``, ``risk_factor_returns``,
  ``risk_factor_covariance``, ``risk_specific`` (and returns the :class:`RiskModel`);
* :func:`load_risk_model` — the stored model back, as of a knowledge time;
* :func:`alpha_from_lake` — expected returns from ``alpha_scores`` (research's output);
* :func:`inputs_from_lake` — the one rebalance's inputs
  (:class:`~pipelines.portfolio.rebalance.RebalanceInputs`) from the lake alone;
* :func:`store_targets` → ``target_portfolios``, ``target_risk``, ``solve_log`` for the
  :class:`TargetPortfolio` the rebalance returned.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from pipelines.lake.interface import Store
from pipelines.portfolio.alpha import expected_returns
from pipelines.portfolio.errors import PortfolioInputError, PortfolioLookupError
from pipelines.portfolio.policy import Policy, load_policy
from pipelines.portfolio.rebalance import RebalanceInputs
from pipelines.portfolio.risk_model import RiskModel, RiskModelConfig
from pipelines.portfolio.targets import TargetPortfolio
from pipelines.timeline import decision_cutoff

DEFAULT_MODEL_ID = "default"


def _batch(table: str, owner: str, day: dt.date, known_at: dt.datetime) -> str:
    return f"{table}/{owner}/{day.isoformat()}/{known_at.astimezone(dt.UTC).isoformat()}"


def _write(lake: Store, table: str, frame: pd.DataFrame, batch_id: str) -> int:
    if not len(frame):
        return 0
    result = lake.write(table, frame, batch_id=batch_id)
    return result.rows if result.written else 0


# --------------------------------------------------------------------------- risk model


def store_risk_model(
    lake: Store,
    model: RiskModel,
    *,
    known_at: dt.datetime,
    model_id: str = DEFAULT_MODEL_ID,
    factor_return_history: bool = False,
) -> dict[str, int]:
    """Write ``model`` (as of ``model.date``) to the four risk tables; rows written per table.

    Factor returns: only the model date's row, or the whole estimation history when
    ``factor_return_history`` (a first build or a backfill). Idempotent per
    (model_id, date, known_at).
    """
    day = pd.Timestamp(model.date).date()
    frames = model.to_frames()
    exp = frames["exposures"].drop(columns="date").assign(model_id=model_id)
    cov = frames["factor_covariance"].drop(columns="date").assign(model_id=model_id)
    spec = (
        frames["specific_risk"]
        .drop(columns="date")
        .assign(model_id=model_id, specific_vol=model.specific_vol)
    )
    fret = frames["factor_returns"].rename(columns={"return": "factor_return"})
    fret["valid_date"] = pd.to_datetime(fret["date"]).dt.date
    fret = fret.drop(columns="date").assign(model_id=model_id)
    if not factor_return_history:
        fret = fret[fret["valid_date"] == day]
    written: dict[str, int] = {}
    for table, frame in (
        ("risk_exposures", exp.assign(valid_date=day)),
        ("risk_factor_covariance", cov.assign(valid_date=day)),
        ("risk_specific", spec.assign(valid_date=day)),
        ("risk_factor_returns", fret),
    ):
        written[table] = _write(
            lake,
            table,
            frame.assign(known_at=known_at).reset_index(drop=True),
            _batch(table, model_id, day, known_at),
        )
    return written


def build_risk_model(
    lake: Store,
    day: dt.date,
    *,
    config: RiskModelConfig | None = None,
    lookback: int = 130,
    model_id: str = DEFAULT_MODEL_ID,
    known_at: dt.datetime | None = None,
    store: bool = True,
    factor_return_history: bool = False,
) -> RiskModel:
    """The factor risk model at ``day``'s close from lake data known at ``known_at``.

    Inputs are the ``lookback`` sessions of prices, shares, book equity and sectors as of
    the knowledge time (:func:`pipelines.pit.snapshot.load_snapshot`), styles as in
    :mod:`pipelines.portfolio.styles`; estimation is
    :func:`pipelines.portfolio.risk_model.build_risk_model`. With ``store`` the model is
    written to the risk tables (see :func:`store_risk_model`).
    """
    from pipelines.pit.snapshot import load_snapshot
    from pipelines.portfolio.risk_model import build_risk_model as estimate
    from pipelines.portfolio.styles import risk_inputs

    known = known_at or decision_cutoff(day)
    snapshot = load_snapshot(lake, day, lookback=lookback)
    if known_at is not None and known_at != snapshot.known_at:
        raise PortfolioInputError(
            f"build_risk_model reads the lake as of the decision cutoff {snapshot.known_at}; "
            f"got known_at={known_at}"
        )
    model = estimate(risk_inputs(snapshot), as_of=pd.Timestamp(day), config=config)
    if store:
        store_risk_model(
            lake,
            model,
            known_at=known,
            model_id=model_id,
            factor_return_history=factor_return_history,
        )
    return model


def load_risk_model(
    lake: Store,
    day: dt.date,
    *,
    known_at: dt.datetime | None = None,
    model_id: str = DEFAULT_MODEL_ID,
    factor_return_start: dt.date | None = None,
) -> RiskModel:
    """The stored risk model for ``day`` as known at ``known_at`` (default: the cutoff).

    Raises ``LookupError`` when no model was stored for that day by then.
    """
    import pyarrow.compute as pc

    known = known_at or decision_cutoff(day)
    flt = pc.field("model_id") == model_id
    exp = lake.as_of("risk_exposures", known_at=known, valid_at=day, filter=flt).to_pandas()
    if exp.empty:
        raise PortfolioLookupError(f"no risk model {model_id!r} for {day} known at {known}")
    cov = lake.as_of("risk_factor_covariance", known_at=known, valid_at=day, filter=flt)
    spec = lake.as_of("risk_specific", known_at=known, valid_at=day, filter=flt).to_pandas()
    covf = cov.to_pandas()
    # Factor order as the model had it: covariance rows were written in model order and
    # as-of returns them sorted, so order by first appearance in the exposure table's
    # model order is lost; use the market/sector/style convention of the risk model.
    B = exp.pivot(index="security_id", columns="factor", values="exposure")
    factors = _factor_order(list(B.columns))
    ids = sorted(B.index)
    F = covf.pivot(index="factor_i", columns="factor_j", values="cov").loc[factors, factors]
    D = spec.set_index("security_id")["specific_var"].reindex(ids)
    fret = None
    if factor_return_start is not None:
        fr = lake.as_of(
            "risk_factor_returns", known_at=known, valid_at=(factor_return_start, day), filter=flt
        ).to_pandas()
        fret = fr.pivot(index="valid_date", columns="factor", values="factor_return")
        fret.index = pd.DatetimeIndex(fret.index)
        fret = fret.reindex(columns=factors)
    return RiskModel(
        date=pd.Timestamp(day),
        security_ids=tuple(ids),
        factor_names=tuple(factors),
        B=B.loc[ids, factors].to_numpy(dtype=float),
        F=F.to_numpy(dtype=float),
        D=D.to_numpy(dtype=float),
        factor_returns=fret,
    )


def _factor_order(names: Sequence[str]) -> list[str]:
    from pipelines.portfolio.risk_model import MARKET, SECTOR_PREFIX, is_structural_factor

    market = [n for n in names if n == MARKET]
    sectors = sorted(n for n in names if n.startswith(SECTOR_PREFIX))
    styles = sorted(n for n in names if not is_structural_factor(n))
    return [*market, *sectors, *styles]


# --------------------------------------------------------------------------- alpha


def alpha_from_lake(
    lake: Store,
    day: dt.date,
    volatility: pd.Series,
    *,
    known_at: dt.datetime | None = None,
    model_id: str | None = None,
    ic: float = 0.05,
) -> pd.Series:
    """Expected returns from ``alpha_scores`` for ``day`` as known at ``known_at``.

    ``model_id`` picks one model's scores (default: whatever was scored that day; several
    models on one day is an error). Raises ``LookupError`` when there are no scores.
    """
    known = known_at or decision_cutoff(day)
    rows = lake.as_of("alpha_scores", known_at=known, valid_at=day).to_pandas()
    if model_id is not None:
        rows = rows[rows["model_id"] == model_id]
    if rows.empty:
        raise PortfolioLookupError(f"no alpha_scores for {day} known at {known}")
    models = sorted(rows["model_id"].astype(str).unique())
    if len(models) > 1:
        raise PortfolioInputError(
            f"alpha_scores for {day} come from several models {models}: pick one"
        )
    scores = rows.set_index("security_id")["score"]
    return expected_returns(scores, volatility, ic)


# --------------------------------------------------------------------------- rebalance


def inputs_from_lake(
    lake: Store,
    day: dt.date,
    current_shares: pd.Series,
    policy: Policy | str,
    *,
    cash: float = 0.0,
    alpha: pd.Series | None = None,
    portfolio_id: str = "main",
    alpha_ic: float = 0.05,
    known_at: dt.datetime | None = None,
    **options: Any,
) -> RebalanceInputs:
    """:class:`RebalanceInputs` for ``day`` from the lake alone (as known at ``known_at``,
    default the day's cutoff):

    * ``alpha`` — expected next-session return per security id; ``None`` reads
      ``alpha_scores`` (:func:`alpha_from_lake`);
    * the risk model — the stored model for ``day`` (:func:`load_risk_model`);
    * prices / ADV (shares/day) / volatility (daily) — the lake snapshot of ``day`` (last
      close, 20-session mean volume, 63-session return std);
    * NAV — ``cash + Σ shares·price``.

    ``options`` are the other :class:`RebalanceInputs` fields (``lot_size``,
    ``min_trade_notional``, ``missing_alpha``, ``restricted``, ``outside_holdings``).
    """
    from pipelines.pit.snapshot import load_snapshot

    known = known_at or decision_cutoff(day)
    pol = load_policy(policy) if isinstance(policy, str) else policy
    model = load_risk_model(lake, day, known_at=known)
    snap = load_snapshot(lake, day)
    prices = snap.last_close()
    volatility = snap.volatility()
    ids = list(model.security_ids)
    px = prices.reindex(ids).astype(float)
    held = current_shares.astype(float).reindex(ids).fillna(0.0)
    if alpha is None:
        alpha = alpha_from_lake(lake, day, volatility, known_at=known, ic=alpha_ic)
    return RebalanceInputs(
        day=day,
        portfolio_id=portfolio_id,
        policy=pol,
        risk_model=model,
        alpha=alpha,
        prices=prices,
        current_shares=current_shares,
        nav=cash + float((held * px).sum()),
        adv_shares=snap.adv_shares(),
        volatility=volatility,
        **options,
    )


def store_targets(
    lake: Store,
    targets: TargetPortfolio,
    *,
    known_at: dt.datetime,
    policy: str,
    lot_size: int | pd.Series = 1,
    min_trade_notional: float = 0.0,
) -> dict[str, int]:
    """Write ``target_portfolios``, ``target_risk`` and ``solve_log`` rows for ``targets``;
    rows written per table (0 when this day and knowledge time were already recorded)."""
    day = pd.Timestamp(targets.date).date()
    pid = targets.portfolio_id
    frame = targets.to_frame().drop(columns="date")
    lots = (
        lot_size.reindex(frame["security_id"]).fillna(1).to_numpy(dtype=float)
        if isinstance(lot_size, pd.Series)
        else float(lot_size)
    )
    frame = frame.assign(
        lot_size=lots,
        min_trade_notional=float(min_trade_notional),
        policy=policy,
        portfolio_value=targets.portfolio_value,
        valid_date=day,
        known_at=known_at,
    )
    return {
        "target_portfolios": _write(
            lake, "target_portfolios", frame, _batch("target_portfolios", pid, day, known_at)
        ),
        "target_risk": _write(
            lake,
            "target_risk",
            risk_frame(targets).assign(valid_date=day, known_at=known_at),
            _batch("target_risk", pid, day, known_at),
        ),
        "solve_log": _write(
            lake,
            "solve_log",
            solve_log_frame(targets, policy).assign(valid_date=day, known_at=known_at),
            _batch("solve_log", pid, day, known_at),
        ),
    }


def risk_frame(targets: TargetPortfolio) -> pd.DataFrame:
    """``target_risk`` rows: total, factor, specific and one ``factor:<name>`` per factor."""
    r = targets.risk
    cols = ["portfolio_id", "component", "variance", "volatility", "exposure"]
    if r is None:
        return pd.DataFrame(columns=cols)
    rows: list[dict[str, Any]] = [
        {"component": "total", "variance": r.total_var},
        {"component": "factor", "variance": r.factor_var},
        {"component": "specific", "variance": r.specific_var},
    ]
    for row in rows:
        row["volatility"] = float(np.sqrt(max(row["variance"], 0.0)))
        row["exposure"] = None
    exposure = r.factor_exposure.reindex(r.factor_contrib.index).to_numpy(dtype=float)
    for name, contrib, y in zip(r.factor_contrib.index, r.factor_contrib, exposure, strict=True):
        rows.append(
            {
                "component": f"factor:{name}",
                "variance": float(contrib),
                "volatility": None,
                "exposure": float(y),
            }
        )
    return pd.DataFrame(rows).assign(portfolio_id=targets.portfolio_id)[cols]


def solve_log_frame(targets: TargetPortfolio, policy: str) -> pd.DataFrame:
    """``solve_log`` rows: seq 0 is the decision, seq 1… each solver call."""
    opt = targets.optimization
    t = opt.terms
    relax = json.dumps(
        [
            {"group": x.group, "constraint": x.constraint, "limit": x.limit, "amount": x.amount}
            for x in opt.relaxations
        ]
    )
    rows: list[dict[str, Any]] = [
        {
            "seq": 0,
            "stage": "result",
            "solver": opt.solver,
            "status": opt.status,
            "solve_time": opt.solve_time,
            "solver_time": float(sum(s.solver_time or 0.0 for s in opt.solves)),
            "objective": t.objective if t is not None else None,
            "alpha_term": t.alpha if t is not None else None,
            "risk_term": t.risk if t is not None else None,
            "cost_term": t.transaction_cost if t is not None else None,
            "holding_term": t.holding_cost if t is not None else None,
            "penalty_term": t.penalty if t is not None else None,
            "relaxed_groups": ",".join(sorted({x.group for x in opt.relaxations})),
            "relaxations": relax,
            "message": opt.message,
        }
    ]
    # Per-call columns as OptimizationResult defines them (no columns when nothing was solved).
    calls = opt.solves_frame(targets.portfolio_id).drop(
        columns=["date", "portfolio_id"], errors="ignore"
    )
    records = cast(list[dict[str, Any]], calls.to_dict("records"))
    rows += [{"seq": i, **call} for i, call in enumerate(records, start=1)]
    frame = pd.DataFrame(rows)
    frame["seq"] = frame["seq"].astype("int32")
    return frame.assign(portfolio_id=targets.portfolio_id, policy=policy)
