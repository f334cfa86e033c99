-- The trader's alternative-data side input: gold.alt_features rows of the traded coins (issue #10).
--
-- Parameters (DuckDB prepared parameters):
--   $timeframe VARCHAR      bar timeframe of the rows, e.g. '1h' (one timeframe: trader.altdata.AltFeatures)
--   $coins     VARCHAR[]    coins ('BTC' for BTC/USD and BTC-PERP: trader.altdata.coin_of)
--   $start     TIMESTAMPTZ  rows of bars closing after this (exclusive)
--   $end       TIMESTAMPTZ  rows of bars closing at or before this (inclusive)
--
-- The table has no availability column: a row is computed from records available by its close_time
-- (alt_features.sql), so a replay uses it from then on; a live runner stamps the rows it sees later
-- with the time it saw them (trader.altdata.LakeAltFeed).
SELECT *
FROM gold_alt_features
WHERE timeframe = $timeframe
  AND list_contains($coins, coin)
  AND close_time > $start
  AND close_time <= $end
ORDER BY coin, close_time
