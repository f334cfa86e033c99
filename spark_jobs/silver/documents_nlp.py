"""Pure text functions behind ``silver.documents`` (no Spark here, so they are unit-tested and
reused as-is inside the Spark pandas UDFs and by the plain-Python benchmark peer).

- cleaning: HTML tags, URLs and whitespace runs removed;
- dedup: a hash of the *normalised* text (lower case, punctuation and digits-only tokens
  stripped, whitespace collapsed), so re-posts differing in case, punctuation, links or
  trailing whitespace collide; exact-URL duplicates are handled by the caller on ``url``;
- language: langdetect with a fixed seed (deterministic);
- sentiment: VADER's compound score (in [-1, 1]) with a crypto lexicon added;
- coins: a symbol + name dictionary matched on word boundaries (symbols must be upper case
  or ``$``-prefixed, so "ETH" in "METHOD" and the Spanish "sol" do not count);
- topics: TF-IDF + NMF (sklearn), seeded.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

CRYPTO_LEXICON: dict[str, float] = {
    "bullish": 2.5, "bearish": -2.5, "moon": 2.0, "mooning": 2.5, "hodl": 1.0, "rekt": -2.5, "dump": -2.0,
    "dumping": -2.3, "dumped": -2.0, "pump": 1.5, "pumping": 1.5, "fud": -2.0, "rug": -2.8, "rugpull": -3.0,
    "rugged": -2.8, "hack": -2.5, "hacked": -2.8, "exploit": -2.3, "exploited": -2.5, "ath": 2.0, "rally": 2.0,
    "rallies": 2.0, "surge": 2.0, "surges": 2.0, "soars": 2.2, "plunge": -2.5, "plunges": -2.5, "crash": -3.0,
    "crashes": -3.0, "liquidated": -2.2, "liquidation": -2.0, "liquidations": -2.0, "capitulation": -2.0,
    "adoption": 1.5, "outperforming": 1.8, "breakout": 1.8, "sell-off": -2.2, "selloff": -2.2, "ban": -1.8,
    "bans": -1.8, "lawsuit": -1.8, "insolvent": -3.0, "bankruptcy": -3.0, "delisted": -2.2, "halted": -1.5,
    "recovers": 1.6, "rebound": 1.6, "rebounds": 1.6, "tumbles": -2.2, "slump": -2.0, "slumps": -2.0,
}

COINS: dict[str, tuple[str, ...]] = {  # symbol -> names (case-insensitive)
    "BTC": ("bitcoin", "xbt"), "ETH": ("ethereum", "ether"), "SOL": ("solana",), "XRP": ("ripple",),
    "ADA": ("cardano",), "DOGE": ("dogecoin",), "BNB": ("binance coin",), "LTC": ("litecoin",),
    "DOT": ("polkadot",), "AVAX": ("avalanche",), "MATIC": ("polygon",), "LINK": ("chainlink",),
    "USDT": ("tether",), "USDC": ("usd coin",), "SHIB": ("shiba inu",), "TRX": ("tron",),
}
_SYMBOL_RE = re.compile(r"(?<![A-Za-z0-9])\$?(" + "|".join(COINS) + r")(?![A-Za-z0-9])")
_DOLLAR_RE = re.compile(r"(?<![A-Za-z0-9])\$(" + "|".join(COINS) + r")(?![A-Za-z0-9])", re.I)
_NAME_RE = re.compile(r"\b(" + "|".join(re.escape(n) for ns in COINS.values() for n in ns) + r")\b", re.I)
_NAME_TO_SYMBOL = {n: s for s, ns in COINS.items() for n in ns}
_TAG_RE = re.compile(r"<[^>]+>")
_URL_RE = re.compile(r"https?://\S+|www\.\S+")
_WS_RE = re.compile(r"\s+")
_NORM_RE = re.compile(r"[^a-z0-9 ]+")


def clean_text(text: str | None) -> str:
    """Unescape HTML, drop tags and URLs, collapse whitespace."""
    if not text:
        return ""
    t = html.unescape(text)
    t = _TAG_RE.sub(" ", t)
    t = _URL_RE.sub(" ", t)
    return _WS_RE.sub(" ", t).strip()


def normalise(text: str) -> str:
    """Lower-case, punctuation stripped, whitespace collapsed: the dedup view of a text."""
    t = _NORM_RE.sub(" ", clean_text(text).lower())
    return _WS_RE.sub(" ", t).strip()


def dedup_hash(text: str) -> str:
    """SHA-1 of the normalised text (near-duplicates that differ in case/punctuation/links collide)."""
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


def coins_mentioned(text: str) -> list[str]:
    """Sorted coin symbols mentioned in ``text`` (word-bounded; symbols upper case or $-prefixed)."""
    found = {m.group(1).upper() for m in _SYMBOL_RE.finditer(text)}
    found |= {m.group(1).upper() for m in _DOLLAR_RE.finditer(text)}
    found |= {_NAME_TO_SYMBOL[m.group(1).lower()] for m in _NAME_RE.finditer(text)}
    return sorted(found)


@lru_cache(maxsize=1)
def _analyzer() -> object:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(CRYPTO_LEXICON)
    return analyzer


def sentiment(text: str) -> float:
    """VADER compound score with the crypto lexicon, in [-1, 1]; 0.0 for empty text."""
    if not text:
        return 0.0
    score = float(_analyzer().polarity_scores(text)["compound"])  # type: ignore[attr-defined]
    return max(-1.0, min(1.0, score))


def sentiments(texts: Sequence[str]) -> list[float]:
    """:func:`sentiment` over a batch (the unit the pandas UDF and the benchmark call)."""
    return [sentiment(t) for t in texts]


def detect_language(text: str, seed: int = 7) -> str | None:
    """ISO code from langdetect with a fixed seed; None when the text has no detectable language."""
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = seed
    try:
        return str(detect(text))
    except LangDetectException:
        return None


def engagement(score: int | None, replies: int | None, reposts: int | None, views: int | None) -> float:
    """log1p of a weighted interaction count (replies and reposts weigh more than likes; views little)."""
    total = (score or 0) + 2 * (replies or 0) + 3 * (reposts or 0) + 0.01 * (views or 0)
    return math.log1p(max(0.0, total))


def author_influence(followers: int | None, author_posts: int) -> float:
    """log1p(followers) when the platform reports them, else log1p(the author's posts in the data)."""
    return math.log1p(followers) if followers is not None else math.log1p(max(0, author_posts))


def fit_topic_model(texts: Sequence[str], n_topics: int = 8, seed: int = 7) -> tuple[Any, Any, int]:
    """Fit TF-IDF + NMF on ``texts``: ``(vectorizer, nmf, k)`` (k may be below ``n_topics`` on tiny corpora)."""
    from sklearn.decomposition import NMF
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(max_features=5000, stop_words="english", min_df=2, max_df=0.5)
    x = vec.fit_transform([normalise(t) for t in texts])
    k = max(1, min(n_topics, x.shape[1] - 1, x.shape[0] - 1))
    model = NMF(n_components=k, random_state=seed, init="nndsvd", max_iter=300)
    model.fit(x)
    return vec, model, k


def assign_topics(vec: Any, model: Any, texts: Sequence[str]) -> list[int]:
    """Dominant topic of each text under a fitted model (-1 when no known term occurs)."""
    if not texts:
        return []
    w = model.transform(vec.transform([normalise(t) for t in texts]))
    return [int(i) if row.max() > 0 else -1 for i, row in zip(w.argmax(axis=1), w, strict=True)]


def topic_terms(vec: Any, model: Any, n_terms: int = 6) -> list[list[str]]:
    """Each topic's top terms."""
    terms = vec.get_feature_names_out()
    return [[str(terms[i]) for i in comp.argsort()[::-1][:n_terms]] for comp in model.components_]


def fit_topics(texts: Sequence[str], n_topics: int = 8, seed: int = 7,
               n_terms: int = 6) -> tuple[list[int], list[list[str]]]:
    """TF-IDF + NMF: the dominant topic of each text and each topic's top terms."""
    vec, model, _ = fit_topic_model(texts, n_topics, seed)
    w = model.transform(vec.transform([normalise(t) for t in texts]))
    return [int(i) for i in w.argmax(axis=1)], topic_terms(vec, model, n_terms)
