-- Point-in-time alternative features per bar (issue #5).
-- Inputs (views the caller creates; from Delta via DuckDB in production, from frames in tests):
--   alt_bars(coin, symbol, timeframe, ts, close_time)            one row per bar
--   alt_docs(doc_key, kind, coins, available_time, sentiment)    silver.documents
-- A bar closing at T sees only documents with available_time <= T. Windows are (T - W, T].
-- Duplicates are aggregated first (one row per coin and available_time), so every ASOF match is
-- unique and the join is deterministic. Sentiment is summed in exact integer units of 1e-4
-- (VADER's compound has four decimals) so truncated and full histories give bit-identical sums.
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
grid AS (
    SELECT coin, symbol, timeframe, ts, close_time,
           close_time - INTERVAL 1 HOUR AS t_1h,
           close_time - INTERVAL 4 HOUR AS t_4h,
           close_time - INTERVAL 24 HOUR AS t_24h
    FROM alt_bars
),
joined AS (
    SELECT g.coin, g.symbol, g.timeframe, g.ts, g.close_time,
           coalesce(a.c_news, 0) AS a_news, coalesce(a.c_post, 0) AS a_post, coalesce(a.c_n, 0) AS a_n,
           coalesce(a.c_s1, 0) AS a_s1, coalesce(a.c_s2, 0) AS a_s2,
           coalesce(h1.c_news, 0) AS h1_news, coalesce(h1.c_post, 0) AS h1_post, coalesce(h1.c_n, 0) AS h1_n,
           coalesce(h1.c_s1, 0) AS h1_s1, coalesce(h1.c_s2, 0) AS h1_s2,
           coalesce(h4.c_news, 0) AS h4_news, coalesce(h4.c_post, 0) AS h4_post, coalesce(h4.c_n, 0) AS h4_n,
           coalesce(h4.c_s1, 0) AS h4_s1, coalesce(h4.c_s2, 0) AS h4_s2,
           coalesce(d.c_news, 0) AS d_news, coalesce(d.c_post, 0) AS d_post, coalesce(d.c_n, 0) AS d_n,
           coalesce(d.c_s1, 0) AS d_s1, coalesce(d.c_s2, 0) AS d_s2
    FROM grid g
    ASOF LEFT JOIN cum a ON g.coin = a.coin AND g.close_time >= a.available_time
    ASOF LEFT JOIN cum h1 ON g.coin = h1.coin AND g.t_1h >= h1.available_time
    ASOF LEFT JOIN cum h4 ON g.coin = h4.coin AND g.t_4h >= h4.available_time
    ASOF LEFT JOIN cum d ON g.coin = d.coin AND g.t_24h >= d.available_time
),
windows AS (
    SELECT coin, symbol, timeframe, ts, close_time,
           a_news - h1_news AS news_count_1h, a_post - h1_post AS post_count_1h,
           a_n - h1_n AS n_1h, a_s1 - h1_s1 AS s1_1h, a_s2 - h1_s2 AS s2_1h,
           a_news - h4_news AS news_count_4h, a_post - h4_post AS post_count_4h,
           a_n - h4_n AS n_4h, a_s1 - h4_s1 AS s1_4h, a_s2 - h4_s2 AS s2_4h,
           a_news - d_news AS news_count_24h, a_post - d_post AS post_count_24h,
           a_n - d_n AS n_24h, a_s1 - d_s1 AS s1_24h, a_s2 - d_s2 AS s2_24h
    FROM joined
)
SELECT coin, symbol, timeframe, ts, close_time,
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
       END AS sent_std_24h
FROM windows
ORDER BY coin, close_time
