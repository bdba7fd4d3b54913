-- Test reference for tests/pit/test_panel_pruning.py: sql/pit/panel.sql as it was before it
-- pruned the versions that cannot affect its output (every change point joined with every
-- earlier version). The pruned query must return exactly what this one returns.
--
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
WITH
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
ca_state AS (
    SELECT cp.security_id, cp.p, v.action_type, v.action_id, v.valid_date AS ex, v.ratio,
           v.amount, v._deleted,
           row_number() OVER (
               PARTITION BY cp.security_id, cp.p, v.action_type, v.action_id, v.valid_date
               ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
           ) AS rn
    FROM ca_cp cp
    JOIN cal c ON c.d = cp.p
    JOIN ca_v v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
                AND v.known_at <= c.fact_cutoff
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
adj AS (
    SELECT security_id, p,
           product(f ORDER BY ex) AS adj_factor,
           product(k ORDER BY ex) AS split_factor
    FROM ca_factor GROUP BY 1, 2
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
sm_latest AS (
    SELECT cp.security_id, cp.p, v.valid_date, v.listed, v.sector, v.list_date, v.delist_date,
           v._deleted,
           row_number() OVER (
               PARTITION BY cp.security_id, cp.p, v.valid_date
               ORDER BY v.known_at DESC, v._ingested_at DESC, v._batch_id DESC
           ) AS rn
    FROM sm_cp cp
    JOIN cal c ON c.d = cp.p
    JOIN sm_v v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
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
    JOIN fu_v v ON v.security_id = cp.security_id AND v.valid_date <= cp.p
                AND v.known_at <= c.cutoff
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
