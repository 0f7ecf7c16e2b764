"""Calibration and conformal prediction sets, shared by every classifier kind.

Temperature scaling is written here rather than taken from scikit-learn because it has to
work on any model's logits (the transformer's as well as a linear model's decision values).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from model.selective import ReviewCalibration


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits divided by the temperature (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    # Cross-validation marks classes absent from a fold with the most negative float; dividing
    # that by a temperature below 1 overflows to -inf, whose exp is the right answer, 0.
    with np.errstate(over="ignore"):
        z = (z - z.max(axis=1, keepdims=True)) / temperature
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.clip(np.asarray(logits, dtype=np.float64) / temperature, -50, 50)
    return 1.0 / (1.0 + np.exp(-z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of `labels` (class indices)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    # Columns of classes missing from a cross-validation fold come as huge negative numbers.
    logits = np.maximum(logits, logits.max(axis=1, keepdims=True) - 1e4)

    def nll(log_t: float) -> float:
        p = softmax(logits, math.exp(log_t))[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    result = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(math.exp(result.x))


def fit_binary_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature for independent sigmoid outputs (multi-label), by log-loss over all cells."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    targets = np.asarray(targets, dtype=np.float64).ravel()
    if targets.size == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = np.clip(sigmoid(logits, math.exp(log_t)), 1e-12, 1 - 1e-12)
        return float(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())

    result = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(math.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over equal-width bins."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    return _binned_gap(confidence, correct, n_bins)


def binary_calibration_error(probs: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> float:
    """ECE of independent probabilities against 0/1 targets (multi-label heads)."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    t = np.asarray(targets, dtype=np.float64).ravel()
    if p.size == 0:
        return float("nan")
    return _binned_gap(p, t, n_bins)


