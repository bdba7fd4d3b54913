"""Research history as known at each session, built from first prints plus sparse revisions.

What session ``s`` decides with is the lake as known at ``s``'s decision cutoff: every price
correction of an earlier day published by then, and every print that came late (a vendor
folder published after its own session's cutoff), but nothing published later. The live
loop reads exactly that (:mod:`pipelines.pit.snapshot`), and so do the research stages of
one session (:func:`pipelines.pit.lake_panel.build_panel` with ``view`` = the cutoff).

A history over many sessions would need one such read per session. Instead
:class:`PanelHistory` reads the lake twice:

* the panel rows of the whole range with every row's non-price fields (as known at the
  row's own cutoff, like the point-in-time panel) — one
  :func:`~pipelines.pit.lake_panel.load_panel_rows` read;
* every version of the few price cells that have a version published after their own
  session's cutoff (``sql/pit/price_revisions.sql``).

The **first-print panel** (:attr:`PanelHistory.panel`: each row's price as first known at
its own cutoff) is the history of every session whose window holds no revision known by
its cutoff. For the sessions whose window does (:meth:`PanelHistory.affected`), the rows
are rebuilt in memory as known then — the same cells, the same derivation
(:class:`~pipelines.pit.lake_panel.RawCells`), so a session's window equals
``build_panel(..., view=cutoff(s))`` bit for bit (:meth:`PanelHistory.view`) — and only
those sessions' values are recomputed. The sessions between two revisions becoming
visible know the same lake, so each such interval is recomputed in one vectorized pass
(:meth:`PanelHistory.session_rows`), and a value is recomputed only where a revision falls
inside its own lookback. Corrections are sparse, so little is recomputed.

A session whose own prices came after its cutoff has no price row in its own view: its
decision is made without them. The next session's view has them (so its return is computed
from the late close, and nothing is lost). The same folder's corporate actions and
sentiment (:func:`~pipelines.pit.lake_panel.load_late_facts`) are replayed the same way: the rows a late split or
dividend re-adjusts (from its ex-date until the session that first knows it) are re-read as
known at that session — one small panel read per such session (:class:`FactRevisions`) —
and every later view applies them, as ``build_panel(..., view=cutoff)`` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.lake import Lake
from pipelines.pit.labels import LabelKind, LabelSet, label_available_date, make_label
from pipelines.pit.lake_panel import (
    DEFAULT_RULE,
    FACT_FLOATS,
    RawCells,
    UniverseRule,
    load_late_facts,
    load_panel_rows,
    load_price_revisions,
    load_window,
)
from pipelines.pit.panel import Panel
from pipelines.timeline import LATEST, decision_cutoff, decision_cutoffs, trading_calendar

_US = np.dtype("datetime64[us]")


def _stamps(values: list[dt.datetime] | pa.ChunkedArray) -> np.ndarray:
    """UTC instants as int64 microseconds (comparable with one another)."""
    if isinstance(values, pa.ChunkedArray):
        arr = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return np.asarray(arr.to_numpy(), dtype=np.int64)
    index = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
    return np.asarray(index.values.astype(_US).astype(np.int64))


@dataclass(frozen=True)
class FactRevisions:
    """Cells of the first-print panel that facts published after their own session's
    cutoff change (a late folder's split or dividend re-adjusts the rows from its ex-date;
    its sentiment fills its day): per revision, the cell (row ``t``, security ``i``), the
    instant it becomes known (the cutoff of the first session that knows it) and the
    cell's :data:`~pipelines.pit.lake_panel.FACT_FLOATS` as that session reads them —
    sorted by cell, then knowledge."""

    t: np.ndarray
    i: np.ndarray
    known: np.ndarray
    values: Mapping[str, np.ndarray]
    n_secs: int = 1

    @property
    def cell(self) -> np.ndarray:
        return self.t.astype(np.int64) * self.n_secs + self.i

    @classmethod
    def none(cls) -> FactRevisions:
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty, {k: np.zeros(0) for k in FACT_FLOATS})


class PanelHistory:
    """The research history of sessions ``[start, end]``, each as known at its own cutoff.

    Build it with :func:`load_history`. Row coordinates of the public methods are positions
    in :attr:`panel` (the first-print panel of the sessions).
    """

    def __init__(
        self,
        cells: RawCells,
        revisions: pa.Table,
        sessions: int,
        rule: UniverseRule,
        facts: FactRevisions | None = None,
    ) -> None:
        self.rule = rule
        self._cells = cells
        self._lead = len(cells.days) - sessions
        self._cutoffs = _stamps(decision_cutoffs([d.date() for d in cells.days]))
        rt = cells.days.get_indexer(pd.to_datetime(revisions.column("date").to_pandas()))
        ri = cells.secs.get_indexer(revisions.column("security_id").to_pandas())
        keep = (rt >= 0) & (ri >= 0)
        self._rt, self._ri = rt[keep], ri[keep]
        self._rknown = _stamps(revisions.column("known_at"))[keep]
        self._rclose = revisions.column("close").to_numpy(zero_copy_only=False)[keep]
        self._rvolume = revisions.column("volume").to_numpy(zero_copy_only=False)[keep]
        self._rdeleted = revisions.column("_deleted").to_numpy(zero_copy_only=False)[keep]
        # one id per revised cell (the rows come sorted by cell, then in as-of order)
        self._rcell = self._rt.astype(np.int64) * len(cells.secs) + self._ri
        late = self._rknown > self._cutoffs[self._rt]
        # the first row whose cutoff sees each late version: it is in every later view
        self._facts = facts or FactRevisions.none()
        self._late_t = np.concatenate([self._rt[late], self._facts.t])
        self._late_seen = np.concatenate(
            [
                np.searchsorted(self._cutoffs, self._rknown[late], side="left"),
                np.searchsorted(self._cutoffs, self._facts.known, side="left"),
            ]
        )
        self._diagonal = self._resolve(self._cutoffs[self._rt], 0, len(cells.days))
        self.panel = self._diagonal.panel(sessions, rule)

    # --- cells as known at a view ---------------------------------------------------------
    def _resolve(
        self,
        view: np.ndarray | np.int64,
        lo: int,
        hi: int,
        fact_view: np.ndarray | np.int64 | None = None,
    ) -> RawCells:
        """The raw cells of rows ``[lo, hi)`` with every revised price cell resolved as known
        at ``view`` (per revision row, or one instant), and every fact revision (a late
        folder's actions and sentiment) applied when known at ``fact_view`` (per fact
        revision, or one instant; None: none)."""
        cells = self._cells
        inside = (self._rt >= lo) & (self._rt < hi)
        seen = inside & (self._rknown <= view)
        close = cells.floats["close"][lo:hi].copy()
        volume = cells.floats["volume"][lo:hi].copy()
        present = cells.present[lo:hi].copy()
        # a revised cell with no version known at the view has no price row
        present[self._rt[inside] - lo, self._ri[inside]] = False
        close[self._rt[inside] - lo, self._ri[inside]] = np.nan
        volume[self._rt[inside] - lo, self._ri[inside]] = np.nan
        idx = np.nonzero(seen)[0]
        if len(idx):
            cell = self._rcell[idx]
            last = idx[np.r_[cell[1:] != cell[:-1], True]]  # the latest version per cell
            t, i = self._rt[last] - lo, self._ri[last]
            alive = ~self._rdeleted[last].astype(bool)
            present[t, i] = alive
            close[t, i] = np.where(alive, self._rclose[last], np.nan)
            volume[t, i] = np.where(alive, self._rvolume[last], np.nan)
        floats = {k: v[lo:hi] for k, v in cells.floats.items()}
        floats["close"], floats["volume"] = close, volume
        if fact_view is not None and len(self._facts.t):
            f = self._facts
            fidx = np.nonzero((f.t >= lo) & (f.t < hi) & (f.known <= fact_view))[0]
            if len(fidx):
                # rows come sorted by cell, then knowledge: the latest known version wins
                cell = f.cell[fidx]
                last = fidx[np.r_[cell[1:] != cell[:-1], True]]
                for name, values in f.values.items():
                    column = floats[name].copy()
                    column[f.t[last] - lo, f.i[last]] = values[last]
                    floats[name] = column
        return RawCells(
            cells.days[lo:hi],
            cells.secs,
            floats,
            cells.listed[lo:hi],
            cells.sector[lo:hi],
            present,
        )

    def _reach(self, lookback: int) -> int:
        # rows before a session that its window reads: the lookback, then the universe
        # rule's warm-up (as build_panel loads them)
        return lookback + self.rule.warmup

    def affected(self, lookback: int) -> np.ndarray:
        """Panel rows whose ``lookback`` window (plus the universe warm-up) holds a price
        version published after its own session's cutoff but known by this row's cutoff:
        the sessions whose history differs from the first prints."""
        n = len(self._cells.days)
        marks = np.zeros(n + 1, dtype=np.int64)
        first = np.maximum(self._late_seen, self._late_t)
        last = np.minimum(self._late_t + self._reach(lookback), n - 1)
        ok = first <= last
        np.add.at(marks, first[ok], 1)
        np.add.at(marks, last[ok] + 1, -1)
        hit = np.cumsum(marks[:n]) > 0
        return np.nonzero(hit[self._lead :])[0]

    def view(self, row: int, lookback: int) -> Panel:
        """The panel of the ``lookback + 1`` sessions ending at panel row ``row``, as known
        at that session's cutoff (equal to ``build_panel(..., view=cutoff)`` of them)."""
        s = row + self._lead
        lo = max(0, s - self._reach(lookback))
        cells = self._resolve(self._cutoffs[s], lo, s + 1, self._cutoffs[s])
        return cells.panel(min(lookback + 1, s + 1 - lo), self.rule)

    def securities_through(self, row: int) -> pd.Index:
        """The securities of the history of the sessions up to panel row ``row`` (the
        columns :func:`load_history` ending at that session gives its panel): those with a
        first-print price in a loaded row up to it, the universe warm-up included."""
        present = np.asarray(self._diagonal.present[: self._lead + row + 1].any(axis=0), dtype=bool)
        return self._diagonal.secs[present]

    # --- values per session -----------------------------------------------------------------
    def _state(self, row: int, lo: int, hi: int) -> Panel:
        """Rows ``[lo, hi)`` as the sessions from ``row`` on know them until the next
        revision becomes visible: each row's price as known at the later of its own cutoff
        and ``row``'s (the lake as known at ``row``'s cutoff, later rows as first printed)."""
        view = np.maximum(self._cutoffs[self._rt], self._cutoffs[row])
        fact_view = np.maximum(self._cutoffs[self._facts.t], self._cutoffs[row])
        return self._resolve(view, lo, hi, fact_view).panel(hi - lo, self.rule)

    def session_rows(
        self,
        frames: dict[str, pd.DataFrame],
        lookbacks: Mapping[str, int],
        compute: Callable[[Panel, list[str]], dict[str, pd.DataFrame]],
    ) -> dict[str, pd.DataFrame]:
        """``frames`` (first-print values on :attr:`panel`'s axes; row ``s`` = the value of
        session ``s``) with the rows a revision reaches recomputed as their sessions knew
        them: ``compute(panel, names)`` gives, for each of ``names``, a frame on the
        panel's dates whose row ``s`` reads only rows ``<= s`` (within ``lookbacks[name]``
        sessions) — so it can be computed on any panel holding those rows as known at
        ``s``'s cutoff.

        Sessions between two revisions becoming visible know the same lake, so each such
        interval is computed in one vectorized pass over its rows (plus the windows before
        them), not session by session; sessions no visible revision reaches keep their
        first-print values.
        """
        n = len(self._cells.days)
        hit = np.zeros((n, len(lookbacks)), dtype=bool)
        names = list(lookbacks)
        for j, name in enumerate(names):
            hit[self.affected(lookbacks[name]) + self._lead, j] = True
        if not hit.any():
            return frames
        out = {k: v.to_numpy(copy=True) for k, v in frames.items()}
        secs = self.panel.securities
        # the rows at which the known lake changes: each late version's first session
        events = np.unique(self._late_seen[self._late_seen < n])
        bounds = [*events.tolist(), n]
        for k in range(len(events)):
            first, stop = bounds[k], bounds[k + 1]
            rows = np.nonzero(hit[first:stop].any(axis=1))[0] + first
            if not len(rows):
                continue
            chosen = [nm for j, nm in enumerate(names) if hit[rows, j].any()]
            reach = self._reach(max(lookbacks[nm] for nm in chosen))
            lo, hi = max(0, int(rows[0]) - reach), int(rows[-1]) + 1
            state = self._state(first, lo, hi)
            pos = state.dates.get_indexer(self._cells.days[rows])
            for name, frame in compute(state, chosen).items():
                j = names.index(name)
                take = hit[rows, j]
                target = out[name]
                # a security the state does not hold is unknown there: NaN, None or False
                wide = frame.reindex(columns=secs).to_numpy(dtype=target.dtype, copy=True)
                if target.dtype == object:
                    wide[pd.isna(wide)] = None
                elif target.dtype == bool:
                    wide &= frame.reindex(columns=secs).notna().to_numpy()
                target[rows[take] - self._lead] = wide[pos[take]]
        return {
            k: pd.DataFrame(
                v,
                index=frames[k].index,
                columns=frames[k].columns,
                dtype=object if v.dtype == object else None,
            )
            for k, v in out.items()
        }

    def session_panel(self) -> Panel:
        """Every field of row ``s`` as known at ``s``'s cutoff (a later revision of an
        earlier close changes ``s``'s return, ADV and membership)."""
        base = self.panel

        def fields(state: Panel, names: list[str]) -> dict[str, pd.DataFrame]:
            return {name: state.field(name) for name in names}

        lookbacks = dict.fromkeys(base.field_names, 0)
        frames = self.session_rows(dict(base.fields), lookbacks, fields)
        return Panel(base.dates, base.securities, frames)

    def label(self, horizon: int, kind: LabelKind = "market") -> LabelSet:
        """Label ``horizon``/``kind`` with row ``t`` as computed at ``t + horizon`` — the
        session it becomes usable — from the history as known then."""
        first = make_label(self.panel, horizon, kind)

        def at_end(state: Panel, names: list[str]) -> dict[str, pd.DataFrame]:
            # row s holds the label of s − horizon: the one session s computes
            return {"label": make_label(state, horizon, kind).values.shift(horizon)}

        ended = {"label": first.values.shift(horizon)}
        values = self.session_rows(ended, {"label": horizon}, at_end)["label"]
        return LabelSet(
            name=first.name,
            horizon=horizon,
            kind=kind,
            values=values.shift(-horizon),
            available_date=label_available_date(self.panel.dates, horizon),
        )


