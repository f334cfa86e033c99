-- Analytics views over the lake views created by cryptolake.duck.connect
-- (silver_bars, gold_features, gold_labels, gold_signals, trading_equity, ...).
--
-- Each view is one statement preceded by a header line
--   -- view: <name> requires: <lake view>[, <lake view> ...]
-- and is created only when every required lake view exists, so the file works on a
-- lake that has only some of its tables (cli.sql.apply_views).

-- view: bars_daily requires: silver_bars
-- Daily OHLCV per exchange/symbol/timeframe from the valid 30m (or any) bars.
CREATE OR REPLACE VIEW bars_daily AS
SELECT
    exchange,
    symbol,
    CAST(date_trunc('day', open_time) AS DATE) AS day,
    arg_min(open, open_time) AS open,
    max(high) AS high,
    min(low) AS low,
    arg_max(close, open_time) AS close,
    sum(volume) AS volume,
    count(*) AS bars,
    count(*) FILTER (WHERE NOT is_valid) AS flagged_bars,
    count(*) FILTER (WHERE gap_before) AS gaps
FROM silver_bars
GROUP BY ALL;

-- view: bar_quality requires: silver_bars
-- How many bars are flagged, per symbol and flag, so data problems are visible at a glance.
CREATE OR REPLACE VIEW bar_quality AS
SELECT
    exchange,
    symbol,
    timeframe,
    count(*) AS bars,
    min(open_time) AS first_bar,
    max(open_time) AS last_bar,
    count(*) FILTER (WHERE NOT is_valid) AS invalid_bars,
    count(*) FILTER (WHERE flag_high_low) AS high_low_flags,
    count(*) FILTER (WHERE flag_negative_volume) AS negative_volume_flags,
    count(*) FILTER (WHERE flag_ohlc_range) AS ohlc_range_flags,
    count(*) FILTER (WHERE flag_jump) AS jump_flags,
    count(*) FILTER (WHERE flag_stale) AS stale_flags,
    coalesce(sum(missing_bars_before), 0) AS missing_bars
FROM silver_bars
GROUP BY ALL;

-- view: feature_coverage requires: gold_features
-- Rows, time range and null counts of the model features per symbol.
CREATE OR REPLACE VIEW feature_coverage AS
SELECT
    exchange,
    symbol,
    timeframe,
    count(*) AS rows,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    count(*) FILTER (WHERE anomaly_flag) AS anomalies,
    count(*) - count(log_ret_1) AS null_log_ret_1,
    count(*) - count(rsi_14) AS null_rsi_14,
    count(*) - count(macd) AS null_macd,
    count(*) - count(volatility_20) AS null_volatility_20,
    count(*) - count(volume_z_20) AS null_volume_z_20
FROM gold_features
GROUP BY ALL;

-- view: label_balance requires: gold_labels
-- Share of up bars per symbol and month: the base rate the "always up" baseline scores.
CREATE OR REPLACE VIEW label_balance AS
SELECT
    exchange,
    symbol,
    timeframe,
    CAST(date_trunc('month', ts) AS DATE) AS month,
    count(*) AS labels,
    avg(next_direction) AS up_share,
    avg(next_log_return) AS mean_next_log_return
FROM gold_labels
GROUP BY ALL;

-- view: latest_signals requires: gold_signals
-- The most recent signal per exchange/symbol/timeframe/model.
CREATE OR REPLACE VIEW latest_signals AS
SELECT *
FROM gold_signals
QUALIFY row_number() OVER (
    PARTITION BY exchange, symbol, timeframe, model_version ORDER BY bar_time DESC
) = 1;

-- view: signal_hit_rate requires: gold_signals, gold_labels
-- How often each model's direction matched the realised next-bar direction.
CREATE OR REPLACE VIEW signal_hit_rate AS
SELECT
    s.model_version,
    s.exchange,
    s.symbol,
    s.timeframe,
    count(*) AS signals,
    avg(CASE WHEN s.direction = l.next_direction THEN 1.0 ELSE 0.0 END) AS hit_rate,
    avg(s.probability) AS mean_probability
FROM gold_signals AS s
JOIN gold_labels AS l
    ON  l.exchange = s.exchange
    AND l.symbol = s.symbol
    AND l.timeframe = s.timeframe
    AND l.ts = s.bar_time
GROUP BY ALL;
