import numpy as np
import pytest

from model.calibration import (
    Calibration,
    HeadCalibration,
    calibrate_single_head,
    conformal_threshold,
    expected_calibration_error,
    fit_temperature,
    prediction_sets,
    softmax,
)


def _overconfident(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is far too sure: right 70% of the time at ~99% confidence."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    guess = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), guess] += 8
    return logits, y


def test_temperature_scaling_reduces_ece():
    logits, y = _overconfident(4000, 5)
    before = expected_calibration_error(softmax(logits), y)
    t = fit_temperature(logits, y)
    after = expected_calibration_error(softmax(logits, t), y)
    assert t > 1.5  # overconfident logits need softening
    assert before > 0.15
    assert after < before / 3


def test_conformal_sets_reach_target_coverage_on_fresh_data():
    logits, y = _overconfident(6000, 6, seed=1)
    cal = calibrate_single_head(logits[:2000], y[:2000], coverage=0.9)
    probs = softmax(logits[2000:], cal.temperature)
    sets = prediction_sets(probs, cal.threshold)
    coverage = np.mean([y[2000 + i] in s for i, s in enumerate(sets)])
    assert 0.88 <= coverage <= 0.93
    assert 1 < np.mean([len(s) for s in sets]) < 6


def test_conformal_threshold_without_enough_rows_allows_everything():
    probs = softmax(np.array([[2.0, 0.0], [0.0, 2.0]]))
    assert conformal_threshold(probs, np.array([0, 1]), 0.95) == 1.0


def test_prediction_sets_are_never_empty_and_best_first():
    probs = np.array([[0.2, 0.5, 0.3]])
    assert prediction_sets(probs, 0.0) == [[1]]
    assert prediction_sets(probs, 0.75) == [[1, 2]]
    assert prediction_sets(probs, 0.8) == [[1, 2, 0]]


def test_bad_coverage_is_refused():
    with pytest.raises(ValueError, match="coverage"):
        conformal_threshold(np.ones((3, 2)) / 2, np.zeros(3, dtype=int), 1.0)


def test_calibration_round_trips_through_dict():
    cal = Calibration(
        heads={"category": HeadCalibration(temperature=1.7, threshold=0.4)}, co_unit_threshold=0.3
    )
    again = Calibration.from_dict(cal.to_dict())
    assert again == cal
