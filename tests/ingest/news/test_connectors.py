"""News connectors against local servers speaking each API: pages, a 429, a malformed item."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.errors import AuthenticationError, ConfigError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import MacroObservationV1, NewsArticleV1
from ingest.connectors.base import ListSink, require_env
from ingest.news.fred import FredConnector
from ingest.news.gdelt import GdeltDocConnector
from ingest.news.newsapi import NewsApiConnector
from ingest.news.rss import RssConnector
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
CLOCK = lambda: datetime(2022, 2, 1, tzinfo=UTC)  # noqa: E731
NO_SLEEP = lambda s: None  # noqa: E731
SINCE, UNTIL = datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def headlines(shared_data: Path) -> pd.DataFrame:
    """30 real January-2022 headlines from news/cryptonews.csv.gz."""
    df = pd.read_csv(shared_data / "news" / "cryptonews.csv.gz", sep=";")
    df["ts"] = pd.to_datetime(df["date"], format="%d-%m-%Y %H:%M", utc=True)
    jan = df[(df.ts >= "2022-01-01") & (df.ts < "2022-02-01")].drop_duplicates("url")
    return jan.sort_values("ts", ascending=False).head(30).reset_index(drop=True)


def test_newsapi_pages_retries_429_and_quarantines_malformed(headlines: pd.DataFrame) -> None:
    arts = [{"source": {"id": None, "name": r.source}, "author": None, "title": r.title, "description": r.text,
             "url": r.url, "urlToImage": None, "publishedAt": r.ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "content": None}
            for r in headlines.itertuples()]
    arts[7]["publishedAt"] = "yesterday"  # malformed
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.newsapi_app(arts, "k-secret-1", state)) as srv:
        conn = NewsApiConnector("bitcoin", SINCE, UNTIL, base_url=srv.url, api_key="k-secret-1", page_size=10,
                                clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        sink = ListSink()
        stats = conn.run(sink)
    assert stats.accepted == 29 and stats.rejected == 1
    assert [r["query"]["page"] for r in state.requests] == ["1", "1", "2", "3"]  # first answer was a 429
    assert "publishedAt" not in sink.quarantine[0].reason and "yesterday" in sink.quarantine[0].reason
    first = sink.accepted[0]
    assert isinstance(first, NewsArticleV1) and first.title == headlines.title[0]
    assert first.event_time == int(headlines.ts[0].timestamp() * 1000) == first.available_time


def test_newsapi_bad_key_is_authentication_error(headlines: pd.DataFrame) -> None:
    with LocalServer(apis.newsapi_app([], "right", apis.ApiState(rate_limit_first=0))) as srv:
        conn = NewsApiConnector("btc", SINCE, UNTIL, base_url=srv.url, api_key="wrong", sleep=NO_SLEEP, policy=FAST)
        with pytest.raises(AuthenticationError, match="401"):
            list(conn.items())


def test_missing_secret_fails_fast_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="NEWSAPI_API_KEY"):
        require_env("NEWSAPI_API_KEY", env={})


def test_gdelt_pages_by_time_window(headlines: pd.DataFrame) -> None:
    arts = [{"url": r.url, "url_mobile": "", "title": r.title, "seendate": r.ts.strftime("%Y%m%dT%H%M%SZ"),
             "socialimage": "", "domain": r.url.split("/")[2], "language": "English", "sourcecountry": "US"}
            for r in headlines.itertuples()]
    arts[3]["title"] = None
    arts[3]["seendate"] = "20220105T10:05Z"  # malformed: not GDELT's yyyymmddThhmmssZ
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.gdelt_app(arts, state)) as srv:
        conn = GdeltDocConnector("bitcoin", SINCE, UNTIL, base_url=srv.url, max_records=8, min_interval=0,
                                 clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        sink = ListSink()
        conn.run(sink)
    urls = [a.url for a in sink.accepted]
    assert len(urls) == len(set(urls)) == 29
    assert len(sink.quarantine) == 1 and "20220105T10:05Z" in sink.quarantine[0].reason
    assert len(state.requests) >= 5  # one 429 + at least 4 time-window pages of 8
    assert all(isinstance(a, NewsArticleV1) and a.language == "en" for a in sink.accepted)


def test_fred_pages_with_offset_and_uses_realtime_start_as_available_time() -> None:
    # Synthetic observations (shape of FRED's documented answer); values are illustrative only.
    obs = [{"realtime_start": f"2022-{m + 1:02d}-12", "realtime_end": "9999-12-31",
            "date": f"2021-{m:02d}-01", "value": str(270 + m)} for m in range(1, 12)]
    obs[4]["value"] = "."  # FRED's missing value
    obs[6]["value"] = "n/a"  # malformed
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.fred_app({"CPIAUCSL": obs}, "fred-key-x", state)) as srv:
        conn = FredConnector(["CPIAUCSL"], date(2021, 1, 1), date(2021, 12, 31), base_url=srv.url,
                             api_key="fred-key-x", page_size=4, clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 10 and len(sink.quarantine) == 1 and "n/a" in sink.quarantine[0].reason
    assert [r["query"]["offset"] for r in state.requests] == ["0", "0", "4", "8"]
    jan = sink.accepted[0]
    assert isinstance(jan, MacroObservationV1) and jan.value == 271.0
    assert jan.available_time == int(datetime(2022, 2, 12, tzinfo=UTC).timestamp() * 1000)
    assert next(o for o in sink.accepted if isinstance(o, MacroObservationV1) and o.date == "2021-05-01").value is None


def test_rss_follows_paged_until_404(headlines: pd.DataFrame) -> None:
    items = [{"title": r.title, "link": r.url, "description": r.text, "guid": r.url,
              "pubDate": r.ts.strftime("%a, %d %b %Y %H:%M:%S +0000"), "creator": r.source}
             for r in headlines.itertuples()]
    del items[12]["pubDate"]  # malformed: no date
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.rss_app(items, state, page_size=10)) as srv:
        conn = RssConnector("local", f"{srv.url}/feed/", SINCE, UNTIL, clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        conn.client.min_interval = 0
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 29 and len(sink.quarantine) == 1
    assert "published" in sink.quarantine[0].reason
    assert [r["query"].get("paged") for r in state.requests] == [None, None, "2", "3", "4"]
    assert {a.source for a in sink.accepted} == {"rss:local"}
    assert sink.accepted[0].author == headlines.source[0]
