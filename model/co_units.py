"""Co-handling units: which candidates a suggestion names, and the cut that decides it.

One rule, shared by `tian predict` (model.suggest), the evaluation report and the fit of the
cut on out-of-fold rows, so that the precision and recall measured are those of what is served:
a proposal's co-units are its `top_k` most probable units other than its suggested main unit
(the main unit cannot co-handle its own proposal) whose probability reaches the cut. Most
proposals have no co-unit, so probabilities seldom reach 0.5; the cut is the one that maximises
micro-F1 of this rule on out-of-fold rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_CUT", "TOP_K", "chosen_co_units", "co_unit_figures", "fit_co_unit_threshold"]

DEFAULT_CUT = 0.5  # where no out-of-fold row has a co-unit to fit on
TOP_K = 3  # at most this many co-units per suggestion (the list the proposal page shows)
# Candidate cuts: a coarse grid, because a hundred-odd rows with a few dozen co-units cannot
# tell 0.31 from 0.33 apart, and a fine grid would chase their noise.
CUTS = tuple(round(float(c), 2) for c in np.arange(0.05, 0.951, 0.05))


def chosen_co_units(
    probs: np.ndarray,
    threshold: float,
    main: Sequence[int] | np.ndarray | None = None,
    top_k: int = TOP_K,
) -> np.ndarray:
    """Boolean (rows × units) matrix of the co-units the rule suggests.

    Args:
        probs: co-unit probabilities, rows × units.
        threshold: the cut a unit's probability must reach.
        main: per row the column of the suggested main unit among the co-unit labels, -1
            where it is none of them (None: exclude nothing).
        top_k: at most this many per row.
    """
    p = np.array(probs, dtype=np.float64, copy=True)
    if p.ndim != 2:
        raise ValueError(f"co-unit probabilities must be rows × units, got shape {p.shape}")
    rows = np.arange(p.shape[0])
    if main is not None:
        main = np.asarray(main, dtype=int)
        if main.shape != (p.shape[0],):
            raise ValueError(f"main has {main.shape} entries for {p.shape[0]} rows")
        has = main >= 0
        p[rows[has], main[has]] = -1.0  # never above a cut
    chosen = np.zeros(p.shape, dtype=bool)
    if top_k <= 0 or p.shape[1] == 0:
        return chosen
    top = np.argsort(-p, axis=1, kind="stable")[:, :top_k]
    for k in range(top.shape[1]):
        col = top[:, k]
        chosen[rows, col] = p[rows, col] >= threshold
    return chosen


def co_unit_figures(targets: np.ndarray, chosen: np.ndarray) -> dict[str, float]:
    """Micro precision, recall and F1 of chosen co-units against the true ones (boolean)."""
    targets, chosen = np.asarray(targets, dtype=bool), np.asarray(chosen, dtype=bool)
    tp = float((targets & chosen).sum())
    precision = tp / max(float(chosen.sum()), 1.0)
    recall = tp / max(float(targets.sum()), 1.0)
    f1 = 2 * tp / max(float(chosen.sum() + targets.sum()), 1.0)
    return {"precision": precision, "recall": recall, "micro_f1": f1}


def fit_co_unit_threshold(
    probs: np.ndarray,
    targets: np.ndarray,
    main: Sequence[int] | np.ndarray | None = None,
    top_k: int = TOP_K,
) -> float:
    """The cut from `CUTS` with the best micro-F1 of the served rule on these (out-of-fold)
    rows; the lowest such cut on ties (more recall for the same F1). `DEFAULT_CUT` when no
    row has a co-unit."""
    targets = np.asarray(targets, dtype=bool)
    if targets.size == 0 or not targets.any():
        return DEFAULT_CUT
    best, best_f1 = DEFAULT_CUT, -1.0
    for cut in CUTS:
        f1 = co_unit_figures(targets, chosen_co_units(probs, cut, main, top_k))["micro_f1"]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = cut, f1
    return best
