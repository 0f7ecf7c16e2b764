"""Co-units: the served rule (top three above the cut, never the main unit) and its fitted cut."""

from __future__ import annotations

import numpy as np
import pytest

from model.calibration import best_threshold
from model.co_units import (
    CUTS,
    DEFAULT_CUT,
    chosen_co_units,
    co_unit_figures,
    fit_co_unit_threshold,
)


def test_chosen_co_units_keeps_the_top_three_above_the_cut_less_the_main_unit():
    probs = np.array(
        [
            [0.9, 0.6, 0.5, 0.45, 0.1],  # main unit is column 0: it is never its own co-unit
            [0.2, 0.1, 0.1, 0.1, 0.1],  # nothing reaches the cut
            [0.8, 0.7, 0.6, 0.5, 0.4],  # no main unit among the co-unit labels: top three
        ]
    )
    chosen = chosen_co_units(probs, 0.4, main=[0, 1, -1])
    assert chosen.tolist() == [
        [False, True, True, True, False],
        [False, False, False, False, False],
        [True, True, True, False, False],
    ]
    assert chosen_co_units(probs, 0.4, main=None, top_k=1)[:, 0].tolist() == [True, False, True]
    with pytest.raises(ValueError):
        chosen_co_units(probs, 0.4, main=[0, 1])


def test_co_unit_figures_are_micro_precision_and_recall():
    target = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    chosen = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    figures = co_unit_figures(target, chosen)
    assert figures["precision"] == pytest.approx(1 / 3)
    assert figures["recall"] == pytest.approx(1 / 2)
    assert figures["micro_f1"] == pytest.approx(2 * 1 / (3 + 2))


def test_cut_is_fitted_on_the_rule_that_serves():
    # The suggested main unit's own column sits at 0.3 on every row; the true co-unit at 0.6 on
    # 30 rows and 0.25 on 10 harder ones. A cut fitted on every column rises above 0.3 to drop
    # the main unit's column, which the served rule never names, and loses the harder ten.
    rows = 40
    probs = np.full((rows, 3), 0.02)
    probs[:, 0] = 0.3
    probs[:, 1] = np.where(np.arange(rows) < 30, 0.6, 0.25)
    target = np.zeros((rows, 3), dtype=bool)
    target[:, 1] = True
    main = np.zeros(rows, dtype=int)
    old_cut = best_threshold(probs, target)
    new_cut = fit_co_unit_threshold(probs, target, main)
    served_f1 = co_unit_figures(target, chosen_co_units(probs, new_cut, main))["micro_f1"]
    old_f1 = co_unit_figures(target, chosen_co_units(probs, old_cut, main))["micro_f1"]
    assert new_cut <= 0.25 < 0.3 < old_cut
    assert served_f1 == 1.0 and old_f1 == pytest.approx(60 / 70)
    assert new_cut in CUTS


def test_cut_defaults_without_any_co_unit():
    probs = np.random.default_rng(0).random((10, 4))
    assert fit_co_unit_threshold(probs, np.zeros((10, 4), dtype=bool)) == DEFAULT_CUT
