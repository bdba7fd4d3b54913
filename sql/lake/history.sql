-- Every version of the rows matching a key, in valid-time then knowledge-time order.
SELECT *
FROM candidates
ORDER BY valid_date, known_at, _ingested_at
