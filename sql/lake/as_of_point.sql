-- Point-in-time snapshot of a POINT table.
-- `candidates` holds the rows with known_at <= :known_at and valid_date in the asked range
-- (already filtered while scanning the Delta table). For each (key, valid_date) keep the
-- version known last; ties on known_at go to the later ingestion, then the larger batch id,
-- so the answer never depends on file order. Retractions (_deleted) hide the fact.
SELECT * EXCLUDE (_rn)
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY {key_columns}, valid_date
            ORDER BY known_at DESC, _ingested_at DESC, _batch_id DESC
        ) AS _rn
    FROM candidates
)
WHERE _rn = 1 AND NOT _deleted
ORDER BY valid_date, {key_columns}
