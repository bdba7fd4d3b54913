"""A vendor unlike the simulator in every respect, and the ground truth of what it delivered.

"ACME Données" is a made-up French end-of-day vendor (issue 13's acceptance test,
``tests/e2e/test_byo_vendor.py``). Next to the simulator (``pipelines/vendors/FORMATS.md``)
everything differs:

==================  =======================================  ==============================
                    simulator                                ACME
==================  =======================================  ==============================
folders             ``/daily/2024-07-05/``                   ``/outgoing/20240705/``
files               ``prices.csv.gz``, …                     ``EOD_20240705.csv``,
                                                             ``SECMASTER_20240705.csv``,
                                                             ``CORPACT_20240705.csv``
manifest            ``manifest.json``                        ``MANIFEST_20240705.json``
compression         gzip                                     none
encoding            UTF-8                                    latin-1 (``Clôture``, ``Société``)
delimiter           ``,``                                    ``;``
decimals            ``12.34``                                ``12,34`` (decimal comma)
dates               ``2024-07-05``                           ``05/07/2024``
security ids        ``S000123``                              FIGI-style ``BBG000BLNNH6``
column names        ``SECID``, ``PX_LAST``, …                ``Code FIGI``, ``Clôture``, …
sectors, exchanges  GICS names, MIC codes                    GICS codes (``45``), ``NYSE``
split ratio         ``SPLIT_TO``/``SPLIT_FROM``              ``Parité`` ``2:1``
==================  =======================================  ==============================

The market: ``securities`` names over the XNYS sessions from ``start`` to ``end``, with a
2:1 and a 3:2 split, quarterly regular dividends, a regular and a special cash dividend on
one ex-date, one name delisted (acquired) before the end, and one ticker that reads ``NA``.
Actions are announced ``ANNOUNCE_LEAD`` sessions before their ex-date (in that session's
``CORPACT`` file). Each folder is published at 18:15 New York on its session; its manifest
(JSON: the only manifest format ingestion reads) carries that instant as ``published_at``
and the sha256 of every file.

**Vendor convention** (the total return the vendor's numbers imply): closes are raw
(unadjusted); a split ``n:o`` multiplies the share count by ``k = n / o`` from its ex-date;
a cash dividend ``D`` is paid per share held the session before the ex-date. The total
return of session ``t`` is::

    TR[t] = (close[t] * k[t] + D[t]) / close[t-1] - 1

with ``k[t]`` the product of the split ratios and ``D[t]`` the sum of the dividends going
ex on ``t`` (1 and 0 otherwise). :class:`ForeignVendorTruth` computes it here with plain
numpy from the values exactly as written (the floats of the written decimal text), without
any project code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from pipelines.timeline import trading_calendar

NEW_YORK = ZoneInfo("America/New_York")
#: Folder publication time, New York wall clock (before the research cutoff, 20:00).
PUBLISH_TIME = dt.time(18, 15)
#: Sessions between an action's announcement and its ex-date.
ANNOUNCE_LEAD = 15
ENCODING = "latin-1"

PRICE_COLUMNS = (
    "Code FIGI",
    "Mnémo",
    "Date de séance",
    "Devise",
    "Ouverture",
    "Plus haut",
    "Plus bas",
    "Clôture",
    "Volume",
    "Place",
)
MASTER_COLUMNS = (
    "Code FIGI",
    "Date effet",
    "Mnémo",
    "Libellé",
    "Secteur GICS",
    "Place",
    "Devise",
    "Statut",
    "Date cotation",
    "Date radiation",
    "Motif radiation",
)
ACTION_COLUMNS = (
    "Réf opération",
    "Code FIGI",
    "Nature",
    "Date annonce",
    "Date détachement",
    "Date paiement",
    "Parité",
    "Montant",
    "Devise",
)

#: GICS sector codes the vendor writes (the lake keeps the names: the feed maps them).
GICS = {
    "10": "Energy",
    "15": "Materials",
    "20": "Industrials",
    "25": "Consumer Discretionary",
    "30": "Consumer Staples",
    "35": "Health Care",
    "40": "Financials",
    "45": "Information Technology",
    "50": "Communication Services",
    "55": "Utilities",
    "60": "Real Estate",
}
_ISSUERS = (
    "Société Lumière",
    "Nord Américaine",
    "Électricité Hudson",
    "Crédit Fédéral",
    "Forges Réunies",
    "Pâtisserie Moderne",
    "Compagnie Générale",
    "Câbles & Réseaux",
    "Assurances Mutuelles",
    "Chimie Avancée",
    "Santé Plus",
    "Hôtels du Lac",
    "Énergie Solaire",
    "Matériaux Bâtiment",
    "Télécom Atlantique",
    "Banque Privée",
    "Logiciels Étoile",
    "Immobilière Centrale",
    "Transports Rapides",
    "Aéronautique Sud",
    "Brasserie Fraîche",
    "Mines d'Or Unies",
    "Optique Précise",
    "Papeterie Blanche",
)
_FIGI_CHARS = "BCDFGHJKLMNPQRSTVWXYZ0123456789"  # FIGIs use no vowels


@dataclass(frozen=True)
class ForeignVendorConfig:
    """What to generate: ``securities`` names over the sessions ``start`` .. ``end``."""

    seed: int = 13
    securities: int = 22
    start: dt.date = dt.date(2022, 1, 3)
    end: dt.date = dt.date(2023, 12, 29)


@dataclass(frozen=True)
class Split:
    security_id: str
    ex_date: dt.date
    new: int  # new shares …
    old: int  # … per this many old shares

    @property
    def ratio(self) -> float:
        return self.new / self.old


@dataclass(frozen=True)
class Dividend:
    security_id: str
    ex_date: dt.date
    amount: float  # cash per share, as written
    special: bool
    action_id: str


@dataclass(frozen=True)
class Delisting:
    security_id: str
    last_session: dt.date  # the last session with a price
    reason: str  # the vendor's word (RACHAT: acquired)


@dataclass(frozen=True)
class ForeignVendorTruth:
    """What the vendor delivered, and the total returns its numbers imply.

    Wide frames are indexed by session (``pd.DatetimeIndex``) with one column per
    security id; ``close`` is NaN where the security has no price (after its delisting).
    """

    sessions: list[dt.date]
    ids: list[str]
    tickers: dict[str, str]
    names: dict[str, str]
    close: pd.DataFrame
    split_ratio: pd.DataFrame  # k[t]: 1.0 but on split ex-dates
    dividend: pd.DataFrame  # D[t]: cash going ex on t, summed over actions
    total_return: pd.DataFrame  # (close * k + D) / close.shift(1) - 1
    splits: list[Split]
    dividends: list[Dividend]
    delisting: Delisting
    na_security: str  # the security whose ticker is "NA"
    published_at: dict[dt.date, dt.datetime]  # UTC publication instant of each folder
    price_rows: int  # price rows delivered in all

    @property
    def double_dividend(self) -> tuple[str, dt.date]:
        """(security, ex-date) of the regular and special dividend going ex together."""
        special = next(d for d in self.dividends if d.special)
        return special.security_id, special.ex_date


def _figis(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        tail = "".join(rng.choice(list(_FIGI_CHARS), size=6))
        figi = f"BBG000{tail}"
        if figi not in out:
            out.append(figi)
    return out


def _tickers(rng: np.random.Generator, n: int) -> list[str]:
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    out: list[str] = []
    while len(out) < n:
        t = "".join(rng.choice(letters, size=int(rng.integers(2, 5))))
        if t not in out and t != "NA":
            out.append(t)
    return out


def _dec(x: float, places: int = 4) -> str:
    """A decimal with a decimal comma, as the vendor writes it."""
    return f"{x:.{places}f}".replace(".", ",")


def _read_dec(text: str) -> float:
    """The float of a written decimal (what any correct reader gets)."""
    return float(text.replace(",", "."))


def _date(d: dt.date) -> str:
    return d.strftime("%d/%m/%Y")


def _csv(columns: tuple[str, ...], rows: list[list[str]]) -> bytes:
    lines = [";".join(columns), *(";".join(r) for r in rows)]
    return ("\n".join(lines) + "\n").encode(ENCODING)


def publish_instant(day: dt.date) -> dt.datetime:
    """When the folder of ``day`` is published (UTC)."""
    return dt.datetime.combine(day, PUBLISH_TIME, NEW_YORK).astimezone(dt.UTC)


def write_foreign_vendor(
    root: Path, config: ForeignVendorConfig | None = None
) -> ForeignVendorTruth:
    """Write the vendor's tree under ``root`` (``root/outgoing/YYYYMMDD/…``); return the truth.

    Deterministic in ``config`` (numpy ``seed``): the same bytes every time.
    """
    cfg = config or ForeignVendorConfig()
    if cfg.securities < 12:
        raise ValueError("the planted events need at least 12 securities")
    rng = np.random.default_rng(cfg.seed)
    sessions = trading_calendar().sessions(cfg.start, cfg.end)
    T, N = len(sessions), cfg.securities
    if T < 300:
        raise ValueError("the planted events need at least 300 sessions")
    ids = _figis(rng, N)
    tickers = _tickers(rng, N)
    na_index = 1
    tickers[na_index] = "NA"
    names = [_ISSUERS[i % len(_ISSUERS)] for i in range(N)]
    sectors = [list(GICS)[i % len(GICS)] for i in range(N)]
    places = ["NYSE" if i % 3 else "NASDAQ" for i in range(N)]

    # --- planted events (session indices) ------------------------------------------------
    split_events = [(3, T // 3, 2, 1), (11, (2 * T) // 3, 3, 2)]
    delisted, delist_t = 7, T - 60
    special_sec, special_t = 5, T // 2
    k = np.ones((T, N))
    div = np.zeros((T, N))
    splits: list[Split] = []
    dividends: list[Dividend] = []
    actions: list[tuple[int, list[str]]] = []  # (announcement index, CORPACT row)
    ref = 0

    def action_row(sec: int, t: int, nature: str, parity: str, amount: str) -> str:
        """Announce an action going ex on session ``t``; return its vendor reference."""
        nonlocal ref
        ref += 1
        ann = t - ANNOUNCE_LEAD
        pay = sessions[t] + dt.timedelta(days=14)
        row = [
            f"OP{ref:06d}",
            ids[sec],
            nature,
            _date(sessions[ann]),
            _date(sessions[t]),
            _date(pay) if nature != "DIVISION" else "",
            parity,
            amount,
            "USD",
        ]
        actions.append((ann, row))
        return row[0]

    def dividend(sec: int, t: int, amount: str, special: bool) -> None:
        div[t, sec] += _read_dec(amount)
        ref = action_row(sec, t, "DIVEXC" if special else "DIV", "", amount)
        dividends.append(Dividend(ids[sec], sessions[t], _read_dec(amount), special, ref))

    for sec, t, new, old in split_events:
        k[t, sec] = new / old
        splits.append(Split(ids[sec], sessions[t], new, old))
        action_row(sec, t, "DIVISION", f"{new}:{old}", "")
    split_days = {(sec, t) for sec, t, _, _ in split_events}
    regular: dict[int, list[int]] = {}
    for sec in range(10):  # quarterly regular dividends for the first ten names
        for t in range(ANNOUNCE_LEAD + 20 + 7 * sec, T, 63):
            if (sec, t) in split_days or (sec == delisted and t > delist_t):
                continue
            dividend(sec, t, _dec(float(rng.choice([0.12, 0.25, 0.4, 0.55, 0.81])), 2), False)
            regular.setdefault(sec, []).append(t)
    # a special dividend going ex together with one of the name's regular dividends
    special_t = min(regular[special_sec], key=lambda t: abs(t - special_t))
    dividend(special_sec, special_t, "1,75", True)

    # --- prices ----------------------------------------------------------------------------
    close = np.full((T, N), np.nan)
    written: dict[tuple[int, int], list[str]] = {}
    level = rng.uniform(25.0, 150.0, size=N)
    for t in range(T):
        shocks = rng.normal(0.0003, 0.015, size=N)
        for i in range(N):
            if i == delisted and t > delist_t:
                continue
            if t == 0:
                raw = level[i]
            else:
                # the holder's wealth moves by the shock; the price drops by the cash paid
                # out and is divided by the split ratio
                raw = (close[t - 1, i] * (1.0 + shocks[i]) - div[t, i]) / k[t, i]
            c_text = _dec(raw)
            c = _read_dec(c_text)
            o = _read_dec(_dec(c * (1.0 + rng.normal(0.0, 0.004))))
            h = _read_dec(_dec(max(o, c) * (1.0 + abs(rng.normal(0.0, 0.006)))))
            lo = _read_dec(_dec(min(o, c) * (1.0 - abs(rng.normal(0.0, 0.006)))))
            close[t, i] = c
            volume = int(rng.integers(200_000, 3_000_000))
            written[(t, i)] = [
                ids[i],
                tickers[i],
                _date(sessions[t]),
                "USD",
                _dec(o),
                _dec(h),
                _dec(lo),
                c_text,
                str(volume),
                places[i],
            ]

    # --- the tree ------------------------------------------------------------------------
    published: dict[dt.date, dt.datetime] = {}
    by_announcement: dict[int, list[list[str]]] = {}
    for ann, row in actions:
        by_announcement.setdefault(ann, []).append(row)
    first = _date(sessions[0])
    for t, day in enumerate(sessions):
        stamp = day.strftime("%Y%m%d")
        folder = root / "outgoing" / stamp
        folder.mkdir(parents=True, exist_ok=True)
        master_rows: list[list[str]] = []
        if t == 0:
            master_rows = [
                # listed, no delisting date nor reason (empty fields)
                [
                    ids[i],
                    first,
                    tickers[i],
                    names[i],
                    sectors[i],
                    places[i],
                    "USD",
                    "A",
                    first,
                    "",
                    "",
                ]
                for i in range(N)
            ]
        if t == delist_t:
            i = delisted
            # "R" (radiée): struck off from this session, its last one with a price
            master_rows.append(
                [
                    ids[i],
                    _date(day),
                    tickers[i],
                    names[i],
                    sectors[i],
                    places[i],
                    "USD",
                    "R",
                    first,
                    _date(day),
                    "RACHAT",
                ]
            )
        files = {
            f"SECMASTER_{stamp}.csv": (_csv(MASTER_COLUMNS, master_rows), len(master_rows)),
            f"CORPACT_{stamp}.csv": (
                _csv(ACTION_COLUMNS, by_announcement.get(t, [])),
                len(by_announcement.get(t, [])),
            ),
        }
        px = [written[(t, i)] for i in range(N) if (t, i) in written]
        files[f"EOD_{stamp}.csv"] = (_csv(PRICE_COLUMNS, px), len(px))
        for name, (data, _) in files.items():
            (folder / name).write_bytes(data)
        published[day] = publish_instant(day)
        manifest = {
            "émetteur": "ACME Données SA",
            "séance": stamp,
            "published_at": published[day].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": [
                {
                    "name": name,
                    "rows": rows,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                for name, (data, rows) in files.items()
            ],
        }
        # JSON is UTF-8 whatever the data files' encoding
        (folder / f"MANIFEST_{stamp}.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8"
        )

    index = pd.DatetimeIndex(pd.to_datetime(sessions))
    close_df = pd.DataFrame(close, index=index, columns=ids)
    k_df = pd.DataFrame(k, index=index, columns=ids)
    div_df = pd.DataFrame(div, index=index, columns=ids)
    total = (close_df * k_df + div_df) / close_df.shift(1) - 1.0
    return ForeignVendorTruth(
        sessions=sessions,
        ids=ids,
        tickers=dict(zip(ids, tickers, strict=True)),
        names=dict(zip(ids, names, strict=True)),
        close=close_df,
        split_ratio=k_df,
        dividend=div_df,
        total_return=total,
        splits=splits,
        dividends=dividends,
        delisting=Delisting(ids[delisted], sessions[delist_t], "RACHAT"),
        na_security=ids[na_index],
        published_at=published,
        price_rows=len(written),
    )
