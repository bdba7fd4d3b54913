"""``alphafactory vendor …``: run the simulated market-data vendor (SFTP + REST)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.vendors.clock import Clock, FrozenClock, ShiftedClock, SystemClock
from pipelines.vendors.config import MarketConfig, VendorConfig
from pipelines.vendors.faults import FaultPlan
from pipelines.vendors.instants import parse_instant

vendor_app = typer.Typer(
    help="Simulated market-data vendor: synthetic market over SFTP and REST.",
    no_args_is_help=True,
)
console = Console()


def _parse_clock(value: str, frozen: bool) -> Clock:
    if value == "live":
        return SystemClock()
    try:
        instant = parse_instant(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected 'live' or an ISO-8601 instant") from None
    return FrozenClock(instant) if frozen else ShiftedClock(instant)


def _build_config(
    *,
    seed: int | None,
    universe_size: int | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    history_years: float | None,
    signal_strength: float | None,
    host: str | None,
    sftp_port: int | None,
    http_port: int | None,
    state_dir: Path,
    faults: Path | None,
    clock: str,
    frozen: bool,
    rate_limit: int,
    error_rate: float,
) -> VendorConfig:
    from pipelines.config import get_settings

    settings = get_settings()
    # Options left unset fall back to exactly what `alphafactory demo` serves
    # (MarketConfig.from_settings and the market's own defaults): the same bytes.
    market = MarketConfig.from_settings(
        start=start.date() if start else None,
        end=end.date() if end else None,
        history_years=history_years,
        seed=settings.seed if seed is None else seed,
        universe_size=settings.universe_size if universe_size is None else universe_size,
        signal_strength=MarketConfig.signal_strength
        if signal_strength is None
        else signal_strength,
    )
    overrides: dict[str, object] = {
        "market": market,
        "state_dir": state_dir,
        "faults": FaultPlan.from_yaml(faults) if faults else FaultPlan(),
        "clock": _parse_clock(clock, frozen),
        "rate_limit": rate_limit,
        "error_rate": error_rate,
    }
    for key, value in (("host", host), ("sftp_port", sftp_port), ("http_port", http_port)):
        if value is not None:
            overrides[key] = value
    return VendorConfig.from_settings(**overrides)


@vendor_app.command()
def serve(
    seed: Annotated[int | None, typer.Option(help="Market seed [settings.seed]")] = None,
    universe_size: Annotated[int | None, typer.Option(help="Securities at start")] = None,
    start: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="Last date [settings.history_end, else 31 Dec this year]"
        ),
    ] = None,
    history_years: Annotated[float | None, typer.Option(help="Used when --start is absent")] = None,
    signal_strength: Annotated[
        float | None, typer.Option(help="Planted sentiment IC, 0 = none [market default 0.05]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [settings.vendor_host]")] = None,
    sftp_port: Annotated[int | None, typer.Option(help="0 = any free port")] = None,
    http_port: Annotated[int | None, typer.Option(help="0 = any free port")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Host key, client key, file cache [the demo's: var/vendor]"),
    ] = None,
    faults: Annotated[Path | None, typer.Option(help="Fault plan YAML", exists=True)] = None,
    clock: Annotated[
        str, typer.Option(help="'live', or an ISO instant the vendor clock starts from")
    ] = "live",
    frozen: Annotated[bool, typer.Option(help="Stop the clock at --clock")] = False,
    rate_limit: Annotated[int, typer.Option(help="REST requests per second per token")] = 50,
    error_rate: Annotated[float, typer.Option(help="Deterministic 503 probability")] = 0.0,
    show_secrets: Annotated[bool, typer.Option(help="Print password and token")] = False,
) -> None:
    """Serve the simulated vendor until Ctrl-C."""
    from pipelines.cli.airflow import vendor_state_dir
    from pipelines.vendors.server import run_vendor

    cfg = _build_config(
        seed=seed,
        universe_size=universe_size,
        start=start,
        end=end,
        history_years=history_years,
        signal_strength=signal_strength,
        host=host,
        sftp_port=sftp_port,
        http_port=http_port,
        # The demo's state dir by default: the host key `alphafactory airflow env` pins.
        state_dir=state_dir or vendor_state_dir(),
        faults=faults,
        clock=clock,
        frozen=frozen,
        rate_limit=rate_limit,
        error_rate=error_rate,
    )
    m = cfg.market
    console.print(
        f"generating market: seed={m.seed} universe={m.universe_size} "
        f"{m.start}..{m.end} signal={m.signal_strength}"
    )
    with run_vendor(cfg) as ep:
        secret = "****** (--show-secrets to print)"
        rows = {
            "sftp": f"sftp://{ep.username}@{ep.host}:{ep.sftp_port}/daily/",
            "rest": f"{ep.base_url}/v1/{{fundamentals,sentiment,security-master}}",
            "username": ep.username,
            "password": ep.password if show_secrets else secret,
            "token": ep.token if show_secrets else secret,
            "client key": str(ep.client_key_path),
            "known_hosts": ep.known_hosts_line,
            "pin with": f"ALPHAFACTORY_VENDOR_HOST_KEY='{ep.host_public_key}'",
            "clock": cfg.clock.now().isoformat(),
        }
        # Plain lines, not a rich table: these values get copy-pasted and must not wrap.
        for key, value in rows.items():
            console.print(f"{key:>12}: {value}", soft_wrap=True, highlight=False)
        console.print("serving; Ctrl-C to stop")
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("shutting down")


@vendor_app.command()
def render(
    day: Annotated[dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="Business date")],
    out: Annotated[Path, typer.Option(help="Directory to write the day's folder into")] = Path("."),
    seed: Annotated[int | None, typer.Option()] = None,
    universe_size: Annotated[int | None, typer.Option()] = None,
    start: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
    end: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
    signal_strength: Annotated[float | None, typer.Option()] = None,
    faults: Annotated[Path | None, typer.Option(exists=True)] = None,
) -> None:
    """Write one business day's vendor folder to disk (no servers)."""
    from pipelines.vendors.simulator import VendorSimulator

    cfg = _build_config(
        seed=seed,
        universe_size=universe_size,
        start=start,
        end=end,
        history_years=None,
        signal_strength=signal_strength,
        host=None,
        sftp_port=None,
        http_port=None,
        state_dir=Path("./var/vendor"),
        faults=faults,
        clock="live",
        frozen=False,
        rate_limit=50,
        error_rate=0.0,
    )
    sim = VendorSimulator(cfg.market, faults=cfg.faults, publish_time=cfg.publish_time)
    folder = out / day.date().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in sim.day_files(day.date()).items():
        (folder / name).write_bytes(data)
        console.print(f"{folder / name}  {len(data)} B")
