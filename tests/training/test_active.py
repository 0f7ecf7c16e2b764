"""Simulated pool-based active learning on a small synthetic problem."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.active import SimulationConfig, labels_to_reach, nb_learner, simulate, svm_learner


def blobs(n: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.random((n, 12)) * 0.5
    x[np.arange(n), y] += 1.0  # each class lights up its own feature
    return sp.csr_matrix(x), y


def test_curves_grow_to_the_budget() -> None:
    x_pool, y_pool = blobs(120, 0)
    x_test, y_test = blobs(60, 1)
    config = SimulationConfig(initial=10, batch=20, budget=70, seed=0)
    for strategy in ("random", "uncertainty", "disagreement"):
        curve = simulate(
            x_pool, y_pool, x_test, y_test, strategy, config, svm_learner(), nb_learner()
        )
        assert [n for n, _ in curve] == [10, 30, 50, 70]
        assert all(0 <= f <= 1 for _, f in curve)
        assert curve[-1][1] > 0.8


def test_labels_to_reach_and_bad_strategy() -> None:
    assert labels_to_reach([(10, 0.5), (20, 0.7), (30, 0.9)], 0.7) == 20
    assert labels_to_reach([(10, 0.5)], 0.9) is None
    x, y = blobs(20, 0)
    with pytest.raises(ValueError, match="unknown strategy"):
        simulate(x, y, x, y, "best", SimulationConfig(), svm_learner())
    with pytest.raises(ValueError, match="second learner"):
        simulate(x, y, x, y, "disagreement", SimulationConfig(), svm_learner())
