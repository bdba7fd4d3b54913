-- Every version of the price cells (security, session) in [$start, $end] that have a version
-- published after the session's own research cutoff (a correction, or a late print), known
-- by $known_at, in as-of order: for a reader at T the cell's value is the last row with
-- known_at <= T (ties: later _ingested_at, then larger _batch_id, as sql/lake resolves them),
-- retracted when that row is `_deleted`. Corrections are sparse, so this is small.
--
-- Relations: `prices` (all versions) and `cal(d DATE, cutoff TIMESTAMPTZ)` (the sessions).
WITH late AS (
    SELECT DISTINCT p.security_id, p.valid_date
    FROM prices p JOIN cal c ON p.valid_date = c.d
    WHERE p.valid_date BETWEEN $start AND $end
      AND p.known_at <= $known_at AND p.known_at > c.cutoff
)
SELECT p.security_id, p.valid_date AS date, p.known_at, p.close, p.volume, p._deleted
FROM prices p
SEMI JOIN late USING (security_id, valid_date)
WHERE p.valid_date BETWEEN $start AND $end AND p.known_at <= $known_at
ORDER BY p.security_id, p.valid_date, p.known_at, p._ingested_at, p._batch_id
