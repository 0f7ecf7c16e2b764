"""The review cut: the calibrated expected accuracy of the unflagged rows, their observed one,
and by default both."""

from __future__ import annotations

import numpy as np
import pytest

from model.calibration import Calibration
from model.selective import (
    NEVER,
    ReviewCalibration,
    calibrated_threshold,
    fit_review,
    selective_threshold,
)


def _calibrated_rows(n: int, seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Softmax rows and labels drawn from them: calibrated by construction, mostly confident."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 4
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    truth = np.array([rng.choice(k, p=p) for p in probs])
    return probs, truth


def test_calibrated_threshold_is_where_the_mean_confidence_above_reaches_the_target():
    confidence = np.array([0.99, 0.97, 0.95, 0.93, 0.90, 0.50])
    # Means of the top rows: 0.99, 0.98, 0.97, 0.96, 0.948, ...: four rows reach 0.95.
    assert calibrated_threshold(confidence, 0.95) == 0.93
    assert calibrated_threshold(confidence, 0.9) == 0.90  # five rows: 0.948
    assert calibrated_threshold(np.array([0.9, 0.8]), 0.95) == NEVER
    assert calibrated_threshold(np.array([]), 0.95) == NEVER


def test_calibrated_threshold_keeps_tied_rows_together():
    # Cutting inside the tie at 0.9 would leave a mean of 0.95, but the tie must stay whole.
    confidence = np.array([1.0, 0.9, 0.9, 0.9])
    assert calibrated_threshold(confidence, 0.95) == 1.0
    assert calibrated_threshold(confidence, 0.92) == 0.9


def _falling_rows(confident_errors: bool) -> tuple[np.ndarray, np.ndarray]:
    """120 rows of falling confidence 0.999 → 0.5, wrong where the calibrated error count
    crosses a whole number; with `confident_errors` the first two errors sit at the 9th and
    10th most confident rows instead (the same number of errors, two of them confident)."""
    confidence = np.linspace(0.999, 0.5, 120)
    crossings = np.diff(np.floor(np.cumsum(1 - confidence)), prepend=0) > 0
    correct = np.where(crossings, 0, 1)
    if confident_errors:
        first_two = np.flatnonzero(crossings)[:2]
        correct[first_two] = 1
        correct[[8, 9]] = 0
    return confidence, correct


def test_two_confident_errors_no_longer_hold_the_cut_up():
    confidence, correct = _falling_rows(confident_errors=True)
    observed = selective_threshold(confidence, correct, 0.95)
    calibrated = calibrated_threshold(confidence, 0.95)
    assert np.mean(confidence >= observed) < 0.1  # only the eight rows above the errors
    assert np.mean(confidence >= calibrated) == pytest.approx(0.2)  # mean 0.95 reached


def test_fit_review_flags_only_what_the_target_needs():
    for confident_errors, most_flagged in ((False, 0.76), (True, 0.83)):
        confidence, correct = _falling_rows(confident_errors)
        probs = np.stack([confidence, 1 - confidence], axis=1)
        truth = 1 - correct  # label 0 is right where the row is correct
        review = fit_review({"category": probs}, {"category": truth}, 0.95, rule="calibrated")
        assert review.rule == "calibrated"
        assert review.expected_flagged <= most_flagged
        assert review.expected_confidence is not None and review.expected_confidence >= 0.95
        conf = review.confidence({"category": probs})
        observed_flagged = np.mean(conf < selective_threshold(conf, correct, 0.95))
        if confident_errors:  # the observed rule flagged 93% here
            assert observed_flagged > review.expected_flagged + 0.1
        else:  # errors where calibration puts them: both rules agree within a row or two
            assert abs(observed_flagged - review.expected_flagged) <= 0.02


def test_calibrated_cut_holds_the_target_on_fresh_rows():
    probs, truth = _calibrated_rows(150, seed=3)
    review = fit_review({"category": probs}, {"category": truth}, 0.95, rule="calibrated")
    fresh, fresh_truth = _calibrated_rows(20000, seed=4)
    unflagged = review.confidence({"category": fresh}) >= review.threshold
    accuracy = float(np.mean(fresh.argmax(axis=1)[unflagged] == fresh_truth[unflagged]))
    assert accuracy >= 0.945  # the target, within the Platt fit's error on 150 rows
    assert unflagged.mean() > 0.5


def test_default_rule_needs_both_the_observed_and_the_calibrated_accuracy():
    for confident_errors in (False, True):
        confidence, correct = _falling_rows(confident_errors)
        probs = np.stack([confidence, 1 - confidence], axis=1)
        truth = 1 - correct
        both = fit_review({"category": probs}, {"category": truth}, 0.95)
        assert both.rule == "both"
        conf = both.confidence({"category": probs})
        observed = selective_threshold(conf, correct, 0.95)
        assert both.threshold == max(observed, calibrated_threshold(conf, 0.95))
        assert both.expected_accuracy is not None and both.expected_accuracy >= 0.95
        assert both.expected_confidence is not None and both.expected_confidence >= 0.95
    with pytest.raises(ValueError):
        fit_review({"category": probs}, {"category": truth}, 0.95, rule="lenient")


def test_fit_review_holds_a_higher_target_too():
    probs, truth = _calibrated_rows(300, seed=5)
    loose = fit_review({"category": probs}, {"category": truth}, 0.95, rule="calibrated")
    strict = fit_review({"category": probs}, {"category": truth}, 0.98, rule="calibrated")
    assert strict.threshold > loose.threshold
    fresh, fresh_truth = _calibrated_rows(20000, seed=6)
    unflagged = strict.confidence({"category": fresh}) >= strict.threshold
    assert float(np.mean(fresh.argmax(axis=1)[unflagged] == fresh_truth[unflagged])) >= 0.975


def test_right_means_every_single_label_head_right():
    probs, truth = _calibrated_rows(120, seed=7)
    wrong_unit = (truth + 1) % probs.shape[1]  # the main unit head is always wrong
    review = fit_review(
        {"category": probs, "main_unit": probs}, {"category": truth, "main_unit": wrong_unit}, 0.95
    )
    assert review.heads == ["category", "main_unit"]
    assert review.expected_accuracy in (None, 0.0)  # nothing both-right to leave unflagged


def test_too_few_rows_fall_back_to_the_observed_rule():
    probs, truth = _calibrated_rows(12, seed=8)
    review = fit_review({"category": probs}, {"category": truth}, 0.95)
    assert review.rule == "observed"
    assert (review.slope, review.intercept) == (1.0, 0.0)
    right = probs.argmax(axis=1) == truth
    assert review.threshold == selective_threshold(probs.max(axis=1), right, 0.95)


def test_bundles_saved_before_the_rule_load_as_observed():
    old = {
        "heads": {},
        "review": {"target_accuracy": 0.95, "heads": ["category"], "threshold": 0.9},
    }
    review = Calibration.from_dict(old).review
    assert isinstance(review, ReviewCalibration)
    assert review.rule == "observed" and review.expected_confidence is None
    again = Calibration.from_dict(Calibration(review=review).to_dict()).review
    assert again == review


@pytest.mark.parametrize("target", [0.0, 1.0])
def test_fit_review_refuses_a_target_outside_zero_one(target):
    with pytest.raises(ValueError):
        fit_review({"category": np.eye(2)}, {"category": np.array([0, 1])}, target)
