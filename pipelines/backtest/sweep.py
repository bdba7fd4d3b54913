"""Backtest sweeps: a YAML grid of policy and model parameters, one backtest per variant,
one comparison report that ranks the variants and deflates the best one's Sharpe.

A grid file::

    name: risk-and-costs            # a label for the report (optional)
    start: 2024-05-14               # first and last session of every variant
    end: 2024-05-30
    config: daily.yaml              # base daily config: a path (relative to the grid
                                    # file) or an inline mapping (optional: defaults)
    buffer_sessions: 20             # run_backtest's K (optional)
    grid:                           # the cartesian product of these lists
      policy: [default, long_only]
      policy.risk_aversion: [5, 10]
      policy.cost_aversion: [0.5, 2.0]   # the turnover (trading-cost) penalty
      alpha_ic: [0.03, 0.05]
    variants:                       # extra variants, each a mapping (optional)
      - {policy.turnover_cap: 0.1}

A key is a field of :class:`~pipelines.daily.config.DailyConfig` (``policy``, ``scorer``,
``alpha_ic``, ``lookback_sessions``, ``max_score_age_days``, …: the model's knobs a
backtest exposes) or ``policy.<field>`` of :class:`~pipelines.portfolio.policy.Policy`
(``risk_aversion``, ``cost_aversion``, ``holding_aversion``, ``turnover_cap``, …),
overriding the variant's named policy. Every variant is validated when the file is read;
an error names the file and the key.

A variant's id is a stable hash of its parameters (``v-<10 hex>``); the sweep's id hashes
the range, the base config and the variants. Each variant's result goes to the lake
(``backtest_runs``/``backtest_daily``, through :func:`~pipelines.backtest.run.run_backtest`)
and to its own folder ``<lake root>/sweeps/<sweep id>/<variant id>/result.json``; running a
variant again reuses the folder, or the lake's finished run of the same config and range,
so a retried or repeated task adds nothing. The comparison report,
``<lake root>/reports/sweep-<sweep id>.html``, ranks the variants by Sharpe (CAGR, max
drawdown, turnover, costs beside it) and gives each variant's deflated Sharpe ratio over
the number of trials (:func:`~pipelines.backtest.stats.deflated_sharpe_ratio`): the best of
many variants must beat the best that luck alone would give.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from pipelines.daily.config import DailyConfig
from pipelines.errors import ConfigurationError
from pipelines.lake import Lake

if TYPE_CHECKING:
    from pipelines.backtest.metrics import Metrics

#: The DAG that runs a sweep (``dags/backtest_sweep.py``).
DAG_ID = "backtest_sweep"
POLICY_PREFIX = "policy."
_TOP_KEYS = {"name", "start", "end", "config", "buffer_sessions", "grid", "variants"}
#: Columns of a variant's equity curve kept in its result (the comparison needs no more).
_CURVE = ("date", "nav", "ret", "turnover", "cost", "ic")


class SweepGridError(ConfigurationError):
    """A sweep grid file is not acceptable (the message names the file and the key)."""


def _hash(payload: object, n: int) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def variant_id(params: dict[str, Any]) -> str:
    """``v-<10 hex>``: the same parameters give the same id, whatever their order."""
    return f"v-{_hash(params, 10)}"


@dataclass(frozen=True)
class Variant:
    """One point of the grid: its id and parameters (grid keys → values)."""

    variant_id: str
    params: dict[str, Any]

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.params.items())) or "(base)"


@dataclass(frozen=True)
class Sweep:
    """A parsed grid: the range, the base daily config and the variants."""

    name: str
    start: dt.date
    end: dt.date
    base: dict[str, Any]
    variants: tuple[Variant, ...]
    buffer_sessions: int | None = None
    source: str = "<conf>"

    @property
    def sweep_id(self) -> str:
        """``sw-<12 hex>`` over the range, the base config and the variants."""
        payload = {
            "start": self.start,
            "end": self.end,
            "base": self.base,
            "variants": sorted(v.variant_id for v in self.variants),
        }
        return f"sw-{_hash(payload, 12)}"

    def variant(self, vid: str) -> Variant:
        """The variant with id ``vid`` (KeyError naming the sweep otherwise)."""
        for v in self.variants:
            if v.variant_id == vid:
                return v
        raise KeyError(f"sweep {self.sweep_id} has no variant {vid}")

    def to_conf(self) -> dict[str, Any]:
        """The DAG run's conf: everything a worker needs, no file path (workers share no
        disk with the machine that read the grid)."""
        return {
            "name": self.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "config": self.base,
            "buffer_sessions": self.buffer_sessions,
            "variants": [v.params for v in self.variants],
            "source": self.source,
        }

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> Sweep:
        """The inverse of :meth:`to_conf` (validated again)."""
        if not conf or "variants" not in conf:
            raise SweepGridError(
                f"{DAG_ID} needs a sweep in its run conf: run it with "
                "`alphafactory backtest sweep --grid FILE`"
            )
        data = {k: v for k, v in conf.items() if k != "source"}
        return parse_grid(data, source=str(conf.get("source") or "<conf>"))


def load_grid(path: str | Path) -> Sweep:
    """Read and validate the grid file at ``path`` (module docstring)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SweepGridError(f"sweep grid {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise SweepGridError(f"sweep grid {p}: not YAML: {exc}") from None
    return parse_grid(data, source=str(p), base_dir=p.parent)


def _date(data: dict[str, Any], key: str, source: str) -> dt.date:
    value = data.get(key)
    if value is None:
        raise SweepGridError(f"sweep grid {source}: key '{key}' is missing (a session date)")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SweepGridError(
            f"sweep grid {source}: key '{key}': {value!r} is not a date YYYY-MM-DD"
        ) from None


def _base_config(value: object, source: str, base_dir: Path | None) -> dict[str, Any]:
    if value is None:
        return DailyConfig().model_dump(mode="json")
    if isinstance(value, dict):
        try:
            return DailyConfig.model_validate(value).model_dump(mode="json")
        except ValidationError as exc:
            raise SweepGridError(f"sweep grid {source}: key 'config': {_first(exc)}") from None
    path = Path(str(value))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return DailyConfig.load(path).model_dump(mode="json")
    except (ConfigurationError, ValidationError) as exc:
        raise SweepGridError(f"sweep grid {source}: key 'config': {exc}") from None


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


def _check_key(key: object, where: str, source: str) -> str:
    from pipelines.portfolio.policy import Policy

    if not isinstance(key, str):
        raise SweepGridError(f"sweep grid {source}: key '{where}.{key}' is not a string")
    config_fields = set(DailyConfig.model_fields) - {"portfolio_id", "approval"}
    if key.startswith(POLICY_PREFIX):
        name = key[len(POLICY_PREFIX) :]
        if name not in set(Policy.model_fields) - {"name"}:
            raise SweepGridError(
                f"sweep grid {source}: key '{where}.{key}': no policy field {name!r} "
                f"(policy fields: {', '.join(sorted(set(Policy.model_fields) - {'name'}))})"
            )
        return key
    if key not in config_fields:
        raise SweepGridError(
            f"sweep grid {source}: key '{where}.{key}': not a daily config field "
            f"({', '.join(sorted(config_fields))}) nor policy.<field>"
        )
    return key


def parse_grid(data: object, *, source: str, base_dir: Path | None = None) -> Sweep:
    """Validate a grid mapping (module docstring); every variant's config and policy are
    built once here, so a bad value fails before any backtest starts."""
    if not isinstance(data, dict):
        raise SweepGridError(f"sweep grid {source}: expected a mapping at top level")
    unknown = sorted(set(map(str, data)) - _TOP_KEYS)
    if unknown:
        raise SweepGridError(
            f"sweep grid {source}: unknown key '{unknown[0]}' "
            f"(expected {', '.join(sorted(_TOP_KEYS))})"
        )
    start, end = _date(data, "start", source), _date(data, "end", source)
    if end < start:
        raise SweepGridError(f"sweep grid {source}: key 'end' {end} is before 'start' {start}")
    base = _base_config(data.get("config"), source, base_dir)
    buffer = data.get("buffer_sessions")
    if buffer is not None and (not isinstance(buffer, int) or isinstance(buffer, bool)):
        raise SweepGridError(f"sweep grid {source}: key 'buffer_sessions': expected an integer")
    points: list[dict[str, Any]] = []
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise SweepGridError(f"sweep grid {source}: key 'grid': expected a mapping of lists")
    keys = [_check_key(k, "grid", source) for k in grid]
    values = []
    for k in keys:
        v = grid[k]
        if not isinstance(v, list) or not v:
            raise SweepGridError(
                f"sweep grid {source}: key 'grid.{k}': expected a non-empty list of values"
            )
        values.append(v)
    if keys:
        points.extend(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values))
    extra = data.get("variants") or []
    if not isinstance(extra, list):
        raise SweepGridError(f"sweep grid {source}: key 'variants': expected a list of mappings")
    for i, item in enumerate(extra):
        if not isinstance(item, dict):
            raise SweepGridError(f"sweep grid {source}: key 'variants[{i}]': expected a mapping")
        points.append({_check_key(k, f"variants[{i}]", source): v for k, v in item.items()})
    if not points:
        raise SweepGridError(f"sweep grid {source}: no variants: give 'grid' or 'variants'")
    variants: list[Variant] = []
    seen: set[str] = set()
    for params in points:
        vid = variant_id(params)
        if vid in seen:
            continue  # the same point twice is one trial, not two
        seen.add(vid)
        variant = Variant(vid, params)
        _materialise(base, variant, source)  # validates
        variants.append(variant)
    return Sweep(
        name=str(data.get("name") or Path(source).stem),
        start=start,
        end=end,
        base=base,
        variants=tuple(variants),
        buffer_sessions=buffer,
        source=source,
    )


