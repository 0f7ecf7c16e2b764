"""Tests for model.text: the one definition of canonical text."""

from __future__ import annotations

import pytest

from model.text import CJK_PUNCTUATION_KEPT, normalize_label, normalize_text


def test_full_width_digits_letters_and_symbols_become_half_width() -> None:
    assert normalize_text("２０２４年ＡＢＣｘｙｚ％＋") == "2024年ABCxyz%+"


def test_chinese_punctuation_is_kept_as_written() -> None:
    text = "关于加强，改善：一；（二）！？～…。、“引号”《法》【注】「甲」——"
    assert normalize_text(text) == text
    for mark in CJK_PUNCTUATION_KEPT:
        assert normalize_text(f"甲{mark}乙") == f"甲{mark}乙"


def test_half_width_punctuation_is_not_widened() -> None:
    assert normalize_text("a,b:c;(d)!?") == "a,b:c;(d)!?"


def test_excel_carriage_return_escape_becomes_newline() -> None:
    assert normalize_text("第一段_x000D_\n第二段") == "第一段\n第二段"
    assert normalize_text("甲_x000D_乙_X000d_丙") == "甲\n乙\n丙"


@pytest.mark.parametrize("brk", ["\r\n", "\r", "\u2028", "\u2029", "\x85", "\v", "\f"])
def test_line_breaks_become_newline(brk: str) -> None:
    assert normalize_text(f"甲{brk}乙") == "甲\n乙"


def test_control_and_invisible_characters_are_removed() -> None:
    hostile = "甲\x00\x07乙\u200b丙\u200f丁\u202e戊\ufeff己\x7f"
    assert normalize_text(hostile) == "甲乙丙丁戊己"


def test_whitespace_is_collapsed_and_stripped() -> None:
    assert normalize_text("  甲 \t\u3000 乙\u00a0丙  ") == "甲 乙 丙"
    assert normalize_text("甲  \n  乙") == "甲\n乙"
    assert normalize_text("甲\n\n\n\n乙") == "甲\n\n乙"
    assert normalize_text("甲\n \n\t\n乙") == "甲\n\n乙"
    assert normalize_text("\n\n甲\n\n") == "甲"


def test_empty_and_idempotent() -> None:
    assert normalize_text("") == ""
    assert normalize_text(" \n\t ") == ""
    sample = " ２０２４，甲_x000D_\n\n\n\n乙\u200b\t\t丙 <script>alert(1)</script> "
    once = normalize_text(sample)
    assert normalize_text(once) == once
    assert "<script>alert(1)</script>" in once  # markup is data, escaped where it is shown


def test_normalize_label_drops_all_whitespace() -> None:
    assert normalize_label(" 市 教育局\n") == "市教育局"
    assert (
        normalize_label("市发展和改革委员会\u3000（市粮食局）") == "市发展和改革委员会（市粮食局）"
    )
    assert normalize_label("ＡＢ 局") == "AB局"
