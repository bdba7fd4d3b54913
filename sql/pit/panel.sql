-- The slowly changing state of the research panel: for each security and "change point" p
-- (below), the corporate-action factors, security-master state and fundamentals in force at
-- session p, each as known at p's knowledge cutoff (and never after the global $known_at).
-- pipelines/pit/lake_panel.py `load_panel_rows` gives every price cell (security, session d)
-- the state of the security's latest change point <= d (an as-of join, in numpy) with the
-- cell's price and sentiment (the latest versions it resolves itself: `_latest_versions`).
--
-- Relations: the silver tables (all versions), and `cal(d DATE, cutoff TIMESTAMPTZ,
-- px_cutoff TIMESTAMPTZ, fact_cutoff TIMESTAMPTZ)` = the sessions from $clamp to $end with
-- their research cutoffs and the knowledge time their prices (px_cutoff) and their
-- corporate actions and sentiment (fact_cutoff) are read at: the row's own cutoff (each row
-- as first known), or one later cutoff for every row (the history as known at that session,
-- price corrections, late prints and late folders' actions included). Output rows in no
-- particular order: `(security_id, p, adj_factor, split_factor, listed, sector, list_date,
-- delist_date, book_equity, total_assets, net_income, revenue, operating_cash_flow,
-- shares_q, split_at_period)`.
-- A version becomes visible on its "visibility session": the first session on or after both
-- its valid date and its knowledge (cutoff >= known_at); anything visible before $clamp is
-- visible from $clamp (the first `cal` session) on.
--
-- Bitemporal join without one as-of query per day: for each slowly changing input (corporate
-- actions, security master, fundamentals) a "change point" p is the first session at which
-- some version becomes visible (its visibility session). The state is resolved once per
-- (security, p) with the knowledge of cutoff(p), and every price row takes the state of its
-- latest change point <= its date (an as-of join). A version that becomes visible in
-- (cutoff(p), cutoff(t)] has its own change point in (p, t], so row t always sees exactly
-- what was known at cutoff(t) — a split announced after t never reaches row t.
--
-- Pruning, so the cost does not grow with the lake's history (every change point would
-- otherwise join every earlier version, and everything visible before $clamp is visible at
-- every change point). Visibility only grows: a version is visible at change point p iff
-- its visibility session is <= p (the cutoffs increase with the session), and every change
-- point is >= $clamp. A key (what each row_number below partitions by besides p) is
-- "settled" at session s when none of its versions becomes visible after s: from s on it
-- resolves to the same version. The output is the same, bit for bit:
-- * of a key's versions that become visible on one session, only the latest can ever be
--   the key's latest visible version (the latest of a growing set never goes back to one it
--   beat): the others are dropped (ca_w, sm_w, fu_top; exact ties are all kept, so the
--   row_number's pick among them is among the same rows);
-- * corporate actions: the actions settled at $clamp whose ex-dates come before every
--   unsettled action's are, resolved alike, the first factors of every change point's
--   product. They are resolved and multiplied once (ca_early) and each change point
--   multiplies on from that product: product() folds left in its ORDER BY order, so these
--   are the same multiplications in the same order;
-- * security master: a date visible at $clamp is visible at every change point, so no
--   earlier date is ever the latest (sm_floor);
-- * fundamentals: a period matters only while it can be among the four latest stated ones:
--   not from the session its retraction is settled, nor from the one four later stated
--   periods are all settled (fu_dead); it is joined only to the change points before that,
--   and not at all when that is $clamp.
-- The change points themselves still come from every version (ca_cp, sm_cp, fu_cp).
WITH
-- the first session ($clamp): every change point is on or after it
clamp AS (
    SELECT min(d) AS d FROM cal
),

-- ---- corporate actions -> cumulative adjustment factors ----------------------------------
-- Visibility of an action is judged at fact_cutoff: the row's own cutoff, or in the history
-- as known at one session, that session's: an action published after its ex-date's cutoff
-- but by that session's (a late folder) adjusts the rows from its ex-date on, as the lake
-- then says.
-- (Sessions share a fact_cutoff in a view: the first session that reads at each one.)
fact_cal AS (
    SELECT fact_cutoff, min(d) AS d FROM cal GROUP BY fact_cutoff
),
ca_v AS (
    SELECT a.*, greatest(k.d, s.d) AS vis_day
    FROM corporate_actions a
    ASOF JOIN fact_cal k ON a.known_at <= k.fact_cutoff
    ASOF JOIN cal s ON a.valid_date <= s.d
    WHERE a.known_at <= $known_at AND a.valid_date <= $end
),
-- the ex-date close each dividend factor uses: its first published version (known at the
-- ex-date's own publication, so before any row that applies the factor)
ex_close AS (
    SELECT security_id, valid_date AS ex, arg_min(close, known_at) AS close
    FROM prices
    SEMI JOIN (
        SELECT DISTINCT security_id, valid_date FROM ca_v WHERE action_type = 'dividend'
    ) USING (security_id, valid_date)
    WHERE known_at <= $known_at
    GROUP BY 1, 2
),
ca_cp AS (
    SELECT DISTINCT v.security_id, v.vis_day AS p
    FROM ca_v v
),
-- the versions ca_state can resolve to: of each action's versions that become visible on
-- one session, the latest (header: pruning)
ca_w AS (
    SELECT * FROM ca_v
    QUALIFY rank() OVER (
        PARTITION BY security_id, action_type, action_id, valid_date, vis_day
        ORDER BY known_at DESC, _ingested_at DESC, _batch_id DESC
    ) = 1
),
-- per security, the first ex-date of an action not settled at $clamp (a version of it
-- becomes visible later): the actions going ex before it are "early", resolved once
ca_open AS (
    SELECT security_id, min(valid_date) AS ex
    FROM (
        SELECT security_id, valid_date
        FROM ca_w
        GROUP BY security_id, action_type, action_id, valid_date
        HAVING NOT bool_and(vis_day = (SELECT d FROM clamp))
    )
    GROUP BY 1
),
ca_x AS (
    SELECT v.*, o.ex IS NULL OR v.valid_date < o.ex AS early
    FROM ca_w v LEFT JOIN ca_open o ON o.security_id = v.security_id
),
ca_state AS (
    SELECT cp.security_id, cp.p, v.action_type, v.action_id, v.valid_date AS ex, v.ratio,
           v.amount, v._deleted,
           row_number() OVER (
               PARTITION BY cp.security_id, cp.p, v.action_type, v.action_id, v.valid_date
               ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
           ) AS rn
    FROM ca_cp cp
    JOIN cal c ON c.d = cp.p
    JOIN ca_x v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
                AND v.known_at <= c.fact_cutoff AND NOT v.early
    UNION ALL
    -- the early actions once (p NULL): at every change point each resolves to its latest
    -- version of all
    SELECT security_id, NULL AS p, action_type, action_id, valid_date AS ex, ratio, amount,
           _deleted,
           row_number() OVER (
               PARTITION BY security_id, action_type, action_id, valid_date
               ORDER BY known_at DESC, _ingested_at DESC, _batch_id DESC
           ) AS rn
    FROM ca_x WHERE early
),
-- every action going ex on one date together (several dividends may share an ex-date):
-- the split ratio k and the cash D per old share make the ex-date's total return
-- (close * k + D) / previous close, so its factor is k + D / close
ca_ex AS (
    SELECT security_id, p, ex,
           product(CASE WHEN action_type = 'split' AND ratio > 0 THEN ratio ELSE 1.0 END
                   ORDER BY action_id) AS k,
           sum(CASE WHEN action_type = 'dividend' AND amount > 0 THEN amount ELSE 0.0 END
               ORDER BY action_id) AS cash
    FROM ca_state WHERE rn = 1 AND NOT _deleted
    GROUP BY 1, 2, 3
),
ca_factor AS (
    SELECT s.security_id, s.p, s.ex, s.k,
           CASE WHEN e.close > 0 THEN s.k + s.cash / e.close ELSE s.k END AS f
    FROM ca_ex s LEFT JOIN ex_close e ON e.security_id = s.security_id AND e.ex = s.ex
),
-- the early factors' product, folded in ex-date order as adj folds them
ca_early AS (
    SELECT security_id, max(ex) AS ex, product(f ORDER BY ex) AS f, product(k ORDER BY ex) AS k
    FROM ca_factor WHERE p IS NULL GROUP BY 1
),
adj AS (
    SELECT security_id, p,
           product(f ORDER BY ex) AS adj_factor,
           product(k ORDER BY ex) AS split_factor
    FROM (
        SELECT security_id, p, ex, f, k FROM ca_factor WHERE p IS NOT NULL
        UNION ALL
        -- every change point starts from the early product (its ex-date, the last early
        -- one, is before any other of the change point's)
        SELECT cp.security_id, cp.p, e.ex, e.f, e.k
        FROM ca_cp cp JOIN ca_early e ON e.security_id = cp.security_id
    )
    GROUP BY 1, 2
),

-- ---- security master (EFFECTIVE) ------------------------------------------------------------
sm_v AS (
    SELECT m.*, greatest(k.d, s.d) AS vis_day
    FROM security_master m
    ASOF JOIN cal k ON m.known_at <= k.cutoff
    ASOF JOIN cal s ON m.valid_date <= s.d
    WHERE m.known_at <= $known_at AND m.valid_date <= $end
),
sm_cp AS (
    SELECT DISTINCT security_id, vis_day AS p FROM sm_v
),
-- per security, the latest date visible at $clamp: visible at every change point, it beats
-- every earlier date in sm_state
sm_floor AS (
    SELECT security_id, max(valid_date) AS floor
    FROM sm_v WHERE vis_day = (SELECT d FROM clamp)
    GROUP BY 1
),
-- the versions sm_latest can resolve to: no date before the floor, and of each date's
-- versions that become visible on one session, the latest
sm_w AS (
    SELECT v.*
    FROM sm_v v LEFT JOIN sm_floor f ON f.security_id = v.security_id
    WHERE f.floor IS NULL OR v.valid_date >= f.floor
    QUALIFY rank() OVER (
        PARTITION BY v.security_id, v.valid_date, v.vis_day
        ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
    ) = 1
),
sm_latest AS (
    SELECT cp.security_id, cp.p, v.valid_date, v.listed, v.sector, v.list_date, v.delist_date,
           v._deleted,
           row_number() OVER (
               PARTITION BY cp.security_id, cp.p, v.valid_date
               ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
           ) AS rn
    FROM sm_cp cp
    JOIN cal c ON c.d = cp.p
    JOIN sm_w v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
                AND v.known_at <= c.cutoff
),
sm_state AS (
    -- the version in force at p is the resolved version with the latest effective date;
    -- a retracted (deleted) one ends the previous state and states nothing
    SELECT security_id, p,
           CASE WHEN _deleted THEN NULL ELSE listed END AS listed,
           CASE WHEN _deleted THEN NULL ELSE sector END AS sector,
           list_date, delist_date
    FROM (
        SELECT *, row_number() OVER (
            PARTITION BY security_id, p ORDER BY valid_date DESC
        ) AS k
        FROM sm_latest WHERE rn = 1
    ) WHERE k = 1
),

-- ---- fundamentals: latest balance sheet, trailing-4-quarter flows -------------------------
fu_v AS (
    SELECT f.*, greatest(k.d, s.d) AS vis_day
    FROM fundamentals f
    ASOF JOIN cal k ON f.known_at <= k.cutoff
    ASOF JOIN cal s ON f.valid_date <= s.d
    WHERE f.known_at <= $known_at AND f.valid_date <= $end
),
fu_cp AS (
    SELECT DISTINCT security_id, vis_day AS p FROM fu_v
),
-- of each period's versions that become visible on one session, the latest (header); final:
-- its latest version of all (what it resolves to once settled)
fu_top AS (
    SELECT *, rank() OVER (
        PARTITION BY security_id, fiscal_period
        ORDER BY known_at DESC, _ingested_at DESC, _batch_id DESC
    ) = 1 AS final
    FROM fu_v
    QUALIFY rank() OVER (
        PARTITION BY security_id, fiscal_period, vis_day
        ORDER BY known_at DESC, _ingested_at DESC, _batch_id DESC
    ) = 1
),
-- per period: settled (the session from which it resolves to its final version), whether
-- that states the period (live) or retracts it (gone), its valid date, and the latest valid
-- date any version gives it (hi)
fu_key AS (
    SELECT security_id, fiscal_period,
           max(vis_day) AS settled,
           bool_and(NOT _deleted) FILTER (WHERE final) AS live,
           bool_and(_deleted) FILTER (WHERE final) AS gone,
           min(valid_date) FILTER (WHERE final) AS lo,
           max(valid_date) AS hi
    FROM fu_top GROUP BY 1, 2
),
-- the fourth latest valid date among the live periods settled at $clamp: they are among
-- every change point's periods, so no period dated before it all along ever ranks <= 4
fu_floor AS (
    SELECT security_id, min(lo) AS floor
    FROM (
        SELECT security_id, lo,
               row_number() OVER (PARTITION BY security_id ORDER BY lo DESC) AS n
        FROM fu_key WHERE live AND settled = (SELECT d FROM clamp)
    )
    WHERE n <= 4 GROUP BY 1 HAVING count(*) = 4
),
-- from each live period in valid-date order: the session from which it and the next three
-- are all settled (stated at every change point from then on)
fu_next4 AS (
    SELECT security_id, lo, max(settled) OVER w AS settled, count(*) OVER w AS n
    FROM fu_key WHERE live
    WINDOW w AS (PARTITION BY security_id ORDER BY lo ROWS BETWEEN CURRENT ROW AND 3 FOLLOWING)
),
-- per period, the first change point it cannot matter at (none: NULL): its retraction
-- settled; four live periods dated after every version of it settled (the first four from
-- the first one after it); or $clamp, before the floor. It would rank >= 5 or not at all,
-- and the four latest ranks stay as they were.
fu_dead AS (
    SELECT k.security_id, k.fiscal_period,
           least(CASE WHEN k.gone THEN k.settled END,
                 CASE WHEN n.n = 4 THEN n.settled END,
                 CASE WHEN k.hi < f.floor THEN (SELECT d FROM clamp) END) AS dead
    FROM fu_key k
    ASOF LEFT JOIN fu_next4 n ON n.security_id = k.security_id AND n.lo > k.hi
    LEFT JOIN fu_floor f ON f.security_id = k.security_id
),
-- the versions fu_latest can resolve to: a period dead at $clamp has none
fu_w AS (
    SELECT v.*, k.dead
    FROM fu_top v
    JOIN fu_dead k ON k.security_id = v.security_id AND k.fiscal_period = v.fiscal_period
    WHERE k.dead IS DISTINCT FROM (SELECT d FROM clamp)
),
fu_latest AS (
    SELECT cp.security_id, cp.p, v.fiscal_period, v.valid_date, v.revenue, v.net_income,
           v.book_equity, v.total_assets, v.operating_cash_flow, v.shares_outstanding,
           v._deleted,
           row_number() OVER (
               PARTITION BY cp.security_id, cp.p, v.fiscal_period
               ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
           ) AS rn
    FROM fu_cp cp
    JOIN cal c ON c.d = cp.p
    JOIN fu_w v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
                AND v.known_at <= c.cutoff
                AND (v.dead IS NULL OR cp.p < v.dead)
),
fu_ranked AS (
    SELECT *, row_number() OVER (PARTITION BY security_id, p ORDER BY valid_date DESC) AS q
    FROM fu_latest WHERE rn = 1 AND NOT _deleted
),
fu_state AS (
    SELECT security_id, p,
           max(valid_date) FILTER (WHERE q = 1) AS period_end,
           max(book_equity) FILTER (WHERE q = 1) * 1e6 AS book_equity,
           max(total_assets) FILTER (WHERE q = 1) * 1e6 AS total_assets,
           max(shares_outstanding) FILTER (WHERE q = 1) AS shares_q,
           -- trailing four quarters only when they are the four latest and span one year
           CASE WHEN count(*) FILTER (WHERE q <= 4) = 4
                 AND max(valid_date) FILTER (WHERE q = 1)
                     - min(valid_date) FILTER (WHERE q <= 4) <= 300
                THEN sum(net_income ORDER BY q) FILTER (WHERE q <= 4) * 1e6 END AS net_income,
           CASE WHEN count(*) FILTER (WHERE q <= 4) = 4
                 AND max(valid_date) FILTER (WHERE q = 1)
                     - min(valid_date) FILTER (WHERE q <= 4) <= 300
                THEN sum(revenue ORDER BY q) FILTER (WHERE q <= 4) * 1e6 END AS revenue,
           CASE WHEN count(*) FILTER (WHERE q <= 4) = 4
                 AND max(valid_date) FILTER (WHERE q = 1)
                     - min(valid_date) FILTER (WHERE q <= 4) <= 300
                THEN sum(operating_cash_flow ORDER BY q) FILTER (WHERE q <= 4) * 1e6
           END AS operating_cash_flow
    FROM fu_ranked GROUP BY 1, 2
),
-- the cumulative split factor at each fundamentals' period end, to roll shares forward
fu_split AS (
    SELECT f.security_id, f.p, a.split_factor AS split_at_period
    FROM fu_state f ASOF LEFT JOIN adj a
      ON a.security_id = f.security_id AND f.period_end >= a.p
),

-- ---- every slowly changing state at each change point of any of them ----------------------
-- One as-of join of the price rows instead of one per input: the state at the latest change
-- point p <= d of any input holds, for each input, its state at its own latest change point
-- <= p, which is its latest <= d (no change point of any input lies in (p, d]).
st_cp AS (
    SELECT security_id, p FROM adj
    UNION SELECT security_id, p FROM sm_state
    UNION SELECT security_id, p FROM fu_state
),
st AS (
    SELECT cp.security_id, cp.p, a.adj_factor, a.split_factor,
           sm.listed, sm.sector, sm.list_date, sm.delist_date,
           fu.book_equity, fu.total_assets, fu.net_income, fu.revenue,
           fu.operating_cash_flow, fu.shares_q, fs.split_at_period
    FROM st_cp cp
    ASOF LEFT JOIN adj a ON a.security_id = cp.security_id AND cp.p >= a.p
    ASOF LEFT JOIN sm_state sm ON sm.security_id = cp.security_id AND cp.p >= sm.p
    ASOF LEFT JOIN fu_state fu ON fu.security_id = cp.security_id AND cp.p >= fu.p
    LEFT JOIN fu_split fs ON fs.security_id = fu.security_id AND fs.p = fu.p
)

SELECT * FROM st