def _materialise(base: dict[str, Any], variant: Variant, source: str) -> DailyConfig:
    """The variant's daily config; its ``policy.*`` overrides become a policy YAML file
    named by the hash of its content (the same path on every machine, so the backtest's
    config hash, and with it the lake's idempotency, does not depend on where it ran)."""
    from pipelines.portfolio.policy import Policy, load_policy

    top = {k: v for k, v in variant.params.items() if not k.startswith(POLICY_PREFIX)}
    overrides = {
        k[len(POLICY_PREFIX) :]: v for k, v in variant.params.items() if k.startswith(POLICY_PREFIX)
    }
    try:
        cfg = DailyConfig.model_validate({**base, **top})
    except ValidationError as exc:
        key = exc.errors()[0].get("loc", ("?",))[0]
        raise SweepGridError(
            f"sweep grid {source}: variant {variant.label()}: key '{key}': {_first(exc)}"
        ) from None
    try:
        policy = load_policy(cfg.policy)
    except (OSError, ValidationError) as exc:
        raise SweepGridError(
            f"sweep grid {source}: variant {variant.label()}: key 'policy': "
            f"cannot load policy {cfg.policy!r}: {exc}"
        ) from None
    if not overrides:
        return cfg
    data = policy.model_dump(mode="json")
    data.update(overrides)
    data["name"] = f"{policy.name}+{_hash(overrides, 8)}"
    try:
        merged = Policy.model_validate(data)
    except ValidationError as exc:
        key = exc.errors()[0].get("loc", ("?",))[0]
        raise SweepGridError(
            f"sweep grid {source}: variant {variant.label()}: key 'policy.{key}': {_first(exc)}"
        ) from None
    text = yaml.safe_dump(merged.model_dump(mode="json"), sort_keys=True)
    folder = Path(tempfile.gettempdir()) / "alphafactory-sweep-policies"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"policy-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.is_file():
        tmp = path.with_name(f"{path.name}.{_hash([str(path), dt.datetime.now()], 6)}.tmp")
        tmp.write_text(text)
        tmp.replace(path)  # atomic: concurrent tasks on one machine write the same bytes
    return cfg.model_copy(update={"policy": str(path)})


