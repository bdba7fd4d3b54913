"""``alphafactory status``: the data engineer's morning view.

Freshness and last validation of every table, open quarantines, and the last DAG runs —
from Airflow's REST API when an API server answers, else from the metadata DB through
``airflow dags list-runs``.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.cli.output import literal

console = Console()
DAG_IDS = (
    "vendor_ingest",
    "daily_research",
    "model_retrain",
    "portfolio_rebalance",
    "lake_maintenance",
    "leak_audit",
)


def table_freshness(lake: Any) -> list[dict[str, Any]]:
    """Per declared table: rows, latest valid date, latest knowledge time, last commit."""
    import pyarrow.compute as pc

    from pipelines.lake.catalog import all_tables

    out = []
    for name in sorted(all_tables()):
        dt_ = lake.table(name)
        if dt_ is None:
            out.append({"table": name, "rows": 0})
            continue
        data = lake.dataset(name).to_table(columns=["valid_date", "known_at"])
        status = lake.status(name)
        out.append(
            {
                "table": name,
                "rows": data.num_rows,
                "latest valid": str(pc.max(data.column("valid_date")).as_py() or ""),
                "latest known_at": str(pc.max(data.column("known_at")).as_py() or "")[:16],
                "last commit": str(status.last_commit or "")[:19],
            }
        )
    return out


def last_validation(lake: Any) -> dict[str, dict[str, Any]]:
    """Per target dataset: date, rules evaluated, failures, outcome of the latest batch."""
    if lake.table("validation_results") is None:
        return {}
    frame = lake.dataset("validation_results").to_table().to_pandas()
    out: dict[str, dict[str, Any]] = {}
    for dataset, group in frame.groupby("dataset"):
        last = group[group["valid_date"] == group["valid_date"].max()]
        outcomes = sorted(set(last["outcome"].dropna().astype(str)))
        out[str(dataset)] = {
            "date": str(last["valid_date"].max()),
            "rules": len(last),
            "failed": int((~last["success"].astype(bool)).sum()),
            "outcome": ",".join(outcomes),
        }
    return out


def open_quarantines(lake: Any) -> Any:
    """Records still holding data back, as ``quarantine list --open`` shows them (a record a
    newer load superseded is not open)."""
    import pandas as pd

    from pipelines.ingest import quarantine

    if lake.table("quarantine") is None:
        return pd.DataFrame()
    return pd.DataFrame(quarantine.list_records(lake, "open"))


def _api_token(base: str) -> str | None:
    """A bearer token from the embedded home's simple auth manager (its generated admin
    password), or None when there is none to use."""
    from pipelines.orchestration.airflow_env import airflow_environment
    from pipelines.orchestration.ui import ADMIN_USER, PASSWORDS_FILE

    try:
        passwords = json.loads((airflow_environment().home / PASSWORDS_FILE).read_text())
        body = json.dumps({"username": ADMIN_USER, "password": passwords[ADMIN_USER]}).encode()
        req = urllib.request.Request(
            f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(json.loads(resp.read())["access_token"])
    except (OSError, KeyError, ValueError):
        return None


def dag_runs(limit: int = 3) -> tuple[str, list[dict[str, Any]]]:
    """(source, runs): the REST API when reachable (with the embedded home's token when
    it asks for one), else ``airflow dags list-runs``; the source says why it fell back."""
    import urllib.error

    from pipelines.config import get_settings
    from pipelines.orchestration.airflow_env import airflow_cli, airflow_environment

    base = get_settings().airflow_api_url.rstrip("/")
    runs: list[dict[str, Any]] = []
    token: str | None = None
    why = f"no API server at {base}"
    try:
        for dag_id in DAG_IDS:
            url = f"{base}/api/v2/dags/{dag_id}/dagRuns?limit={limit}&order_by=-run_after"
            for attempt in range(2):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    req = urllib.request.Request(url, headers=headers)
                    with urllib.request.urlopen(req, timeout=2) as resp:
                        body = json.loads(resp.read())
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code in (401, 403) and attempt == 0 and token is None:
                        token = _api_token(base)
                        if token is not None:
                            continue
                    why = f"the API at {base} answered HTTP {exc.code}"
                    raise
            for r in body.get("dag_runs", []):
                runs.append(
                    {"dag_id": dag_id, **{k: r.get(k) for k in ("run_id", "state", "run_after")}}
                )
        return f"REST API {base}", runs
    except Exception:  # fall back to the metadata DB, saying why
        runs = []
    env = airflow_environment()
    if not env.db_path.is_file():
        return f"no Airflow metadata DB yet ({why})", []
    for dag_id in DAG_IDS:
        proc = airflow_cli(env, "dags", "list-runs", dag_id, "-o", "json", timeout=120, check=False)
        if proc.returncode != 0:
            continue
        try:
            rows = json.loads(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "[]")
        except json.JSONDecodeError:
            continue
        for r in rows[:limit]:
            runs.append(
                {
                    "dag_id": dag_id,
                    **{
                        k: r.get(k)
                        for k in ("run_id", "state", "run_after", "logical_date")
                        if k in r
                    },
                }
            )
    return f"metadata DB {env.db_path} ({why})", runs


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    t = Table(title=title, header_style="bold")
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(literal(r.get(c)) for c in cols))
    console.print(t)


def status(
    runs: bool = True,
) -> None:
    """Print table freshness with last validation, open quarantines, the last leak audit
    and the last DAG runs."""
    from pipelines.lake import Lake

    lake = Lake.from_settings()
    fresh = table_freshness(lake)
    checks = last_validation(lake)
    for row in fresh:
        check = checks.get(row["table"])
        row["last validation"] = (
            f"{check['date']}: {check['rules']} rules, {check['failed']} failed ({check['outcome']})"
            if check
            else ""
        )
    _print(f"Lake tables ({lake.location.root})", fresh)
    quarantined = open_quarantines(lake)
    if quarantined.empty:
        console.print("[green]No open quarantines.[/green]")
    else:
        cols = ["quarantine_id", "valid_date", "feed", "file_name", "rules", "message"]
        _print("Open quarantines", quarantined[cols].astype(str).to_dict("records"))
    from pipelines.audit.leaks import last_audit_line

    console.print(literal(last_audit_line(lake)), soft_wrap=True)
    if runs:
        source, rows = dag_runs()
        _print(f"Last DAG runs ({source})", rows)
