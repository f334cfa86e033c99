"""Text functions of silver.documents: cleaning, dedup, coins, sentiment, language, topics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from spark_jobs.silver import documents_nlp as nlp


def test_coin_symbols_need_word_boundaries_and_upper_case() -> None:
    assert nlp.coins_mentioned("The METHOD is new") == []
    assert nlp.coins_mentioned("ETH and $sol rally; Bitcoin dips") == ["BTC", "ETH", "SOL"]
    assert nlp.coins_mentioned("el sol brilla, link in bio") == []
    assert nlp.coins_mentioned("Chainlink (LINK) and Ether") == ["ETH", "LINK"]


def test_dedup_hash_collides_for_reformatted_reposts_only() -> None:
    a = "Bitcoin Returns Above USD 20K!  <b>Ethereum</b> rallies https://t.co/x"
    b = "bitcoin returns above usd 20k ethereum rallies"
    assert nlp.dedup_hash(a) == nlp.dedup_hash(b)
    assert nlp.dedup_hash(a) != nlp.dedup_hash("bitcoin returns below usd 20k ethereum rallies")
    assert nlp.clean_text("a &amp; <i>b</i>  https://x.y/z c") == "a & b c"


def test_crypto_lexicon_moves_sentiment_and_scores_stay_in_range() -> None:
    assert nlp.sentiment("BTC looks bullish, mooning") > 0.5
    assert nlp.sentiment("got rekt, exchange hacked, rugpull") < -0.5
    assert nlp.sentiment("") == 0.0
    scores = nlp.sentiments(["great", "terrible crash", "neutral statement about blocks"])
    assert all(-1.0 <= s <= 1.0 for s in scores) and scores[0] > 0 > scores[1]


def test_language_detection_is_seeded_and_deterministic() -> None:
    text = "El precio de bitcoin subió mucho durante la noche según los analistas"
    assert nlp.detect_language(text) == "es" == nlp.detect_language(text)
    assert nlp.detect_language("Bitcoin price climbed above the resistance level today") == "en"


def test_engagement_and_influence_are_monotone() -> None:
    assert nlp.engagement(10, 2, 1, None) > nlp.engagement(10, 0, 0, None) > nlp.engagement(None, None, None, None) == 0
    assert nlp.author_influence(10_000, 1) > nlp.author_influence(None, 5) > 0


def test_topics_on_real_headlines_are_seeded(shared_data: Path) -> None:
    df = pd.read_csv(shared_data / "news" / "cryptonews.csv.gz", sep=";").head(400)
    labels, terms = nlp.fit_topics(df.title.tolist(), n_topics=6, seed=3)
    labels2, _ = nlp.fit_topics(df.title.tolist(), n_topics=6, seed=3)
    assert labels == labels2 and len(set(labels)) == 6 and all(len(t) == 6 for t in terms)


def test_vader_agrees_in_rank_with_the_machine_made_news_polarity(shared_data: Path) -> None:
    """Sanity check only: the file's polarity is TextBlob-style, not ground truth."""
    df = pd.read_csv(shared_data / "news" / "cryptonews.csv.gz", sep=";").head(1500)
    polarity = df.sentiment.map(lambda s: eval(s, {"__builtins__": {}})["polarity"])  # dict literal
    ours = nlp.sentiments((df.title.fillna("") + ". " + df.text.fillna("")).tolist())
    rho = spearmanr(ours, polarity).statistic
    assert 0.2 < rho < 0.95  # related but not the same scorer
