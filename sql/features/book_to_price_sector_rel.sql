-- name: book_to_price_sector_rel
-- inputs: [book_equity, market_cap, sector, in_universe]
-- lookback: 0
-- description: book/price minus the median book/price of in-universe names in the same sector that date
WITH bp AS (
    SELECT date, security_id, sector, in_universe,
           CASE WHEN market_cap > 0 THEN book_equity / market_cap END AS x
    FROM panel
),
med AS (
    SELECT date, sector, median(x) AS sector_median
    FROM bp
    WHERE in_universe AND x IS NOT NULL AND sector IS NOT NULL
    GROUP BY date, sector
)
SELECT bp.date, bp.security_id, bp.x - med.sector_median AS value
FROM bp JOIN med USING (date, sector)
WHERE bp.x IS NOT NULL