def load_history(
    lake: Lake,
    start: dt.date,
    end: dt.date,
    known_at: dt.datetime | None = None,
    rule: UniverseRule = DEFAULT_RULE,
) -> PanelHistory:
    """The research history of the sessions in ``[start, end]`` (module docstring): its
    :attr:`~PanelHistory.panel` has the axes of ``build_panel(lake, start, end)``. Nothing
    published after ``known_at`` (default: ``end``'s cutoff) is read."""
    load_from, sessions = load_window(start, end, rule)
    final = min(known_at or LATEST, decision_cutoff(sessions[-1]))
    rows = load_panel_rows(
        lake, load_from, sessions[-1], final, view=final, any_version=True, facts_at_view=False
    )
    revisions = load_price_revisions(lake, load_from, sessions[-1], final)
    days = pd.DatetimeIndex(pd.to_datetime(trading_calendar().sessions(load_from, sessions[-1])))
    cells = RawCells.from_rows(rows, days)
    facts = _fact_revisions(lake, cells, load_from, sessions[-1], final)
    return PanelHistory(cells, revisions, len(sessions), rule, facts)


def _fact_revisions(
    lake: Lake, cells: RawCells, start: dt.date, end: dt.date, final: dt.datetime
) -> FactRevisions:
    """The :class:`FactRevisions` of the late facts in ``[start, end]``: for each session V
    that first knows some, the rows they change re-read as known at V's cutoff (one panel
    read of those few rows per such session) and compared with the first-print cells."""
    late = load_late_facts(lake, start, end, final).to_pandas()
    if late.empty:
        return FactRevisions.none()
    cal = trading_calendar()
    ts, is_, knowns = [], [], []
    values: dict[str, list[np.ndarray]] = {k: [] for k in FACT_FLOATS}
    for seen, group in late.groupby("seen_day", sort=True):
        seen_day = pd.Timestamp(seen).date()
        first = pd.Timestamp(group["first_day"].min()).date()
        last = cal.previous_session(seen_day)
        if last < first:
            continue
        view = decision_cutoff(seen_day)
        rows = load_panel_rows(lake, first, last, final, view=view, any_version=True)
        if rows.num_rows == 0:
            continue
        frame = rows.to_pandas()
        t = cells.days.get_indexer(pd.to_datetime(frame["date"]))
        i = cells.secs.get_indexer(frame["security_id"])
        ok = (t >= 0) & (i >= 0)
        t, i, frame = t[ok], i[ok], frame[ok]
        new = {k: frame[k].to_numpy(dtype=np.float64, na_value=np.nan) for k in FACT_FLOATS}
        old = {k: cells.floats[k][t, i] for k in FACT_FLOATS}
        differs = np.zeros(len(t), dtype=bool)
        for k in FACT_FLOATS:
            differs |= ~((new[k] == old[k]) | (np.isnan(new[k]) & np.isnan(old[k])))
        if not differs.any():
            continue
        ts.append(t[differs])
        is_.append(i[differs])
        knowns.append(np.full(int(differs.sum()), _stamps([view])[0], dtype=np.int64))
        for k in FACT_FLOATS:
            values[k].append(new[k][differs])
    if not ts:
        return FactRevisions.none()
    t_all, i_all, k_all = np.concatenate(ts), np.concatenate(is_), np.concatenate(knowns)
    order = np.lexsort((k_all, i_all, t_all))
    return FactRevisions(
        t_all[order],
        i_all[order],
        k_all[order],
        {k: np.concatenate(v)[order] for k, v in values.items()},
        len(cells.secs),
    )
