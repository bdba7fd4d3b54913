"""Configuration dataclasses for the vendor simulator.

:class:`MarketConfig` fixes *what* the synthetic world contains (same config → same bytes);
:class:`VendorConfig` fixes *how* it is served (ports, credentials, publish time, rate limits,
faults, clock). Defaults for the serving side come from :func:`pipelines.config.get_settings`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, time, timedelta
from pathlib import Path

from pipelines.vendors.clock import Clock, SystemClock
from pipelines.vendors.faults import FaultPlan


@dataclass(frozen=True)
class MarketConfig:
    """Parameters of the synthetic market. Identical configs generate identical data."""

    seed: int = 7
    universe_size: int = 500
    start: date = date(2023, 1, 3)
    end: date = date(2025, 12, 31)
    #: Correlation between published sentiment and the standardized next-``signal_horizon``
    #: day idiosyncratic return (see :mod:`pipelines.vendors.market`). 0.0 = no information.
    signal_strength: float = 0.05
    signal_horizon: int = 5
    calendar: str = "XNYS"
    #: New listings per year, as a fraction of ``universe_size``.
    ipo_rate: float = 0.05
    #: Random (acquisition) delisting hazard per security-year; distress delistings come
    #: on top, triggered by a deep drawdown.
    acquisition_rate: float = 0.03
    distress_drawdown: float = 0.9
    split_rate: float = 0.04
    dividend_payer_fraction: float = 0.4
    #: Fraction of regular dividends paid together with a special one (announced the same
    #: session, same ex-date, its own action id): two cash dividends on one ex-date.
    special_dividend_fraction: float = 0.0
    ticker_change_rate: float = 0.02
    sector_change_rate: float = 0.01
    restatement_fraction: float = 0.04

    def __post_init__(self) -> None:
        if not 0.0 <= self.signal_strength < 1.0:
            raise ValueError("signal_strength must be in [0, 1)")
        if self.universe_size < 1:
            raise ValueError("universe_size must be positive")
        if self.end < self.start:
            raise ValueError("end is before start")

    def fingerprint(self) -> str:
        """Short stable hash of every field (used to key on-disk caches)."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @classmethod
    def from_history_years(cls, end: date, history_years: float, **kwargs: object) -> MarketConfig:
        """A config covering ``history_years`` of calendar time ending at ``end``."""
        start = end - timedelta(days=round(365.25 * history_years))
        return cls(start=start, end=end, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_settings(
        cls,
        *,
        start: date | None = None,
        end: date | None = None,
        history_years: float | None = None,
        today: date | None = None,
        **kwargs: object,
    ) -> MarketConfig:
        """The configured market — the one function ``alphafactory demo``, ``alphafactory
        vendor serve`` and ``vendor render`` build their market with, so that they serve the
        same bytes for a day.

        ``start``/``end`` arguments, else the settings ``history_start``/``history_end``;
        the default end is :func:`default_market_end` (31 December of ``today``'s year, not
        today: every byte of the market depends on its end, so an end moving with the clock
        would make each day's ``vendor serve`` a different market from the demo's). Without
        a start, ``history_years`` back from the end. Seed, universe and calendar from
        settings unless given in ``kwargs``."""
        from pipelines.config import get_settings

        s = get_settings()
        end = end or s.history_end or default_market_end(today)
        params: dict[str, object] = {
            "seed": s.seed,
            "universe_size": s.universe_size,
            "calendar": s.calendar,
            **kwargs,
        }
        start = start or s.history_start
        if start is None:
            years = s.history_years if history_years is None else history_years
            return cls.from_history_years(end, years, **params)
        return cls(start=start, end=end, **params)  # type: ignore[arg-type]


def default_market_end(today: date | None = None) -> date:
    """The simulated market's last date when none is configured: 31 December of ``today``'s
    year (default: the system date).

    The market is generated as a whole, so its end (and start) change every byte of every
    day; a window anchored to the calendar year keeps the default market — and so the files
    of any demo day — identical all year long, whichever command serves it. The vendor
    still publishes only sessions its clock has reached. The market changes on 1 January;
    pin ``ALPHAFACTORY_HISTORY_START``/``_HISTORY_END`` for a market that never changes.
    """
    return date((today or date.today()).year, 12, 31)


@dataclass
class VendorConfig:
    """How the simulated vendor serves the market (servers, credentials, faults, clock)."""

    market: MarketConfig = field(default_factory=MarketConfig)
    host: str = "127.0.0.1"
    sftp_port: int = 0  # 0 = pick a free port
    http_port: int = 0
    username: str = "vendor"
    # repr=False: configs get logged; credentials must not.
    password: str = field(default="vendor-dev-password", repr=False)
    token: str = field(default="vendor-dev-token", repr=False)
    #: Host key, client key pair and the rendered-file cache live here.
    state_dir: Path = Path("./var/vendor")
    #: Vendor publish time for a day's SFTP folder (wall time in America/New_York).
    publish_time: time = time(18, 0)
    #: Extra ``authorized_keys``-style public key files accepted for public-key auth.
    authorized_key_files: tuple[Path, ...] = ()
    faults: FaultPlan = field(default_factory=FaultPlan)
    clock: Clock = field(default_factory=SystemClock)
    #: REST requests allowed per ``rate_window_seconds`` per token before 429.
    rate_limit: int = 50
    rate_window_seconds: float = 1.0
    #: Probability of a deterministic 503 per authenticated REST request (0 = never).
    error_rate: float = 0.0
    max_page_size: int = 10_000
    default_page_size: int = 1_000

    @classmethod
    def from_settings(cls, **overrides: object) -> VendorConfig:
        """Defaults from :func:`pipelines.config.get_settings`, then ``overrides``."""
        from pipelines.config import get_settings

        s = get_settings()
        market = MarketConfig.from_settings()
        base: dict[str, object] = {
            "market": market,
            "host": s.vendor_host,
            "sftp_port": s.vendor_sftp_port,
            "http_port": s.vendor_http_port,
            "password": s.vendor_password.get_secret_value(),
            "token": s.vendor_token.get_secret_value(),
        }
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]
