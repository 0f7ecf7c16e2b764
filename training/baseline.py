"""Fit the TF-IDF + linear baseline with cross-validated calibration.

Held-out scores come from k-fold cross-validation, so every training row helps both to fit the
final model (trained on all rows) and to calibrate it: with a few hundred proposals and units
that have a handful of examples, a separate calibration split would cost too much.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from model.baseline import BaselineClassifier
from model.calibration import (
    Calibration,
    HeadCalibration,
    best_threshold,
    binary_calibration_error,
    calibrate_single_head,
    fit_binary_temperature,
    sigmoid,
)
from model.features import make_vectorizer
from model.heads import SINGLE_LABEL_HEADS, has_multi_labels, multi_targets, single_targets
from model.records import Proposal
from training.config import BaselineConfig

log = logging.getLogger(__name__)


def _folds(y: Sequence[str], config: BaselineConfig) -> int:
    smallest = min(np.unique(np.asarray(y), return_counts=True)[1])
    return max(2, min(config.folds, len(y) // 2, max(int(smallest), 2)))


def fit_baseline(
    proposals: Sequence[Proposal], config: BaselineConfig | None = None
) -> BaselineClassifier:
    """Fit vectoriser and one calibrated linear model per head that has at least two labels."""
    config = config or BaselineConfig()
    if not proposals:
        raise ValueError("no training rows")
    texts = [p.text for p in proposals]
    vectorizer = make_vectorizer(min_df=config.min_df)
    x_all = vectorizer.fit_transform(texts)

    single, labels, heads_cal = {}, {}, {}
    for head in SINGLE_LABEL_HEADS:
        targets = single_targets(proposals, head)
        rows = np.array([i for i, t in enumerate(targets) if t])
        y = [targets[i] for i in rows]
        classes = sorted(set(y))
        if len(classes) < 2:
            log.warning("head %s skipped: needs at least two labels, found %d", head, len(classes))
            continue
        x = x_all[rows]
        y_idx = np.array([classes.index(t) for t in y])
        svm = LinearSVC(C=config.c, class_weight="balanced", random_state=config.seed)
        if config.calibrate:
            cv = StratifiedKFold(_folds(y, config), shuffle=True, random_state=config.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # rare labels: fewer members than folds
                oof = cross_val_predict(svm, x, y_idx, cv=cv, method="decision_function")
            if oof.ndim == 1:
                oof = np.column_stack([-oof, oof])
            heads_cal[head] = calibrate_single_head(oof, y_idx, config.coverage)
        single[head] = svm.fit(x, y_idx)
        labels[head] = classes
        log.info("baseline %s: %d rows, %d labels", head, len(y), len(classes))

    multi = None
    mask = np.array(has_multi_labels(proposals))
    co = [units for units, m in zip(multi_targets(proposals), mask, strict=True) if m]
    co_labels = sorted({u for units in co for u in units})
    if co_labels and mask.sum() >= 4:
        binarizer = MultiLabelBinarizer(classes=co_labels)
        y_multi = binarizer.fit_transform(co)
        x = x_all[np.flatnonzero(mask)]
        # liblinear, dual: fast on sparse TF-IDF with far more features than rows (the primal
        # took 20 s for 30 units of the demo, the dual 0.5 s; same optimum).
        ovr = OneVsRestClassifier(
            LogisticRegression(C=config.co_units_c, solver="liblinear", dual=True)
        )
        oof = np.zeros(y_multi.shape)
        folds = KFold(min(config.folds, int(mask.sum())), shuffle=True, random_state=config.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # labels absent from a fold
            if config.calibrate:
                for fit_idx, held_idx in folds.split(x):
                    fold_model = clone(ovr).fit(x[fit_idx], y_multi[fit_idx])
                    oof[held_idx] = np.asarray(fold_model.decision_function(x[held_idx])).reshape(
                        len(held_idx), -1
                    )
            multi = ovr.fit(x, y_multi)
        if config.calibrate:
            temperature = fit_binary_temperature(oof, y_multi)
            heads_cal["co_units"] = HeadCalibration(
                temperature=temperature,
                coverage=config.coverage,
                calibration_rows=len(co),
                ece_before=binary_calibration_error(sigmoid(oof), y_multi),
                ece_after=binary_calibration_error(sigmoid(oof, temperature), y_multi),
            )
        labels["co_units"] = co_labels
    if not single:
        raise ValueError("no head could be trained: the data needs category or main_unit labels")
    calibration = Calibration(heads=heads_cal)
    if multi is not None and config.calibrate:
        calibration.co_unit_threshold = best_threshold(sigmoid(oof, temperature), y_multi)
    return BaselineClassifier(vectorizer, single, multi, labels, calibration)
