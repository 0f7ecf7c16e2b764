"""Drift between years: label shift, unit names, vocabulary and length."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from model.aliases import load_aliases
from training.drift import drift_report, js_divergence


def test_js_divergence_bounds() -> None:
    a = Counter({"x": 3, "y": 1})
    assert js_divergence(a, a) == pytest.approx(0.0)
    assert js_divergence(Counter({"x": 1}), Counter({"y": 1})) == pytest.approx(1.0)
    assert 0 < js_divergence(a, Counter({"x": 1, "y": 3})) < 1


def test_drift_report_between_years(toy_proposals: list) -> None:
    old = [p for p in toy_proposals if p.year == 2022]
    new = [p for p in toy_proposals if p.year == 2024]
    # The new year: one unit under its old name, one unknown unit, one split unit, a new theme.
    new = [
        replace(new[0], main_unit="市卫生计生委"),
        replace(new[1], main_unit="市数据局", category="数字政府"),
        replace(new[2], main_unit="市文化广电新闻出版局"),
        *new[3:],
    ]
    report = drift_report(old, new, aliases=load_aliases())
    assert report["years"] == {"old": [2022], "new": [2024]}
    cat = report["labels"]["category"]
    assert cat["new_labels"] == ["数字政府"]
    assert cat["vanished_labels"] == []
    assert 0 < cat["js_divergence"] < 1
    units = report["unit_names"]
    assert units["unknown"] == {"市数据局": 1}
    assert units["aliased"] == {"市卫生计生委": {"current": "市卫生健康委员会", "rows": 1}}
    assert units["split"]["市文化广电新闻出版局"]["rows"] == 1
    # After aliasing the renamed unit is not reported as a new label.
    assert "市卫生计生委" not in report["labels"]["main_unit"]["new_labels"]
    assert "市数据局" in report["labels"]["main_unit"]["new_labels"]
    vocab = report["vocabulary"]
    assert set(vocab) == {"words", "char_bigrams"}
    assert 0 <= vocab["words"]["oov_rate"] <= 1
    assert report["length"]["old"]["mean"] > 0
    assert "ks_statistic" in report["length"]


def test_drift_report_refuses_an_empty_side(toy_proposals: list) -> None:
    with pytest.raises(ValueError, match="both sides"):
        drift_report([], toy_proposals)
