"""Whole words and phrases behind a suggestion (依据词), never character fragments.

The baseline's TF-IDF features include character n-grams, which carry signal but read as
fragments to a person (区停, 强城, 登). :func:`whole_words` keeps only terms that are jieba
words of the text itself, joins word bigrams into phrases, and drops single characters and
terms that repeat a kept one.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["whole_words"]

# Function words that make a bigram read as a fragment ("的 建设", "和 改善").
_FUNCTION_WORDS = frozenset(
    [
        "的",
        "了",
        "和",
        "与",
        "及",
        "或",
        "在",
        "是",
        "对",
        "为",
        "把",
        "被",
        "等",
        "并",
        "而",
        "也",
        "就",
        "都",
        "将",
        "从",
        "向",
        "以",
        "之",
    ]
)


def _readable(word: str) -> bool:
    return len(word) >= 2 and word not in _FUNCTION_WORDS


def whole_words(
    text: str, terms: Iterable[tuple[str, float]], top_n: int | None = None
) -> list[tuple[str, float]]:
    """Terms of ``terms`` (term, weight; best first) that a reader sees as words of ``text``.

    A term is kept when it is one jieba word of the text (two characters or more), or two
    adjacent words of the text, written with a space as the vectoriser names word bigrams
    ("停车 难") or already joined ("停车难"); a bigram is shown joined.
    A term that contains or is contained in a term already kept is left out (one reason, once).
    """
    from model.features import jieba_words

    tokens = [w.lower() for w in jieba_words(text)]
    words = set(tokens)
    # Two adjacent words written together: a phrase shown before (停车难) stays a phrase.
    phrases = {
        a + b
        for a, b in zip(tokens, tokens[1:], strict=False)
        if len(a) >= 2 and a not in _FUNCTION_WORDS and b not in _FUNCTION_WORDS
    }
    kept: list[tuple[str, float]] = []
    for term, weight in terms:
        parts = term.strip().lower().split()
        if len(parts) == 1:
            if not (_readable(parts[0]) and parts[0] in words) and parts[0] not in phrases:
                continue
        elif not parts or "".join(parts) not in phrases or not all(p in words for p in parts):
            continue
        shown = "".join(parts)
        if any(shown in k or k in shown for k, _ in kept):
            continue
        kept.append((shown, weight))
        if top_n is not None and len(kept) >= top_n:
            break
    return kept
