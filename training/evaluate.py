"""Evaluation report for any classifier kind: the figures reviewers and data scientists read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from model.bundle import Classifier
from model.calibration import (
    binary_calibration_error,
    expected_calibration_error,
    prediction_sets,
    reliability_table,
)
from model.co_units import chosen_co_units
from model.heads import SINGLE_LABEL_HEADS, has_multi_labels, multi_targets, single_targets
from model.records import Proposal
from model.selective import joint_raw, risk_coverage


def top_k_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def single_head_report(
    probs: np.ndarray,
    y_true: Sequence[str],
    labels: Sequence[str],
    threshold: float,
    coverage: float,
) -> dict[str, Any]:
    """Metrics of one single-label head on rows with a known label.

    Rows whose true label the model never saw count as errors (the model cannot predict them);
    their number is reported so that a drop can be traced to new labels.
    """
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index.get(t, -1) for t in y_true])
    predicted = probs.argmax(axis=1)
    pred_names = [labels[i] for i in predicted]
    sets = prediction_sets(probs, threshold)
    covered = [y[i] in sets[i] for i in range(len(y))]
    singletons = np.array([len(s) == 1 for s in sets])
    seen = y >= 0
    classes = sorted(set(y_true) | set(pred_names))
    p, r, f, support = precision_recall_fscore_support(
        list(y_true), pred_names, labels=classes, zero_division=0
    )
    report: dict[str, Any] = {
        "rows": int(len(y)),
        "unseen_label_rows": int((~seen).sum()),
        "accuracy": float(accuracy_score(list(y_true), pred_names)),
        "macro_f1": float(
            f1_score(
                list(y_true),
                pred_names,
                labels=sorted(set(y_true)),
                average="macro",
                zero_division=0,
            )
        ),
        "top_k_accuracy": {str(k): top_k_accuracy(probs, y, k) for k in (1, 3, 5)},
        "ece": expected_calibration_error(probs[seen], y[seen]) if seen.any() else None,
        "conformal": {
            "target_coverage": coverage,
            "coverage": float(np.mean(covered)),
            "mean_set_size": float(np.mean([len(s) for s in sets])),
            "abstain_rate": float(1 - singletons.mean()),
            "accuracy_when_confident": float(np.mean(predicted[singletons] == y[singletons]))
            if singletons.any()
            else None,
        },
        "per_class": {
            c: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "reliability": reliability_table(probs[seen], y[seen]) if seen.any() else [],
        "confusion": {
            "labels": classes,
            "matrix": confusion_matrix(list(y_true), pred_names, labels=classes).tolist(),
        },
    }
    return report


def multi_label_f1(target: np.ndarray, chosen: np.ndarray) -> dict[str, float]:
    """Micro, macro (over labels that occur) and per-row F1, and micro precision and recall,
    of boolean label matrices.

    Written out because scikit-learn reads a one-column label matrix as a binary task.
    """
    tp = (target & chosen).sum(axis=0).astype(float)
    fp = (~target & chosen).sum(axis=0).astype(float)
    fn = (target & ~chosen).sum(axis=0).astype(float)
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    precision = tp.sum() / max(tp.sum() + fp.sum(), 1)
    recall = tp.sum() / max(tp.sum() + fn.sum(), 1)
    occurring = target.sum(axis=0) > 0
    per_label = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    macro = float(per_label[occurring].mean()) if occurring.any() else 0.0
    row_tp = (target & chosen).sum(axis=1)
    denominator = target.sum(axis=1) + chosen.sum(axis=1)
    per_row = np.where(denominator == 0, 1.0, 2 * row_tp / np.maximum(denominator, 1))
    return {
        "micro_f1": float(micro),
        "macro_f1": macro,
        "samples_f1": float(per_row.mean()),
        "precision": float(precision),
        "recall": float(recall),
    }


def multi_head_report(
    probs: np.ndarray,
    y_true: Sequence[Sequence[str]],
    labels: Sequence[str],
    threshold: float,
    main: Sequence[int] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of the multi-label co-unit head, ECE per cell.

    F1, precision and recall are those of the co-units a suggestion names (model.co_units:
    the top three above the threshold, less the suggested main unit, whose columns `main`
    gives). True co-units the model never saw are left out of them and counted apart.
    """
    index = {label: i for i, label in enumerate(labels)}
    target = np.zeros_like(probs)
    unseen = 0
    for i, units in enumerate(y_true):
        for u in units:
            if u in index:
                target[i, index[u]] = 1
            else:
                unseen += 1
    chosen = chosen_co_units(probs, threshold, main)
    return {
        "rows": int(len(y_true)),
        "rows_with_co_units": int(sum(1 for u in y_true if u)),
        "true_co_units": int(target.sum()),
        "unseen_co_units": unseen,
        "suggested_co_units": int(chosen.sum()),
        **multi_label_f1(target.astype(bool), chosen),
        "ece": binary_calibration_error(probs, target),
        "threshold": threshold,
    }


