-- Point-in-time alternative features per coin and bar: gold.alt_features (issue #5).
-- Inputs (views the caller creates: from Delta via cryptolake.duck in production, from frames in tests):
--   alt_bars(coin, timeframe, ts, close_time)                    one row per coin and bar
--   alt_docs(doc_key, kind, coins, available_time, sentiment)    silver.documents
--   alt_chain(coin, bucket_end, tx_count, active_addresses, avg_gas_price_gwei,
--             whale_transfers, whale_volume, exchange_inflow, exchange_outflow)
--                                                                silver.chain_activity, chain -> native coin
-- A bar closing at T sees only records with available_time <= T (a chain bucket is available at its
-- bucket_end). Windows are (T - W, T]. Duplicates are aggregated first (one row per coin and
-- available_time), so every ASOF match is unique and the join is deterministic.
-- Exactness: sums are taken in integers (sentiment in units of 1e-4 -- VADER's compound has four
-- decimals; chain volumes in units of 1e-9 coin), so truncated and full histories give bit-identical
-- cumulative sums and every window value is cum(T) - cum(T - W).
-- Features:
--   news_count_W, post_count_W        documents per kind in the window
--   sent_mean_W, sent_std_W           mean and population std of document sentiment (std needs >= 2)
--   sent_vol_W                        population std of the hourly mean sentiment over the complete clock
--                                     hours (H - 1h, H] with H in (T - W, T] that have documents (needs >= 2
--                                     such hours); the hourly mean is rounded to 1e-4; a sentiment
--                                     volatility, not a dispersion
--   chain_tx_count_1h, chain_active_addr_1h, chain_gas_price_gwei_1h
--                                     the latest hourly chain bucket available in (T - 1h, T]
--   chain_whale_count_24h, chain_whale_volume_24h, chain_exchange_netflow_24h (inflow - outflow)
--                                     sums over the chain buckets available in (T - 24h, T]; null when
--                                     no bucket is (no data is not zero flow)
WITH exploded AS (
    SELECT DISTINCT doc_key, kind, unnest(coins) AS coin, available_time,
           CAST(round(sentiment * 10000) AS BIGINT) AS s
    FROM alt_docs
),
events AS (
    SELECT coin, available_time,
           sum(CASE WHEN kind = 'news' THEN 1 ELSE 0 END) AS n_news,
           sum(CASE WHEN kind = 'social' THEN 1 ELSE 0 END) AS n_post,
           count(*) AS n,
           sum(s) AS s1,
           sum(CAST(s AS HUGEINT) * s) AS s2
    FROM exploded
    GROUP BY coin, available_time
),
cum AS (
    SELECT coin, available_time,
           sum(n_news) OVER w AS c_news, sum(n_post) OVER w AS c_post, sum(n) OVER w AS c_n,
           sum(s1) OVER w AS c_s1, sum(s2) OVER w AS c_s2
    FROM events
    WINDOW w AS (PARTITION BY coin ORDER BY available_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
hours AS (  -- clock hour (hour_end - 1h, hour_end]: available at hour_end
    SELECT coin,
           date_trunc('hour', available_time - INTERVAL 1 MICROSECOND) + INTERVAL 1 HOUR AS hour_end,
           CAST(round(sum(s) / count(*)) AS BIGINT) AS m
    FROM exploded
    GROUP BY ALL
),
hours_cum AS (
    SELECT coin, hour_end,
           count(*) OVER w AS c_k, sum(m) OVER w AS c_m1, sum(CAST(m AS HUGEINT) * m) OVER w AS c_m2
    FROM hours
    WINDOW w AS (PARTITION BY coin ORDER BY hour_end ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
chain_cum AS (
    SELECT coin, bucket_end, tx_count, active_addresses, avg_gas_price_gwei,
           count(*) OVER w AS c_b,
           sum(coalesce(whale_transfers, 0)) OVER w AS c_wc,
           sum(CAST(round(coalesce(whale_volume, 0) * 1e9) AS HUGEINT)) OVER w AS c_wv,
           sum(CAST(round((coalesce(exchange_inflow, 0) - coalesce(exchange_outflow, 0)) * 1e9) AS HUGEINT))
               OVER w AS c_nf
    FROM alt_chain
    WINDOW w AS (PARTITION BY coin ORDER BY bucket_end ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
grid AS (
    SELECT coin, timeframe, ts, close_time,
           close_time - INTERVAL 1 HOUR AS t_1h,
           close_time - INTERVAL 4 HOUR AS t_4h,
           close_time - INTERVAL 24 HOUR AS t_24h
    FROM alt_bars
),
joined AS (
    SELECT g.coin, g.timeframe, g.ts, g.close_time, g.t_1h,
           coalesce(a.c_news, 0) AS a_news, coalesce(a.c_post, 0) AS a_post, coalesce(a.c_n, 0) AS a_n,
           coalesce(a.c_s1, 0) AS a_s1, coalesce(a.c_s2, 0) AS a_s2,
           coalesce(h1.c_news, 0) AS h1_news, coalesce(h1.c_post, 0) AS h1_post, coalesce(h1.c_n, 0) AS h1_n,
           coalesce(h1.c_s1, 0) AS h1_s1, coalesce(h1.c_s2, 0) AS h1_s2,
           coalesce(h4.c_news, 0) AS h4_news, coalesce(h4.c_post, 0) AS h4_post, coalesce(h4.c_n, 0) AS h4_n,
           coalesce(h4.c_s1, 0) AS h4_s1, coalesce(h4.c_s2, 0) AS h4_s2,
           coalesce(d.c_news, 0) AS d_news, coalesce(d.c_post, 0) AS d_post, coalesce(d.c_n, 0) AS d_n,
           coalesce(d.c_s1, 0) AS d_s1, coalesce(d.c_s2, 0) AS d_s2,
           coalesce(ha.c_k, 0) AS ha_k, coalesce(ha.c_m1, 0) AS ha_m1, coalesce(ha.c_m2, 0) AS ha_m2,
           coalesce(hh4.c_k, 0) AS hh4_k, coalesce(hh4.c_m1, 0) AS hh4_m1, coalesce(hh4.c_m2, 0) AS hh4_m2,
           coalesce(hd.c_k, 0) AS hd_k, coalesce(hd.c_m1, 0) AS hd_m1, coalesce(hd.c_m2, 0) AS hd_m2,
           ca.bucket_end AS ca_end, ca.tx_count AS ca_tx, ca.active_addresses AS ca_addr,
           ca.avg_gas_price_gwei AS ca_gas,
           coalesce(ca.c_b, 0) AS ca_b, coalesce(ca.c_wc, 0) AS ca_wc, coalesce(ca.c_wv, 0) AS ca_wv,
           coalesce(ca.c_nf, 0) AS ca_nf,
           coalesce(cd.c_b, 0) AS cd_b, coalesce(cd.c_wc, 0) AS cd_wc, coalesce(cd.c_wv, 0) AS cd_wv,
           coalesce(cd.c_nf, 0) AS cd_nf
    FROM grid g
    ASOF LEFT JOIN cum a ON g.coin = a.coin AND g.close_time >= a.available_time
    ASOF LEFT JOIN cum h1 ON g.coin = h1.coin AND g.t_1h >= h1.available_time
    ASOF LEFT JOIN cum h4 ON g.coin = h4.coin AND g.t_4h >= h4.available_time
    ASOF LEFT JOIN cum d ON g.coin = d.coin AND g.t_24h >= d.available_time
    ASOF LEFT JOIN hours_cum ha ON g.coin = ha.coin AND g.close_time >= ha.hour_end
    ASOF LEFT JOIN hours_cum hh4 ON g.coin = hh4.coin AND g.t_4h >= hh4.hour_end
    ASOF LEFT JOIN hours_cum hd ON g.coin = hd.coin AND g.t_24h >= hd.hour_end
    ASOF LEFT JOIN chain_cum ca ON g.coin = ca.coin AND g.close_time >= ca.bucket_end
    ASOF LEFT JOIN chain_cum cd ON g.coin = cd.coin AND g.t_24h >= cd.bucket_end
),
windows AS (
    SELECT coin, timeframe, ts, close_time,
           a_news - h1_news AS news_count_1h, a_post - h1_post AS post_count_1h,
           a_n - h1_n AS n_1h, a_s1 - h1_s1 AS s1_1h, a_s2 - h1_s2 AS s2_1h,
           a_news - h4_news AS news_count_4h, a_post - h4_post AS post_count_4h,
           a_n - h4_n AS n_4h, a_s1 - h4_s1 AS s1_4h, a_s2 - h4_s2 AS s2_4h,
           a_news - d_news AS news_count_24h, a_post - d_post AS post_count_24h,
           a_n - d_n AS n_24h, a_s1 - d_s1 AS s1_24h, a_s2 - d_s2 AS s2_24h,
           ha_k - hh4_k AS k_4h, ha_m1 - hh4_m1 AS m1_4h, ha_m2 - hh4_m2 AS m2_4h,
           ha_k - hd_k AS k_24h, ha_m1 - hd_m1 AS m1_24h, ha_m2 - hd_m2 AS m2_24h,
           CASE WHEN ca_end > t_1h THEN ca_tx END AS chain_tx_1h,
           CASE WHEN ca_end > t_1h THEN ca_addr END AS chain_addr_1h,
           CASE WHEN ca_end > t_1h THEN ca_gas END AS chain_gas_1h,
           ca_b - cd_b AS b_24h, ca_wc - cd_wc AS wc_24h, ca_wv - cd_wv AS wv_24h, ca_nf - cd_nf AS nf_24h
    FROM joined
)
SELECT coin, timeframe, ts, close_time,
       CAST(news_count_1h AS DOUBLE) AS news_count_1h, CAST(post_count_1h AS DOUBLE) AS post_count_1h,
       CASE WHEN n_1h > 0 THEN s1_1h / n_1h / 10000.0 END AS sent_mean_1h,
       CASE WHEN n_1h > 1 THEN sqrt(greatest(CAST(s2_1h * n_1h - s1_1h * s1_1h AS DOUBLE), 0)) / n_1h / 10000.0
       END AS sent_std_1h,
       CAST(news_count_4h AS DOUBLE) AS news_count_4h, CAST(post_count_4h AS DOUBLE) AS post_count_4h,
       CASE WHEN n_4h > 0 THEN s1_4h / n_4h / 10000.0 END AS sent_mean_4h,
       CASE WHEN n_4h > 1 THEN sqrt(greatest(CAST(s2_4h * n_4h - s1_4h * s1_4h AS DOUBLE), 0)) / n_4h / 10000.0
       END AS sent_std_4h,
       CAST(news_count_24h AS DOUBLE) AS news_count_24h, CAST(post_count_24h AS DOUBLE) AS post_count_24h,
       CASE WHEN n_24h > 0 THEN s1_24h / n_24h / 10000.0 END AS sent_mean_24h,
       CASE WHEN n_24h > 1 THEN sqrt(greatest(CAST(s2_24h * n_24h - s1_24h * s1_24h AS DOUBLE), 0)) / n_24h / 10000.0
       END AS sent_std_24h,
       CASE WHEN k_4h > 1 THEN sqrt(greatest(CAST(m2_4h * k_4h - m1_4h * m1_4h AS DOUBLE), 0)) / k_4h / 10000.0
       END AS sent_vol_4h,
       CASE WHEN k_24h > 1 THEN sqrt(greatest(CAST(m2_24h * k_24h - m1_24h * m1_24h AS DOUBLE), 0)) / k_24h / 10000.0
       END AS sent_vol_24h,
       CAST(chain_tx_1h AS DOUBLE) AS chain_tx_count_1h,
       CAST(chain_addr_1h AS DOUBLE) AS chain_active_addr_1h,
       CAST(chain_gas_1h AS DOUBLE) AS chain_gas_price_gwei_1h,
       CASE WHEN b_24h > 0 THEN CAST(wc_24h AS DOUBLE) END AS chain_whale_count_24h,
       CASE WHEN b_24h > 0 THEN CAST(wv_24h AS DOUBLE) / 1e9 END AS chain_whale_volume_24h,
       CASE WHEN b_24h > 0 THEN CAST(nf_24h AS DOUBLE) / 1e9 END AS chain_exchange_netflow_24h
FROM windows
ORDER BY coin, timeframe, close_time
