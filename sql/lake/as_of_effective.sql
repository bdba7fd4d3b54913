-- Point-in-time view of an EFFECTIVE (slowly changing) table.
-- `candidates` holds rows with known_at <= :known_at and valid_date <= the end of the
-- asked range. First resolve each (key, valid_date) to its last known version, then give
-- every surviving version the date until which it stays in force (the next version's
-- valid_date), and keep the versions in force at some point of [valid_from, valid_to].
WITH latest AS (
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
    WHERE _rn = 1
),
spans AS (
    SELECT
        *,
        lead(valid_date) OVER (PARTITION BY {key_columns} ORDER BY valid_date) AS valid_until
    FROM latest
)
SELECT *
FROM spans
WHERE NOT _deleted
  AND (valid_until IS NULL OR valid_until > $valid_from)
  AND valid_date <= $valid_to
ORDER BY {key_columns}, valid_date