def evaluate(
    classifier: Classifier, proposals: Sequence[Proposal], *, progress: bool = False
) -> dict[str, Any]:
    """Report per head, each on the rows that carry that head's label."""
    if not proposals:
        raise ValueError("no rows to evaluate")
    probs = classifier.predict_proba([p.text for p in proposals], progress=progress)
    report: dict[str, Any] = {"rows": len(proposals), "model_kind": classifier.kind, "heads": {}}
    for head in SINGLE_LABEL_HEADS:
        if head not in probs:
            continue
        targets = single_targets(proposals, head)
        rows = [i for i, t in enumerate(targets) if t]
        if not rows:
            continue
        cal = classifier.calibration.heads[head]
        report["heads"][head] = single_head_report(
            probs[head][rows],
            [targets[i] for i in rows],
            classifier.labels[head],
            cal.threshold,
            cal.coverage,
        )
    if "co_units" in probs:
        mask = has_multi_labels(proposals)
        rows = [i for i, m in enumerate(mask) if m]
        if rows:
            co = multi_targets(proposals)
            report["heads"]["co_units"] = multi_head_report(
                probs["co_units"][rows],
                [co[i] for i in rows],
                classifier.labels["co_units"],
                classifier.calibration.co_unit_threshold,
                _main_columns(classifier, probs, rows),
            )
    report["review"] = review_report(classifier, probs, proposals)
    return report


def _main_columns(
    classifier: Classifier, probs: dict[str, np.ndarray], rows: Sequence[int]
) -> np.ndarray | None:
    """Per row the co-unit column of the suggested main unit (-1: not a co-unit label)."""
    if "main_unit" not in probs:
        return None
    column = {u: j for j, u in enumerate(classifier.labels["co_units"])}
    top = probs["main_unit"][list(rows)].argmax(axis=1)
    return np.array([column.get(classifier.labels["main_unit"][i], -1) for i in top], dtype=int)


def review_report(
    classifier: Classifier, probs: dict[str, np.ndarray], proposals: Sequence[Proposal]
) -> dict[str, Any]:
    """Selective suggestions: risk-coverage per head and joint, and the bundle's review flag.

    Per head, rows are ranked by that head's top probability; jointly, by the bundle's joint
    confidence (the product of the heads' top probabilities for bundles without one). The
    flag figures use the bundle's threshold for its target accuracy.
    """
    heads = [h for h in SINGLE_LABEL_HEADS if h in probs]
    out: dict[str, Any] = {"heads": {}}
    truth = {}
    for head in heads:
        index = {label: i for i, label in enumerate(classifier.labels[head])}
        y = np.array([index.get(t, -2) if t else -1 for t in single_targets(proposals, head)])
        truth[head] = y
        keep = y != -1
        if keep.any():
            p = probs[head][keep]
            out["heads"][head] = risk_coverage(p.max(axis=1), p.argmax(axis=1) == y[keep])
    review = classifier.calibration.review
    confidence = review.confidence(probs) if review is not None else joint_raw(probs, heads)
    keep = np.all([truth[h] != -1 for h in heads], axis=0)
    right = np.all([probs[h].argmax(axis=1) == truth[h] for h in heads], axis=0)
    if keep.any():
        out["joint"] = risk_coverage(confidence[keep], right[keep])
    out["target_accuracy"] = review.target_accuracy if review is not None else None
    if review is not None:
        unflagged = confidence >= review.threshold
        out["threshold"] = review.threshold
        out["rule"] = review.rule
        out["flagged"] = round(float(1 - unflagged.mean()), 4)
        labelled = keep & unflagged
        out["unflagged_accuracy"] = (
            round(float(right[labelled].mean()), 4) if labelled.any() else None
        )
        for head in heads:
            cut = review.head_thresholds.get(head)
            y = truth[head]
            if cut is None:
                continue
            top = probs[head].max(axis=1)
            ok = (y != -1) & unflagged
            out["heads"].setdefault(head, {})["unflagged_accuracy"] = (
                round(float((probs[head].argmax(axis=1) == y)[ok].mean()), 4) if ok.any() else None
            )
            out["heads"][head]["below_own_cut"] = round(float((top < cut).mean()), 4)
    return out
