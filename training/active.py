"""Pool-based active learning, simulated: how many labels does uncertainty-first save?

A labelled table stands in for the year's unreviewed pool: start from a few random labels, then
repeatedly "review" a batch (reveal its labels), retrain, and measure macro-F1 on a fixed
held-out part. Orderings: random, uncertainty-first (margin of the model's probabilities), and
uncertainty plus disagreement with a second, different model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from model.calibration import softmax
from model.uncertainty import review_scores

# A learner fits on (rows of X, labels) and returns probabilities for any rows of X, over the
# given class list.
Learner = Callable[[Any, np.ndarray, Any, int], np.ndarray]


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of one simulated labelling run.

    Attributes:
        initial: random labels before the first model is trained.
        batch: labels revealed per round (a reviewer's sitting).
        budget: stop when this many labels are used (None: the whole pool).
        seed: seed of the initial sample and of random ordering.
    """

    initial: int = 100
    batch: int = 100
    budget: int | None = None
    seed: int = 0


def svm_learner(c: float = 0.5, temperature: float = 0.3) -> Learner:
    """The baseline's single-head model (class-balanced linear SVM on TF-IDF), with a fixed
    softmax temperature instead of cross-validated calibration: the ordering only needs scores
    that rank rows, and refitting calibration every round would multiply the cost."""
    from sklearn.svm import LinearSVC

    def fit_predict(x_train: Any, y: np.ndarray, x_all: Any, n_classes: int) -> np.ndarray:
        clf = LinearSVC(C=c, class_weight="balanced", random_state=0).fit(x_train, y)
        scores = np.full((x_all.shape[0], n_classes), -1e3)
        s = clf.decision_function(x_all)
        s = np.column_stack([-s, s]) if s.ndim == 1 else s
        scores[:, clf.classes_] = s
        return softmax(scores, temperature)

    return fit_predict


def nb_learner(alpha: float = 0.1) -> Learner:
    """Complement naive Bayes: cheap and unlike the SVM, the second opinion for disagreement."""
    from sklearn.naive_bayes import ComplementNB

    def fit_predict(x_train: Any, y: np.ndarray, x_all: Any, n_classes: int) -> np.ndarray:
        clf = ComplementNB(alpha=alpha).fit(x_train, y)
        probs = np.zeros((x_all.shape[0], n_classes))
        probs[:, clf.classes_] = clf.predict_proba(x_all)
        return probs

    return fit_predict


def simulate(
    x_pool: Any,
    y_pool: np.ndarray,
    x_test: Any,
    y_test: np.ndarray,
    strategy: str,
    config: SimulationConfig,
    learner: Learner,
    second: Learner | None = None,
) -> list[tuple[int, float]]:
    """Learning curve [(labels used, test macro-F1), ...] of one strategy.

    strategy: "random", "uncertainty", or "disagreement" (uncertainty plus disagreement with
    `second`). Classes are integer ids 0..n-1 over pool and test together.
    """
    if strategy not in ("random", "uncertainty", "disagreement"):
        raise ValueError(f"unknown strategy {strategy!r}")
    if strategy == "disagreement" and second is None:
        raise ValueError("the disagreement strategy needs a second learner")
    rng = np.random.default_rng(config.seed)
    n_classes = int(max(y_pool.max(), y_test.max())) + 1
    n = len(y_pool)
    budget = min(config.budget or n, n)
    labelled = np.zeros(n, dtype=bool)
    labelled[rng.choice(n, size=min(config.initial, n), replace=False)] = True
    random_rank = rng.permutation(n)
    curve = []
    while True:
        idx = np.flatnonzero(labelled)
        x_all = _vstack(x_pool, x_test)
        probs = learner(x_pool[idx], y_pool[idx], x_all, n_classes)
        test_pred = probs[n:].argmax(axis=1)
        curve.append((int(labelled.sum()), float(f1_score(y_test, test_pred, average="macro"))))
        if labelled.sum() >= budget:
            return curve
        take = min(config.batch, budget - int(labelled.sum()))
        unlabelled = np.flatnonzero(~labelled)
        if strategy == "random":
            order = [i for i in random_rank if not labelled[i]]
            chosen = np.array(order[:take])
        else:
            pool_probs = {"category": probs[:n][unlabelled]}
            other = None
            if strategy == "disagreement" and second is not None:
                other_all = second(x_pool[idx], y_pool[idx], x_pool, n_classes)
                other = {"category": other_all[unlabelled]}
            score = review_scores(pool_probs, other)["score"]
            chosen = unlabelled[np.argsort(-score, kind="stable")[:take]]
        labelled[chosen] = True


def _vstack(a: Any, b: Any) -> Any:
    import scipy.sparse as sp

    return sp.vstack([a, b]).tocsr() if sp.issparse(a) else np.vstack([a, b])


def labels_to_reach(curve: Sequence[tuple[int, float]], target: float) -> int | None:
    """The fewest labels at which `curve` reaches `target` macro-F1 (None if never)."""
    for used, f1 in curve:
        if f1 >= target - 1e-12:
            return used
    return None
