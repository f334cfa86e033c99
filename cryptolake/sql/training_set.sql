-- Point-in-time training rows: gold features joined with their labels.
--
-- Parameters (DuckDB prepared parameters):
--   $symbols  VARCHAR[]    symbols to include, e.g. ['BTC/USD', 'ETH/USD']
--   $exchanges VARCHAR[]   venues to include, or NULL for every venue in the lake
--   $start    TIMESTAMPTZ  first bar open time included (inclusive)
--   $end      TIMESTAMPTZ  bar open times strictly before this are included (exclusive)
--   $as_of    TIMESTAMPTZ  the knowledge cut: a row is returned only if its features AND its
--                          label were knowable by then (close_time <= $as_of and
--                          label_available_time <= $as_of), so a training set built "as of" a
--                          date never contains a label from after that date.
--
-- Reads the lake views gold_features and gold_labels (cryptolake.duck.connect).
-- Ordered by symbol, ts (then exchange, timeframe so the order is total).
SELECT
    f.* EXCLUDE (bar_date),
    l.next_log_return,
    l.next_direction,
    l.label_available_time
FROM gold_features AS f
JOIN gold_labels AS l
    ON  l.exchange = f.exchange
    AND l.symbol = f.symbol
    AND l.timeframe = f.timeframe
    AND l.ts = f.ts
WHERE list_contains($symbols, f.symbol)
  AND ($exchanges IS NULL OR list_contains($exchanges, f.exchange))
  AND f.ts >= $start
  AND f.ts < $end
  AND f.close_time <= $as_of
  AND l.label_available_time <= $as_of
ORDER BY f.symbol, f.ts, f.exchange, f.timeframe
