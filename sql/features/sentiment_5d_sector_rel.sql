-- name: sentiment_5d_sector_rel
-- inputs: [sentiment, sector, in_universe]
-- lookback: 4
-- description: 5-day mean sentiment (>= 3 observed, full 5-row window) minus its in-universe sector median
WITH s AS (
    -- explicit lags (not AVG OVER) so the arithmetic order is fixed per row:
    -- the value is bit-identical whatever history precedes the window
    SELECT date, security_id, sector, in_universe, sentiment AS s0,
           lag(sentiment, 1) OVER w AS s1, lag(sentiment, 2) OVER w AS s2,
           lag(sentiment, 3) OVER w AS s3, lag(sentiment, 4) OVER w AS s4,
           row_number() OVER w AS k
    FROM panel
    WINDOW w AS (PARTITION BY security_id ORDER BY date)
),
m AS (
    SELECT date, security_id, sector, in_universe,
           CASE WHEN k >= 5
                 AND (s0 IS NOT NULL)::INT + (s1 IS NOT NULL)::INT + (s2 IS NOT NULL)::INT
                   + (s3 IS NOT NULL)::INT + (s4 IS NOT NULL)::INT >= 3
                THEN (coalesce(s0, 0) + coalesce(s1, 0) + coalesce(s2, 0) + coalesce(s3, 0) + coalesce(s4, 0))
                   / ((s0 IS NOT NULL)::INT + (s1 IS NOT NULL)::INT + (s2 IS NOT NULL)::INT
                   + (s3 IS NOT NULL)::INT + (s4 IS NOT NULL)::INT)
           END AS x
    FROM s
),
med AS (
    SELECT date, sector, median(x) AS sector_median
    FROM m
    WHERE in_universe AND x IS NOT NULL AND sector IS NOT NULL
    GROUP BY date, sector
)
SELECT m.date, m.security_id, m.x - med.sector_median AS value
FROM m JOIN med USING (date, sector)
WHERE m.x IS NOT NULL
