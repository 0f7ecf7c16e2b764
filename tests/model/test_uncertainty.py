"""The "review these first" ordering."""

from __future__ import annotations

import numpy as np
import pytest

from model.uncertainty import (
    disagreement,
    margin_uncertainty,
    review_order,
    review_scores,
)


def test_margin_uncertainty() -> None:
    p = np.array([[0.9, 0.05, 0.05], [0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(margin_uncertainty(p), [0.15, 1.0, 1.0])
    assert margin_uncertainty(np.ones((2, 1))).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="2-D"):
        margin_uncertainty(np.array([0.5, 0.5]))


def test_disagreement_by_name_when_label_orders_differ() -> None:
    a = np.array([[0.8, 0.2], [0.3, 0.7]])
    b = np.array([[0.1, 0.9], [0.1, 0.9]])  # columns in the opposite order
    assert disagreement(a, b, ["x", "y"], ["y", "x"]).tolist() == [0.0, 1.0]
    assert disagreement(a, b).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="different numbers of rows"):
        disagreement(a, b[:1])


def test_review_order_puts_unsure_and_disputed_first() -> None:
    probs = {
        "category": np.array([[0.95, 0.05], [0.55, 0.45], [0.9, 0.1], [0.5, 0.5]]),
        "main_unit": np.array([[0.9, 0.1], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5]]),
        "co_units": np.zeros((4, 3)),  # ignored
    }
    assert review_order(probs).tolist() == [3, 1, 2, 0]
    other = {"category": np.array([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])}
    scores = review_scores(probs, other)
    assert scores["disagreement"].tolist() == [0.0, 0.0, 1.0, 0.0]
    # Row 2 is confident but the other model disagrees: it moves ahead of row 0.
    order = review_order(probs, other).tolist()
    assert order.index(2) < order.index(0)
    with pytest.raises(ValueError, match="no single-label head"):
        review_order({"co_units": np.zeros((2, 2))})
