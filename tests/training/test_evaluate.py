"""The evaluation report's co-unit figures are those of the co-units a suggestion names."""

from __future__ import annotations

import numpy as np
import pytest

from tian.commands.evaluate import summary_table
from training.evaluate import multi_head_report


def test_co_unit_report_leaves_out_the_main_unit_and_keeps_the_top_three():
    labels = ["甲局", "乙局", "丙局", "丁局", "戊局"]
    probs = np.array(
        [
            [0.9, 0.6, 0.1, 0.1, 0.1],  # 甲局 is the suggested main unit: not a co-unit
            [0.5, 0.5, 0.5, 0.5, 0.1],  # four above the cut: only three are named
        ]
    )
    truth = [["乙局"], ["甲局", "庚局"]]  # 庚局 was never seen in training
    report = multi_head_report(probs, truth, labels, 0.4, main=np.array([0, -1]))
    assert report["suggested_co_units"] == 1 + 3
    assert report["true_co_units"] == 2 and report["unseen_co_units"] == 1
    assert report["precision"] == pytest.approx(2 / 4)  # 乙局, then 甲局 on the second row
    assert report["recall"] == pytest.approx(2 / 2)
    # Without the main unit left out, 甲局 on the first row would count as a wrong co-unit.
    plain = multi_head_report(probs, truth, labels, 0.4)
    assert plain["suggested_co_units"] == 2 + 3


def test_table_prints_co_unit_precision_recall_and_the_review_rule():
    report = {
        "model": "m",
        "model_kind": "auto",
        "rows": 2,
        "heads": {
            "co_units": {
                "micro_f1": 0.5,
                "macro_f1": 0.4,
                "precision": 0.6,
                "recall": 0.3,
                "ece": 0.01,
                "rows_with_co_units": 1,
                "rows": 2,
                "suggested_co_units": 5,
                "true_co_units": 10,
                "threshold": 0.25,
            }
        },
        "review": {
            "target_accuracy": 0.95,
            "rule": "calibrated",
            "threshold": 0.884,
            "flagged": 0.39,
            "unflagged_accuracy": 0.98,
        },
    }
    table = summary_table(report)
    assert "precision 0.600  recall 0.300" in table
    assert "5 suggested at cut 0.25, 10 true" in table
    assert "cut 0.884, rule calibrated): 39% flagged, unflagged 0.980 right" in table
