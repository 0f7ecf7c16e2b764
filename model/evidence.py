"""Evidence for a flagged pair: what a reviewer reads to see why two proposals match.

Two kinds, because duplicates come in two kinds:

- overlapping passages (for copies): maximal common runs of characters, with character
  offsets into each text so that a page can highlight them;
- aligned sentences (for rewordings): each sentence of one text paired with its most
  similar sentence of the other by embedding cosine, best pairs first.

Offsets are into the exact strings passed in (for proposals, `Proposal.text`: title and
content joined by a newline).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

import numpy as np

__all__ = ["aligned_sentences", "overlapping_passages", "pair_evidence", "split_sentences"]

_SENTENCE_END = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")


def overlapping_passages(a: str, b: str, *, min_chars: int = 8) -> list[dict[str, Any]]:
    """Common runs of at least `min_chars` characters, in order of position in `a`.

    Returns dicts with `a_start`, `a_end`, `b_start`, `b_end` (half-open character
    offsets) and `text` (equal to `a[a_start:a_end]` and `b[b_start:b_end]`).
    """
    if min_chars < 1:
        raise ValueError(f"min_chars must be at least 1, not {min_chars}")
    # autojunk off: in Chinese text the frequent characters are content, not junk.
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    out = []
    for block in matcher.get_matching_blocks():
        if block.size >= min_chars:
            out.append(
                {
                    "a_start": block.a,
                    "a_end": block.a + block.size,
                    "b_start": block.b,
                    "b_end": block.b + block.size,
                    "text": a[block.a : block.a + block.size],
                }
            )
    return out


def split_sentences(text: str, *, min_chars: int = 4) -> list[tuple[int, int]]:
    """Sentence spans (start, end) in `text`, skipping fragments shorter than `min_chars`."""
    spans = []
    for match in _SENTENCE_END.finditer(text):
        start, end = match.span()
        # Trim surrounding whitespace so offsets point at the words.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end - start >= min_chars:
            spans.append((start, end))
    return spans


def aligned_sentences(
    a: str,
    b: str,
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    spans_a: Sequence[tuple[int, int]],
    spans_b: Sequence[tuple[int, int]],
    *,
    top: int = 3,
) -> list[dict[str, Any]]:
    """Best sentence pairs by cosine: each sentence of `a` with its nearest in `b`.

    `vectors_a`/`vectors_b` are L2-normalised embeddings of the sentences at `spans_a` and
    `spans_b`. Each sentence of `b` is used once at most, so the list shows distinct pairs.
    """
    if len(spans_a) == 0 or len(spans_b) == 0:
        return []
    sims = np.asarray(vectors_a, dtype=np.float32) @ np.asarray(vectors_b, dtype=np.float32).T
    out: list[dict[str, Any]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-sims, axis=None):
        i, j = divmod(int(flat), sims.shape[1])
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        (a0, a1), (b0, b1) = spans_a[i], spans_b[j]
        out.append(
            {
                "a_start": a0,
                "a_end": a1,
                "b_start": b0,
                "b_end": b1,
                "a": a[a0:a1],
                "b": b[b0:b1],
                "cosine": round(float(sims[i, j]), 4),
            }
        )
        if len(out) >= top:
            break
    return out


def pair_evidence(
    a: str,
    b: str,
    *,
    encoder: Any | None = None,
    min_chars: int = 8,
    max_passages: int = 5,
    top_sentences: int = 3,
    cache: dict[str, tuple[list[tuple[int, int]], np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Passages (longest first, at most `max_passages`) and, given an encoder, aligned sentences.

    `encoder` follows `model.encoder.TextEncoder`; without one only passages are given.
    `cache` (text -> sentence spans and vectors) lets a caller that explains many pairs
    encode each text's sentences once.
    """
    passages = overlapping_passages(a, b, min_chars=min_chars)
    passages.sort(key=lambda p: p["a_start"] - p["a_end"])
    result: dict[str, Any] = {"passages": passages[:max_passages], "sentences": []}
    if encoder is not None:
        cache = {} if cache is None else cache
        for text in (a, b):
            if text not in cache:
                spans = split_sentences(text)
                vecs = (
                    encoder.encode([text[s:e] for s, e in spans], kind="passage")
                    if spans
                    else np.zeros((0, 1), dtype=np.float32)
                )
                cache[text] = (spans, vecs)
        (spans_a, vecs_a), (spans_b, vecs_b) = cache[a], cache[b]
        result["sentences"] = aligned_sentences(
            a, b, vecs_a, vecs_b, spans_a, spans_b, top=top_sentences
        )
    return result
