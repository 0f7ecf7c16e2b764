"""Text features for the linear baseline: jieba words plus character n-grams, TF-IDF weighted."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

_MAX_CHARS = 4000  # the first few thousand characters carry the matter; the tail adds noise


@cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" chatter goes to stderr
    jieba.initialize()
    return jieba


def jieba_words(text: str) -> list[str]:
    """Words of a Chinese text by jieba, without whitespace tokens. Module level so it pickles."""
    return [w for w in _jieba().lcut(text[:_MAX_CHARS]) if w.strip()]


def clip_text(text: str) -> str:
    return text[:_MAX_CHARS].lower()


def make_vectorizer(min_df: int = 1) -> FeatureUnion:
    """Word 1–2-grams and character 1–3-grams, each with sublinear TF-IDF."""
    words = TfidfVectorizer(
        tokenizer=jieba_words,
        token_pattern=None,
        lowercase=True,
        ngram_range=(1, 2),
        min_df=min_df,
        sublinear_tf=True,
    )
    chars = TfidfVectorizer(
        preprocessor=clip_text,
        analyzer="char",
        ngram_range=(1, 3),
        min_df=min_df,
        sublinear_tf=True,
    )
    return FeatureUnion([("words", words), ("chars", chars)])