def _binned_gap(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> float:
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() * abs(confidence[mask].mean() - outcome[mask].mean())
    return float(total / len(confidence))


def reliability_table(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 10
) -> list[dict[str, float]]:
    """Per-bin mean confidence, accuracy and count (for the reliability diagram)."""
    confidence = np.asarray(probs).max(axis=1)
    correct = (np.asarray(probs).argmax(axis=1) == np.asarray(labels)).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            rows.append(
                {
                    "low": b / n_bins,
                    "high": (b + 1) / n_bins,
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return rows


def conformal_threshold(probs: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """Split-conformal threshold on the score 1 - p(true label) (the LAC score).

    With n held-out rows, the set {labels with 1 - p <= threshold} contains the true label with
    probability at least `coverage` on exchangeable new rows. Returns 1.0 (every label) when
    there are too few rows to give the guarantee.
    """
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
    labels = np.asarray(labels)
    n = len(labels)
    scores = 1.0 - np.asarray(probs)[np.arange(n), labels]
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        return 1.0
    return float(np.sort(scores)[rank - 1])


def prediction_sets(probs: np.ndarray, threshold: float) -> list[list[int]]:
    """Class indices in each row's conformal set, most probable first; never empty."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, axis=1)
    sets = []
    for row, ranked in zip(probs, order, strict=True):
        members = [int(i) for i in ranked if 1.0 - row[i] <= threshold]
        sets.append(members or [int(ranked[0])])
    return sets


def fit_weights(
    parts: list[np.ndarray], labels: np.ndarray, *, binary: bool = False
) -> list[float]:
    """Non-negative weights w that minimise the log-loss of softmax(sum_i w_i * parts_i).

    With one part this is temperature scaling (w = 1 / T). With several it stacks models,
    e.g. a transformer's logits and the baseline's log-probabilities, and calibrates the blend
    in one step. `binary`: parts are per-label sigmoid logits scored against a 0/1 matrix.
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    labels = np.asarray(labels)
    if len(labels) == 0:
        return [1.0] + [0.0] * (len(parts) - 1)

    def loss(log_w: np.ndarray) -> float:
        z = combine(parts, [math.exp(lw) for lw in log_w])
        if binary:
            q = np.clip(sigmoid(z), 1e-12, 1 - 1e-12)
            return float(-(labels * np.log(q) + (1 - labels) * np.log(1 - q)).mean())
        q = softmax(z)[np.arange(len(labels)), labels]
        return float(-np.log(np.clip(q, 1e-12, None)).mean())

    start = np.zeros(len(parts))
    result = minimize(loss, start, method="L-BFGS-B", bounds=[(-8.0, 5.0)] * len(parts))
    return [float(math.exp(v)) for v in result.x]


def combine(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The blended logits sum_i w_i * parts_i."""
    total = np.zeros(np.shape(parts[0]), dtype=np.float64)
    for w, p in zip(weights, parts, strict=True):
        total += w * np.asarray(p, dtype=np.float64)
    return total


def best_threshold(probs: np.ndarray, targets: np.ndarray, default: float = 0.5) -> float:
    """The probability cut that maximises micro-F1 of multi-label suggestions on held-out rows.

    Co-handling units are rare (most proposals have none), so calibrated probabilities seldom
    reach 0.5; a cut chosen on held-out rows keeps suggestions useful. `default` when no row has
    a positive label.
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=bool)
    if probs.size == 0 or not targets.any():
        return default
    best, best_f1 = default, -1.0
    for cut in np.arange(0.05, 0.951, 0.05):
        chosen = probs >= cut
        tp = float((chosen & targets).sum())
        f1 = 2 * tp / max(float(chosen.sum() + targets.sum()), 1.0)
        if f1 > best_f1:
            best, best_f1 = float(round(cut, 2)), f1
    return best


@dataclass
class HeadCalibration:
    """How one head's raw scores become probabilities and prediction sets.

    `weights`, when set, blend several score matrices (see `fit_weights`) and replace the
    temperature; otherwise probabilities are softmax(scores / temperature).
    """

    temperature: float = 1.0
    weights: list[float] | None = None
    coverage: float = 0.95
    threshold: float = 1.0  # conformal threshold on 1 - p; 1.0 means "no guarantee, all labels"
    calibration_rows: int = 0
    ece_before: float | None = None
    ece_after: float | None = None


@dataclass
class Calibration:
    """Calibration for every head of a classifier; saved as calibration.json in a bundle."""

    heads: dict[str, HeadCalibration] = field(default_factory=dict)
    co_unit_threshold: float = 0.5  # a co-unit is suggested when its probability reaches this
    # Joint confidence and the cut for the target accuracy (None: bundles from before it).
    review: ReviewCalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "heads": {name: asdict(h) for name, h in self.heads.items()},
            "co_unit_threshold": self.co_unit_threshold,
        }
        if self.review is not None:
            out["review"] = asdict(self.review)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        heads = {name: HeadCalibration(**h) for name, h in data.get("heads", {}).items()}
        review = ReviewCalibration(**data["review"]) if data.get("review") else None
        return cls(
            heads=heads,
            co_unit_threshold=float(data.get("co_unit_threshold", 0.5)),
            review=review,
        )


def calibrate_blend(
    parts: list[np.ndarray], labels: np.ndarray, coverage: float
) -> HeadCalibration:
    """Fit blend weights and the conformal threshold of a single-label head on held-out rows.

    `ece_before` is the first part (the model alone, uncalibrated); `ece_after` the blend.
    """
    labels = np.asarray(labels)
    weights = fit_weights(parts, labels)
    after = softmax(combine(parts, weights))
    n = len(labels)
    return HeadCalibration(
        weights=weights,
        coverage=coverage,
        threshold=conformal_threshold(after, labels, coverage) if n else 1.0,
        calibration_rows=int(n),
        ece_before=expected_calibration_error(softmax(parts[0]), labels) if n else None,
        ece_after=expected_calibration_error(after, labels) if n else None,
    )


def calibrate_single_head(
    logits: np.ndarray, labels: np.ndarray, coverage: float
) -> HeadCalibration:
    """Fit temperature and the conformal threshold on held-out logits of one head."""
    labels = np.asarray(labels)
    temperature = fit_temperature(logits, labels)
    before = softmax(logits)
    after = softmax(logits, temperature)
    return HeadCalibration(
        temperature=temperature,
        coverage=coverage,
        threshold=conformal_threshold(after, labels, coverage) if len(labels) else 1.0,
        calibration_rows=int(len(labels)),
        ece_before=expected_calibration_error(before, labels) if len(labels) else None,
        ece_after=expected_calibration_error(after, labels) if len(labels) else None,
    )
