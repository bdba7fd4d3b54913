-- Facts of the slowly changing inputs published after their own session's research cutoff:
-- a late folder's corporate actions (or an action revised after its ex-date) and sentiment.
-- The research history re-reads the rows they change as known from the first session that
-- knows them (pipelines/pit/history.py); such facts are sparse, so this is small.
-- One row per fact: its security, the first session it changes (`first_day`: its valid
-- session, or the calendar's first) and the first session whose cutoff knows it
-- (`seen_day`), only when that is later.
--
-- Relations: `corporate_actions`, `sentiment` (all versions) and `cal(d DATE, cutoff
-- TIMESTAMPTZ)` (the sessions of the history).
WITH facts AS (
    SELECT security_id, valid_date, known_at FROM corporate_actions
    WHERE known_at <= $known_at AND valid_date <= $end
    UNION ALL
    SELECT security_id, valid_date, known_at FROM sentiment
    WHERE known_at <= $known_at AND valid_date BETWEEN $start AND $end
)
SELECT DISTINCT f.security_id, s.d AS first_day, k.d AS seen_day
FROM facts f
ASOF JOIN cal s ON f.valid_date <= s.d
ASOF JOIN cal k ON f.known_at <= k.cutoff
WHERE k.d > s.d
ORDER BY seen_day, first_day, f.security_id
