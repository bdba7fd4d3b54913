"""The daily loop's configuration: one typed object, from defaults or a YAML file.

Everything a day's run needs besides the lake and the broker: which portfolio, which
portfolio policy and pre-trade limits, the starting capital of a fresh paper account, how
scores become expected returns, and the PM sign-off policy. The backtest hashes this
object (with the date range) to name its run, so the same config gives the same run id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from pipelines.errors import ConfigurationError

#: Names the daily config file of a deployment (the DAG's tasks and the DAG file itself).
CONFIG_ENV = "ALPHAFACTORY_DAILY_CONFIG"
CONFIG_DIR = Path(__file__).with_name("configs")
#: Used when ``ALPHAFACTORY_DAILY_CONFIG`` is unset: auto-approval off.
DEFAULT_CONFIG_PATH = CONFIG_DIR / "production.yaml"


def config_path() -> Path:
    """The daily config file in effect: the ``daily_config`` setting
    (``$ALPHAFACTORY_DAILY_CONFIG``), else :data:`DEFAULT_CONFIG_PATH` (empty counts as
    unset). Read afresh on every call: the DAG file is re-parsed under other settings."""
    from pipelines.config import Settings

    return Path(Settings().daily_config or DEFAULT_CONFIG_PATH)


class DailyConfigError(ConfigurationError):
    """The daily config file is not acceptable."""


class DailyConfigMissingError(DailyConfigError, FileNotFoundError):
    """The daily config file does not exist."""


class ApprovalPolicy(BaseModel):
    """PM sign-off before orders leave.

    ``auto_approve`` (on for the demo, off in production) approves without waiting;
    otherwise the DAG's approval task waits up to ``timeout_minutes`` and then applies
    ``on_timeout`` — by default ``reject``: no orders leave without a human yes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    auto_approve: bool = True
    timeout_minutes: int = Field(default=120, gt=0)
    on_timeout: Literal["reject", "approve"] = "reject"


class DailyConfig(BaseModel):
    """Settings of one portfolio's daily loop (see module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    portfolio_id: str = "main"
    #: Portfolio policy name (``pipelines/portfolio/policies``) or YAML path.
    policy: str = "default"
    #: Pre-trade limits name (``pipelines/risk/limits``) or YAML path.
    limits: str = "default"
    #: Cash of a fresh paper account (currency).
    initial_capital: float = Field(default=10_000_000.0, gt=0)
    #: Sessions of price history the risk model and the builtin scorer read.
    lookback_sessions: int = Field(default=130, ge=30)
    #: Expected daily return per unit of cross-sectional z-score and unit of daily
    #: volatility: alpha_i = ic · σ_i · z_i (Grinold's "alpha = IC × vol × score").
    alpha_ic: float = Field(default=0.05, ge=0)
    #: Scores older than this many calendar days are not traded on.
    max_score_age_days: int = Field(default=5, ge=0)
    #: Minimum trade notional (currency): smaller trades are dropped by the targets.
    min_trade_notional: float = Field(default=1_000.0, ge=0)
    #: Where scores come from: ``auto`` (the research stage's ``alpha_scores`` when
    #: present, else the builtin scorer), ``lake``, ``builtin`` (news sentiment when the
    #: lake has it, else ``price``) or ``price`` (reversal + momentum from prices only;
    #: see :mod:`pipelines.daily.scoring`).
    scorer: Literal["auto", "lake", "builtin", "price"] = "auto"
    approval: ApprovalPolicy = ApprovalPolicy()
    #: Record the risk model (``risk_*``) and the targets (``target_portfolios``,
    #: ``target_risk``, ``solve_log``) in the lake. Long backtests may turn it off.
    record_portfolio_tables: bool = True

    #: Backtests only (the live loop ignores it): retrain the research model inside the run
    #: on the walk-forward schedule, ``monthly`` (the first session of each month) or
    #: ``weekly`` (of each ISO week, the ``model_retrain`` DAG's cadence), with the live
    #: retrain's training code, and score each session with the model current then
    #: (:mod:`pipelines.backtest.retrain`); ``none``: the scores come from ``scorer``.
    retrain: Literal["none", "monthly", "weekly"] = "none"
    #: Backtest retrains: overrides of the research config's fields
    #: (``pipelines.research.stages.ResearchConfig``: ``num_boost_round``,
    #: ``train_sessions``, ``features``, ``params``, ...).
    retrain_research: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> DailyConfig:
        """Defaults, overridden by the YAML file at ``path`` when given."""
        if path is None:
            return cls()
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise DailyConfigMissingError(f"daily config {p} does not exist") from None
        if not isinstance(data, dict):
            raise DailyConfigError(f"daily config {p}: expected a mapping at top level")
        return cls.model_validate(data)

    @classmethod
    def from_env(cls) -> DailyConfig:
        """The deployment's config: the file named by :func:`config_path`.

        Cheap (YAML and pydantic only), so the DAG file may call it at parse time; the
        DAG's tasks call it too (through ``pipelines.daily.tasks.load_config``), which keeps
        the approval timeout the DAG declares and the policy its tasks apply in one file.
        """
        return cls.load(config_path())

    def __hash__(self) -> int:
        # By content, as the frozen model's own hash, which a dict field would break.
        return hash(self.model_dump_json())

    def fingerprint(self) -> str:
        """Short stable hash of every field."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _settings_file(name_or_path: str, folder: Path) -> Path:
    """The YAML file a policy or limits name resolves to (as their loaders resolve it)."""
    p = Path(name_or_path)
    return folder / f"{name_or_path}.yaml" if not p.suffix else p


def session_settings(config: DailyConfig) -> dict[str, Any]:
    """What a session decides under, as a record (stage state ``session_config``): the
    config's fields, and the text and sha256 of the policy and limits files it names.

    The files are not versioned in the lake; recording their text with each session lets
    a replay (:mod:`pipelines.replay`) decide under the policy and limits in force then,
    even after the files changed.
    """
    from pipelines.portfolio.policy import POLICY_DIR
    from pipelines.risk.pretrade import LIMITS_DIR

    record: dict[str, Any] = {"config": config.model_dump(mode="json")}
    for kind, name, folder in (
        ("policy", config.policy, POLICY_DIR),
        ("limits", config.limits, LIMITS_DIR),
    ):
        text = _settings_file(name, folder).read_text()
        record[kind] = {
            "name": name,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "yaml": text,
        }
    return record
