"""Text normalisation shared by every part of tian.

One function decides what "the same text" means, so that training, prediction, duplicate
search and the service all see identical strings for identical proposals.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["CJK_PUNCTUATION_KEPT", "normalize_label", "normalize_text"]

# Full-width punctuation that NFKC would fold to ASCII (，→, ：→: ；→; （→( ）→) ！→! ？→? ～→~)
# or expand (…→...). Chinese prose uses these marks; folding them would change how the text
# reads, how tokenizers trained on Chinese split it, and what reviewers see in the UI.
# NFKC already leaves 。、“”‘’《》【】「」— alone, so only these few need protecting.
CJK_PUNCTUATION_KEPT = "，：；（）！？～…"

_UNPROTECTED_RUN = re.compile(f"[^{re.escape(CJK_PUNCTUATION_KEPT)}]+")
# Excel writes a carriage return inside a cell as the literal escape _x000D_ (usually followed by
# the real newline); exports keep it verbatim.
_EXCEL_CR = re.compile(r"_x000D_\n?", re.IGNORECASE)
# Line breaks other than \n: CRLF, CR, vertical tab, form feed, NEL, line/paragraph separators.
_LINE_BREAKS = re.compile("\r\n|[\r\v\f\x85\u2028\u2029]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ANY_WHITESPACE = re.compile(r"\s+")


def _is_dropped(char: str) -> bool:
    """Control (Cc) and format (Cf) characters other than newline and tab.

    Format characters include zero-width spaces, the BOM and bidirectional marks (RLM,
    RLO, ...), which are invisible, break exact-duplicate matching and can disguise text.
    """
    return char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cf")


def _nfkc_except_cjk_punctuation(s: str) -> str:
    if s.isascii():
        return s  # ASCII is already NFKC
    # NFKC each run between kept marks (faster in measurements than parking the marks on
    # placeholder characters and translating the whole string twice).
    return _UNPROTECTED_RUN.sub(lambda m: unicodedata.normalize("NFKC", m.group()), s)


def normalize_text(s: str) -> str:
    """Return ``s`` in tian's canonical form.

    Steps, in order:

    1. Excel's literal ``_x000D_`` escape and every line break (CRLF, CR, VT, FF, NEL,
       U+2028/U+2029) become ``\\n``.
    2. Unicode NFKC: full-width digits, letters and symbols become half-width (``２０２４`` →
       ``2024``, ``ＡＢＣ`` → ``ABC``, ``％`` → ``%``), the ideographic space becomes a space,
       compatibility forms are unfolded (``①`` → ``1``, ``㎡`` → ``m2``).
       **Exception:** the Chinese punctuation in :data:`CJK_PUNCTUATION_KEPT`
       (``，：；（）！？～…``) is kept as written, because NFKC would turn it into ASCII
       punctuation. Marks that NFKC leaves alone anyway (``。、“”《》【】—``) also stay.
       Half-width punctuation the author typed stays half-width: nothing is converted
       towards full width.
    3. Control and format characters are removed (zero-width spaces, BOMs, bidi marks, NUL,
       ...); newlines and tabs are kept as whitespace.
    4. Runs of horizontal whitespace collapse to one space, spaces next to a newline are
       dropped, three or more newlines collapse to two (one blank line), and the ends are
       stripped.

    Nothing else changes: case, wording and punctuation are the author's.
    """
    s = _EXCEL_CR.sub("\n", s)
    s = _LINE_BREAKS.sub("\n", s)
    s = _nfkc_except_cjk_punctuation(s)
    # NFKC can itself produce line breaks from compatibility characters; fold them again.
    s = _LINE_BREAKS.sub("\n", s)
    # Fast path: most text has no unprintable characters at all.
    if not s.replace("\n", " ").replace("\t", " ").isprintable():
        s = "".join(c for c in s if not _is_dropped(c))
    s = _HORIZONTAL_SPACE.sub(" ", s)
    s = _SPACE_AROUND_NEWLINE.sub("\n", s)
    s = _MANY_NEWLINES.sub("\n\n", s)
    return s.strip()


def normalize_label(s: str) -> str:
    """Normalise a category or unit name: :func:`normalize_text`, then drop all whitespace.

    Unit names are typed by hand and often carry stray spaces (``市 教育局``); label sets
    must treat those as the same name.
    """
    return _ANY_WHITESPACE.sub("", normalize_text(s))