# --- running one variant ---------------------------------------------------------------


def sweep_folder(lake: Lake, sweep: Sweep) -> str:
    """``<lake root>/sweeps/<sweep id>``."""
    return f"{lake.location.root}/sweeps/{sweep.sweep_id}"


def report_uri(lake: Lake, sweep: Sweep) -> str:
    """Where the comparison report goes: ``<lake root>/reports/sweep-<sweep id>.html``."""
    return f"{lake.location.root}/reports/sweep-{sweep.sweep_id}.html"


def _read_text(lake: Lake, uri: str) -> str | None:
    """The file's text, or None when it does not exist (local path or ``s3://``)."""
    if not uri.startswith("s3://"):
        p = Path(uri)
        return p.read_text(encoding="utf-8") if p.is_file() else None
    import pyarrow.fs as pafs

    from pipelines.lake.files import filesystem_for

    fs, path = filesystem_for(uri, lake.location.options())
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read()).decode("utf-8")


def _write_text(lake: Lake, uri: str, text: str) -> str:
    from pipelines.report.html import write_document

    return write_document(uri, text, lake.location.options())


@dataclass(frozen=True)
class VariantResult:
    """A variant's backtest: its run, metrics and equity curve (``_CURVE`` columns)."""

    variant_id: str
    params: dict[str, Any]
    run_id: str
    result_hash: str
    metrics: dict[str, float]
    curve: pd.DataFrame
    report_path: str | None
    reused: bool = False

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe summary (NaN as None): what the DAG's task returns."""
        return {
            "variant_id": self.variant_id,
            "run_id": self.run_id,
            "sharpe": _json_float(self.metrics.get("sharpe", math.nan)),
            "reused": self.reused,
        }

    def to_json(self) -> str:
        curve = self.curve.assign(date=[str(pd.Timestamp(d).date()) for d in self.curve["date"]])
        return json.dumps(
            {
                "variant_id": self.variant_id,
                "params": self.params,
                "run_id": self.run_id,
                "result_hash": self.result_hash,
                "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
                "report_path": self.report_path,
                "curve": {c: [_json_float(x) for x in curve[c]] for c in _CURVE},
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, reused: bool = False) -> VariantResult:
        data = json.loads(text)
        curve = pd.DataFrame({c: data["curve"][c] for c in _CURVE})
        curve["date"] = pd.to_datetime(curve["date"]).dt.date
        for c in _CURVE[1:]:
            curve[c] = curve[c].astype(float)
        metrics = {k: math.nan if v is None else float(v) for k, v in data["metrics"].items()}
        return cls(
            data["variant_id"],
            data["params"],
            data["run_id"],
            data["result_hash"],
            metrics,
            curve,
            data.get("report_path"),
            reused,
        )


def _json_float(x: object) -> object:
    if isinstance(x, str):
        return x
    f = float(x)  # type: ignore[arg-type]
    return f if math.isfinite(f) else None


def _finished_run(lake: Lake, cfg: DailyConfig, sweep: Sweep) -> tuple[str, str, str] | None:
    """``(run_id, result_hash, metrics JSON)`` of a finished run of ``cfg`` over the
    sweep's range in ``backtest_runs`` (the lowest run number), or None."""
    import pyarrow.compute as pc

    from pipelines.backtest.run import config_hash
    from pipelines.timeline import ALL_DATES, LATEST, trading_calendar

    if lake.table("backtest_runs") is None:
        return None
    days = trading_calendar().sessions(sweep.start, sweep.end)
    if not days:
        return None
    runs = lake.as_of(
        "backtest_runs",
        known_at=LATEST,
        valid_at=ALL_DATES,
        columns=["run_id", "result_hash", "metrics"],
        filter=pc.field("config_hash") == config_hash(cfg, days[0], days[-1]),
    ).to_pylist()
    if not runs:
        return None
    first = min(runs, key=lambda r: (len(r["run_id"]), r["run_id"]))
    return first["run_id"], first["result_hash"], first["metrics"]


def _curve_from_lake(lake: Lake, run_id: str) -> pd.DataFrame:
    """Run ``run_id``'s stored equity curve (``_CURVE`` columns)."""
    return _daily_from_lake(lake, run_id)[list(_CURVE)]


def _metrics(values: dict[str, float]) -> Metrics:
    """:class:`~pipelines.backtest.metrics.Metrics` of a stored run's metrics (a field it
    lacks, from an older run, is NaN)."""
    import dataclasses

    from pipelines.backtest.metrics import Metrics

    names = [f.name for f in dataclasses.fields(Metrics)]
    return Metrics(**{k: values.get(k, math.nan) for k in names})  # type: ignore[arg-type]


def run_variant(lake: Lake, sweep: Sweep, vid: str) -> VariantResult:
    """Backtest variant ``vid`` of ``sweep``, idempotently (module docstring): its folder's
    ``result.json`` when present, else the lake's finished run of the same config, else a
    new :func:`~pipelines.backtest.run.run_backtest`; the result is written to the folder.

    A finished run whose report is missing (a task that died after the run was stored,
    then retried) gets its report and the report's figures now, as a new run would."""
    variant = sweep.variant(vid)
    uri = f"{sweep_folder(lake, sweep)}/{vid}/result.json"
    if (text := _read_text(lake, uri)) is not None:
        return VariantResult.from_json(text, reused=True)
    cfg = _materialise(sweep.base, variant, sweep.source)
    done = _finished_run(lake, cfg, sweep)
    if done is not None:
        run_id, digest, metrics_json = done
        metrics = {
            k: math.nan if v is None else float(v) for k, v in json.loads(metrics_json).items()
        }
        report = f"{lake.location.root}/reports/backtest-{run_id}.html"
        if _read_text(lake, report) is None:
            daily = _daily_from_lake(lake, run_id)
            report, extra = _analysed_report(lake, run_id, cfg, daily, _metrics(metrics))
            metrics.update(extra)
        result = VariantResult(
            vid,
            variant.params,
            run_id,
            digest,
            metrics,
            _curve_from_lake(lake, run_id),
            report,
            True,
        )
    else:
        from pipelines.backtest.run import DEFAULT_BUFFER_SESSIONS, run_backtest

        buffer = DEFAULT_BUFFER_SESSIONS if sweep.buffer_sessions is None else sweep.buffer_sessions
        out = run_backtest(
            lake, sweep.start, sweep.end, cfg, buffer_sessions=buffer, write_report=False
        )
        report, extra = _analysed_report(lake, out.run_id, cfg, out.daily, out.metrics)
        result = VariantResult(
            vid,
            variant.params,
            out.run_id,
            out.result_hash,
            out.metrics.to_dict() | extra,
            out.daily[list(_CURVE)].copy(),
            report,
        )
    _write_text(lake, uri, result.to_json())
    return result


def _analysed_report(
    lake: Lake, run_id: str, cfg: DailyConfig, daily: pd.DataFrame, metrics: Metrics
) -> tuple[str, dict[str, float]]:
    """Write run ``run_id``'s analysed report; its path and the comparison's figures from
    the analysis (benchmark-relative, signal)."""
    from pipelines.backtest.report import write_analysed_report

    report, analysis = write_analysed_report(lake, run_id, cfg, daily, metrics)
    extra: dict[str, float] = {}
    for b in analysis.benchmarks:
        extra[f"excess_return_{b.benchmark}"] = b.excess_return
        extra[f"information_ratio_{b.benchmark}"] = b.information_ratio
        extra[f"beta_{b.benchmark}"] = b.beta
    if analysis.signal is not None:
        extra["rank_ic_tstat"] = analysis.signal.rank_ic_tstat
        extra["icir_annual"] = analysis.signal.icir_annual
    return report, extra


def _daily_from_lake(lake: Lake, run_id: str) -> pd.DataFrame:
    """Run ``run_id``'s stored equity curve: ``date`` and the business columns of
    ``backtest_daily`` but the run id and knowledge time, as the run's own ``daily`` frame
    has them."""
    import pyarrow.compute as pc

    from pipelines.lake import get_table
    from pipelines.timeline import ALL_DATES, LATEST

    frame = lake.as_of(
        "backtest_daily", known_at=LATEST, valid_at=ALL_DATES, filter=pc.field("run_id") == run_id
    ).to_pandas()
    frame = frame.sort_values("valid_date").rename(columns={"valid_date": "date"})
    spec = get_table("backtest_daily")
    names = [
        f.name for f in spec.input_fields if f.name not in ("valid_date", "known_at", "run_id")
    ]
    return frame[["date", *[n for n in names if n in frame.columns]]].reset_index(drop=True)


def load_results(lake: Lake, sweep: Sweep) -> list[VariantResult]:
    """Every variant's result from its folder (ValueError naming the missing ones)."""
    found, missing = [], []
    for v in sweep.variants:
        text = _read_text(lake, f"{sweep_folder(lake, sweep)}/{v.variant_id}/result.json")
        if text is None:
            missing.append(v.variant_id)
        else:
            found.append(VariantResult.from_json(text))
    if missing:
        raise ValueError(f"sweep {sweep.sweep_id}: no result for {', '.join(missing)}")
    return found


# --- comparison ------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The ranked variants (one row each, best Sharpe first) and the luck adjustment."""

    sweep_id: str
    table: pd.DataFrame
    n_trials: int
    #: Variance across variants of the per-session Sharpe (the DSR's null spread).
    trial_sharpes_variance: float
    best: str
    best_deflated_sharpe: float


def compare(results: list[VariantResult]) -> Comparison:
    """Rank by Sharpe and compute each variant's deflated Sharpe ratio over
    ``n_trials = len(results)``, the null spread being the variance of the variants'
    per-session Sharpes (Bailey & López de Prado, 2014)."""
    from pipelines.backtest.stats import annual_sharpe, deflated_sharpe_ratio

    if not results:
        raise ValueError("no variants to compare")
    rets = [r.curve["ret"].to_numpy(float) for r in results]
    per_session = np.array([annual_sharpe(x) / math.sqrt(252) for x in rets])
    finite = per_session[np.isfinite(per_session)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    n = len(results)
    rows = []
    for r, x in zip(results, rets, strict=True):
        m = r.metrics
        rows.append(
            {
                "variant": r.variant_id,
                "parameters": Variant(r.variant_id, r.params).label(),
                "sharpe": m.get("sharpe", math.nan),
                "sharpe_ci_low": m.get("sharpe_ci_low", math.nan),
                "sharpe_ci_high": m.get("sharpe_ci_high", math.nan),
                "deflated_sharpe": deflated_sharpe_ratio(
                    x, n_trials=n, trial_sharpes_variance=variance
                ),
                "cagr": m.get("cagr", math.nan),
                "annual_return": m.get("annual_return", math.nan),
                "annual_vol": m.get("annual_vol", math.nan),
                "max_drawdown": m.get("max_drawdown", math.nan),
                "turnover": m.get("turnover", math.nan),
                "total_cost": m.get("total_cost", math.nan),
                "cost_bps": m.get("cost_bps", math.nan),
                "mean_ic": m.get("mean_ic", math.nan),
                "excess_vs_equal_weight": m.get("excess_return_equal_weight", math.nan),
                "ir_vs_equal_weight": m.get("information_ratio_equal_weight", math.nan),
                "beta_vs_cap_weighted": m.get("beta_cap_weighted", math.nan),
                "sessions": int(m.get("sessions", len(x))),
                "run_id": r.run_id,
            }
        )
    table = pd.DataFrame(rows)
    # NaN Sharpe (a flat curve) last; ties broken by id so the ranking is reproducible.
    table["_key"] = table["sharpe"].fillna(-math.inf)
    table = table.sort_values(["_key", "variant"], ascending=[False, True]).drop(columns="_key")
    table.insert(0, "rank", range(1, n + 1))
    table = table.reset_index(drop=True)
    return Comparison(
        sweep_id="",
        table=table,
        n_trials=n,
        trial_sharpes_variance=variance,
        best=str(table["variant"].iloc[0]),
        best_deflated_sharpe=float(table["deflated_sharpe"].iloc[0]),
    )


def render_comparison(sweep: Sweep, results: list[VariantResult], comparison: Comparison) -> str:
    """The comparison report (self-contained HTML)."""
    from pipelines.report import html as h

    t = comparison.table
    best = t.iloc[0]
    dsr = comparison.best_deflated_sharpe
    verdict = "significant" if math.isfinite(dsr) and dsr >= 0.95 else "not significant"
    head = h.cards(
        [
            ("variants (trials)", str(comparison.n_trials)),
            ("best variant", str(best["variant"])),
            ("best Sharpe", h.fmt(float(best["sharpe"]), 3)),
            ("deflated Sharpe of the best", h.fmt(dsr, 3)),
            ("at 95%", verdict),
            ("best CAGR", h.pct(float(best["cagr"]))),
            ("best max drawdown", h.pct(float(best["max_drawdown"]))),
        ],
        classes={"at 95%": "ok" if verdict == "significant" else "warn"},
    )
    note = (
        '<p class="note">Deflated Sharpe (Bailey &amp; López de Prado, 2014): the probability '
        f"that a variant's true Sharpe is above the best Sharpe {comparison.n_trials} "
        "variants without skill would show, given the variance of the variants' per-session "
        f"Sharpes ({h.fmt(comparison.trial_sharpes_variance, 6)}), the sample length and "
        "the returns' skew and kurtosis. Below 0.95 the ranking may be luck.</p>"
    )
    shown = t.copy()
    shown.insert(
        list(shown.columns).index("sharpe_ci_low"),
        "sharpe 95% CI",
        [
            f"{h.fmt(lo, 2)} … {h.fmt(hi, 2)}"
            for lo, hi in zip(t["sharpe_ci_low"], t["sharpe_ci_high"], strict=True)
        ],
    )
    shown = shown.drop(columns=["sharpe_ci_low", "sharpe_ci_high"])
    for c in (
        "cagr",
        "annual_return",
        "annual_vol",
        "max_drawdown",
        "turnover",
        "excess_vs_equal_weight",
    ):
        shown[c] = (100 * shown[c]).round(3)
    shown = shown.rename(
        columns={
            "cagr": "CAGR %",
            "annual_return": "annual return (arith.) %",
            "annual_vol": "vol %",
            "max_drawdown": "max drawdown %",
            "turnover": "turnover/day %",
            "excess_vs_equal_weight": "excess vs EW % (arith.)",
            "ir_vs_equal_weight": "IR vs EW",
            "beta_vs_cap_weighted": "beta vs CW",
        }
    )
    ranking = h.table(shown, left=["variant", "parameters", "run_id"], sortable=True)
    fig, ax = h.figure(7.2, 3.4)
    by_id = {r.variant_id: r for r in results}
    for vid in t["variant"]:
        curve = by_id[vid].curve
        if len(curve):
            nav = curve["nav"].to_numpy(float)
            ax.plot(pd.to_datetime(curve["date"]), nav / nav[0], lw=1)
    ax.set_title("NAV of every variant (first session = 1)")
    fig.autofmt_xdate()
    chart = h.png(fig)
    return h.page(
        f"Backtest sweep {sweep.name} ({sweep.sweep_id})",
        f"{comparison.n_trials} variants, sessions {sweep.start} … {sweep.end}, "
        f"grid {sweep.source}",
        [
            ("Summary", head + note),
            ("Ranking (by Sharpe)", ranking),
            ("Equity curves", chart),
        ],
    )


@dataclass(frozen=True)
class SweepReport:
    """Where the comparison went, and what it says."""

    report_path: str
    comparison: Comparison

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe summary (NaN as None): what the DAG's task returns."""
        return {
            "report": self.report_path,
            "variants": self.comparison.n_trials,
            "best": self.comparison.best,
            "best_deflated_sharpe": _json_float(self.comparison.best_deflated_sharpe),
        }


def write_comparison(lake: Lake, sweep: Sweep) -> SweepReport:
    """Compare every variant's result and write the report (and ``comparison.json`` in the
    sweep's folder); the same results give the same files."""
    results = load_results(lake, sweep)
    comparison = compare(results)
    comparison = Comparison(
        sweep.sweep_id,
        comparison.table,
        comparison.n_trials,
        comparison.trial_sharpes_variance,
        comparison.best,
        comparison.best_deflated_sharpe,
    )
    path = _write_text(lake, report_uri(lake, sweep), render_comparison(sweep, results, comparison))
    summary = {
        "sweep_id": sweep.sweep_id,
        "report": path,
        "n_trials": comparison.n_trials,
        "best": comparison.best,
        "best_deflated_sharpe": _json_float(comparison.best_deflated_sharpe),
        "ranking": [
            {k: _json_float(v) if isinstance(v, float) else v for k, v in row.items()}
            for row in comparison.table.to_dict(orient="records")
        ],
    }
    _write_text(lake, f"{sweep_folder(lake, sweep)}/comparison.json", json.dumps(summary, indent=1))
    return SweepReport(path, comparison)


__all__ = [
    "DAG_ID",
    "Comparison",
    "Sweep",
    "SweepGridError",
    "SweepReport",
    "Variant",
    "VariantResult",
    "compare",
    "load_grid",
    "load_results",
    "parse_grid",
    "render_comparison",
    "report_uri",
    "run_variant",
    "sweep_folder",
    "variant_id",
    "write_comparison",
]
