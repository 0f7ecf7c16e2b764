"""Training settings: one frozen dataclass per model kind, every field documented once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the TF-IDF + linear baseline.

    Attributes:
        c: inverse regularisation of the linear SVMs for single-label heads.
        co_units_c: inverse regularisation of the one-vs-rest logistic regressions for co-units.
        folds: cross-validation folds used to get held-out scores for calibration.
        coverage: target coverage of the conformal prediction sets.
        min_df: minimum document frequency of a word or character n-gram.
        seed: random seed for the folds.
        calibrate: fit temperatures and conformal thresholds by cross-validation; off when
            another step calibrates (the `auto` ensemble fits blend weights out of fold).
    """

    c: float = 0.5
    co_units_c: float = 10.0
    folds: int = 5
    coverage: float = 0.95
    min_df: int = 1
    seed: int = 0
    calibrate: bool = True
