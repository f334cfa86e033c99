-- Point-in-time training rows with alternative features (issue #5).
--
-- The training_set placeholder below is replaced by the text of training_set.sql (gold features joined with their
-- labels; its parameters $symbols, $start, $end, $as_of and its semantics are unchanged), so the
-- two queries can never drift apart. Each training row then gains the gold.alt_features row of its
-- coin (the base of the symbol: 'BTC/USD' and 'BTC-PERP' -> 'BTC') and timeframe with the latest
-- close_time <= the bar's close_time (an ASOF join: the alt features used were computed from
-- records available by that close; an alt row closing later is never used). gold.alt_features has
-- one row per (coin, timeframe, close_time), so the match is unique and the output deterministic.
-- Rows without any alt row so far keep null alt features. Reads the views gold_features,
-- gold_labels and gold_alt_features (cryptolake.duck.connect).
WITH base AS (
{training_set}
),
keyed AS (
    SELECT *, split_part(replace(symbol, '-', '/'), '/', 1) AS alt_coin FROM base
)
SELECT k.* EXCLUDE (alt_coin),
       {alt_columns}
FROM keyed AS k
ASOF LEFT JOIN gold_alt_features AS a
    ON a.coin = k.alt_coin
    AND a.timeframe = k.timeframe
    AND k.close_time >= a.close_time
ORDER BY k.symbol, k.ts, k.exchange, k.timeframe
