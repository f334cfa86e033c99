-- The signals one model published for the traded series, in time order (gold.signals).
--
-- Parameters: $exchange VARCHAR, $timeframe VARCHAR, $symbols VARCHAR[], $model_version VARCHAR,
--             $start / $end TIMESTAMPTZ on bar_time (start inclusive, end exclusive).
SELECT signal_id, exchange, symbol, timeframe, bar_time, probability, direction, model_version, available_time
FROM gold_signals
WHERE exchange = $exchange
  AND timeframe = $timeframe
  AND list_contains($symbols, symbol)
  AND model_version = $model_version
  AND bar_time >= $start
  AND bar_time < $end
ORDER BY bar_time, symbol
