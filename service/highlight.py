"""Cut a text into plain and highlighted pieces for the side-by-side duplicate view.

The template prints each piece escaped and wraps highlighted ones in ``<mark>``, so no HTML is
ever built from proposal text.
"""

from __future__ import annotations

from collections.abc import Iterable


def segments(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` as consecutive ``(piece, highlighted)`` pairs; spans may overlap or be unsorted.

    Spans outside the text are clipped; empty ones are ignored.
    """
    n = len(text)
    merged: list[list[int]] = []
    for start, end in sorted((max(0, int(s)), min(n, int(e))) for s, e in spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[tuple[str, bool]] = []
    pos = 0
    for start, end in merged:
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < n:
        out.append((text[pos:], False))
    return out
