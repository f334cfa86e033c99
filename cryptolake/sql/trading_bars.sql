-- The trader's batch feed: every silver bar of the traded series, valid or not, in time order.
--
-- Parameters (DuckDB prepared parameters):
--   $exchange  VARCHAR      the venue
--   $timeframe VARCHAR      bar timeframe, e.g. '30m'
--   $symbols   VARCHAR[]    symbols to include
--   $start     TIMESTAMPTZ  first bar open time included (inclusive)
--   $end       TIMESTAMPTZ  bar open times strictly before this are included (exclusive)
--
-- Invalid bars are returned on purpose: the trader decodes every candle through the one candle
-- rule (trader.feeds.base.decode_bar, cryptolake.bars), exactly as it decodes the candle topic,
-- so a backtest and a paper run skip, count and report the same bars. Silver holds one row per
-- bar (duplicates collapsed to the first landed copy), as the Kafka feed keeps the first arrival.
SELECT exchange, symbol, timeframe, open_time, open, high, low, close, volume
FROM silver_bars
WHERE exchange = $exchange
  AND timeframe = $timeframe
  AND list_contains($symbols, symbol)
  AND open_time >= $start
  AND open_time < $end
ORDER BY open_time, symbol
