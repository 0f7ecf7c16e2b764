"""Compare two model bundles on the same labelled data before promoting the new one.

The report puts each head's metrics side by side, counts the predictions that changed (and
whether they were fixed or broken), lists per-class F1 gains and losses, compares calibration,
and adds a drift report between the evaluation year and the years before it. Unit names are
mapped through the alias map on both sides: labels in the data, and the columns of a model
trained before a rename (their probabilities are merged into the current name), so that a
renamed unit counts as the same class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.aliases import AliasMap
from model.bundle import Classifier
from model.calibration import Calibration
from model.heads import SINGLE_LABEL_HEADS, single_targets
from model.records import Proposal
from training.drift import drift_report
from training.evaluate import evaluate

_EXAMPLES = 20
_HEADLINE = ("accuracy", "macro_f1", "ece")


class FixedPredictions:
    """A classifier stand-in that returns probabilities computed once (so that a transformer
    runs once per comparison), with unit columns merged through an alias map."""

    def __init__(
        self, classifier: Classifier, texts: Sequence[str], aliases: AliasMap | None
    ) -> None:
        self.kind = classifier.kind
        self.calibration: Calibration = classifier.calibration
        probs = classifier.predict_proba(list(texts))
        self.labels: dict[str, list[str]] = {}
        self._probs: dict[str, np.ndarray] = {}
        for head, p in probs.items():
            names = classifier.labels[head]
            if aliases is None or head == "category":
                self.labels[head], self._probs[head] = list(names), p
                continue
            merged = list(dict.fromkeys(aliases.canonical(n) for n in names))
            out = np.zeros((p.shape[0], len(merged)))
            for j, n in enumerate(names):
                k = merged.index(aliases.canonical(n))
                # single-label: probabilities of merged units add up; multi-label: any of them
                out[:, k] = (
                    out[:, k] + p[:, j]
                    if head in SINGLE_LABEL_HEADS
                    else np.maximum(out[:, k], p[:, j])
                )
            self.labels[head], self._probs[head] = merged, out
        self._n = len(texts)

    @property
    def heads(self) -> list[str]:
        return list(self.labels)

    def predict_proba(self, texts: list[str], *, progress: bool = False) -> dict[str, np.ndarray]:
        if len(texts) != self._n:
            raise ValueError("FixedPredictions answers only for the texts it was built with")
        return self._probs

    def top_labels(self, head: str) -> list[str]:
        return [self.labels[head][i] for i in self._probs[head].argmax(axis=1)]

    def save(self, folder: Path) -> None:  # pragma: no cover - part of the protocol only
        raise NotImplementedError("FixedPredictions is not a model")


def _headline(head_report: dict[str, Any]) -> dict[str, Any]:
    if "accuracy" not in head_report:  # co-units
        return {k: head_report.get(k) for k in ("micro_f1", "macro_f1", "samples_f1", "ece")}
    c = head_report["conformal"]
    return {
        **{k: head_report[k] for k in _HEADLINE},
        "top3": head_report["top_k_accuracy"]["3"],
        "set_coverage": c["coverage"],
        "mean_set_size": c["mean_set_size"],
        "abstain_rate": c["abstain_rate"],
        "unseen_label_rows": head_report["unseen_label_rows"],
    }


def _delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, float]:
    return {
        k: round(new[k] - old[k], 4)
        for k in old
        if isinstance(old.get(k), int | float) and isinstance(new.get(k), int | float)
    }


def per_class_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-class F1 of both models, biggest gain first (classes present in either report)."""
    rows = []
    for label in sorted(set(old["per_class"]) | set(new["per_class"])):
        o, n = old["per_class"].get(label, {}), new["per_class"].get(label, {})
        support = max(o.get("support", 0), n.get("support", 0))
        f_old, f_new = o.get("f1", 0.0), n.get("f1", 0.0)
        rows.append(
            {
                "label": label,
                "support": support,
                "f1_old": round(f_old, 4),
                "f1_new": round(f_new, 4),
                "delta": round(f_new - f_old, 4),
            }
        )
    rows.sort(key=lambda r: (-r["delta"], -r["support"], r["label"]))
    return rows


def changed_predictions(
    ids: Sequence[str],
    truth: Sequence[str | None],
    old_top: Sequence[str],
    new_top: Sequence[str],
) -> dict[str, Any]:
    """Rows whose top label changed, split into fixed (old wrong, new right), broken (old right,
    new wrong) and other changes; examples by id only (never text or proposer)."""
    changed = [i for i in range(len(ids)) if old_top[i] != new_top[i]]
    fixed = [i for i in changed if truth[i] and new_top[i] == truth[i]]
    broken = [i for i in changed if truth[i] and old_top[i] == truth[i]]

    def examples(rows: list[int]) -> list[dict[str, Any]]:
        return [
            {"id": ids[i], "true": truth[i], "old": old_top[i], "new": new_top[i]}
            for i in rows[:_EXAMPLES]
        ]

    return {
        "rows": len(ids),
        "changed": len(changed),
        "changed_rate": round(len(changed) / max(len(ids), 1), 4),
        "fixed": len(fixed),
        "broken": len(broken),
        "other": len(changed) - len(fixed) - len(broken),
        "examples": {"fixed": examples(fixed), "broken": examples(broken)},
    }


def compare_models(
    old: Classifier,
    new: Classifier,
    proposals: Sequence[Proposal],
    *,
    aliases: AliasMap | None = None,
    history: Sequence[Proposal] = (),
) -> dict[str, Any]:
    """Side-by-side report of `old` and `new` on `proposals`; a drift report against
    `history` (earlier years) when given.

    `proposals` keep their raw unit names here: they are mapped through `aliases` inside, and
    `history` is only used for drift.
    """
    if not proposals:
        raise ValueError("no rows to compare on")
    raw = list(proposals)
    data = aliases.apply(raw)[0] if aliases is not None else raw
    texts = [p.text for p in data]
    views = {
        "old": FixedPredictions(old, texts, aliases),
        "new": FixedPredictions(new, texts, aliases),
    }
    reports = {name: evaluate(view, data) for name, view in views.items()}
    ids = [p.id for p in data]
    heads: dict[str, Any] = {}
    for head in sorted(set(reports["old"]["heads"]) | set(reports["new"]["heads"])):
        o, n = reports["old"]["heads"].get(head), reports["new"]["heads"].get(head)
        entry: dict[str, Any] = {
            "old": _headline(o) if o else None,
            "new": _headline(n) if n else None,
        }
        if o and n:
            entry["delta"] = _delta(entry["old"], entry["new"])
        if o and n and "per_class" in o:
            classes = per_class_changes(o, n)
            entry["per_class"] = classes
            entry["gains"] = [c for c in classes if c["delta"] > 0][:10]
            entry["losses"] = [c for c in reversed(classes) if c["delta"] < 0][:10]
            entry["calibration"] = {
                "old": {"ece": o["ece"], "reliability": o["reliability"]},
                "new": {"ece": n["ece"], "reliability": n["reliability"]},
            }
        if head in SINGLE_LABEL_HEADS and o and n:
            rows = [i for i, t in enumerate(single_targets(data, head)) if t]
            truth = single_targets(data, head)
            old_top, new_top = views["old"].top_labels(head), views["new"].top_labels(head)
            entry["changed_predictions"] = changed_predictions(
                [ids[i] for i in rows],
                [truth[i] for i in rows],
                [old_top[i] for i in rows],
                [new_top[i] for i in rows],
            )
        heads[head] = entry
    report: dict[str, Any] = {
        "rows": len(data),
        "years": sorted({p.year for p in data if p.year is not None}),
        "heads": heads,
        "verdict": verdict(heads),
        "reports": reports,
    }
    if aliases is not None:
        report["aliases"] = aliases.apply(raw)[1].to_dict()
    if history:
        known = set(new.labels.get("main_unit", [])) | set(new.labels.get("co_units", []))
        report["drift"] = drift_report(history, raw, aliases=aliases, known_units=known)
    return report


def verdict(heads: dict[str, Any]) -> dict[str, Any]:
    """A one-line reading of the deltas: which heads got better or worse in macro-F1.

    It is a summary for the person deciding, not a decision: small test years are noisy.
    """
    better, worse = [], []
    for head, entry in heads.items():
        d = (entry.get("delta") or {}).get("macro_f1")
        if d is None:
            continue
        if d > 0.005:
            better.append(head)
        elif d < -0.005:
            worse.append(head)
    return {
        "better_macro_f1": better,
        "worse_macro_f1": worse,
        "summary": "new is not worse on any head"
        if not worse
        else f"new is worse on {', '.join(worse)}",
    }


_HEAD_ORDER = ("category", "main_unit", "co_units")


def summary_text(report: dict[str, Any]) -> str:
    """A few readable lines from a comparison report: per head old vs new macro-F1, accuracy
    and ECE with the change, how many predictions were fixed and broken, and the verdict."""

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    def signed(value: Any) -> str:
        return f"{value:+.3f}" if isinstance(value, int | float) else ""

    models = report.get("models") or {}
    old_name = (models.get("old") or {}).get("version") or "old"
    new_name = (models.get("new") or {}).get("version") or "new"
    years = ", ".join(map(str, report.get("years") or [])) or "-"
    lines = [
        f"compare {old_name} (old) with {new_name} (new) on {report.get('rows', 0)} rows of {years}"
    ]
    heads = report.get("heads") or {}
    for head in [h for h in _HEAD_ORDER if h in heads] + [h for h in heads if h not in _HEAD_ORDER]:
        entry = heads[head]
        old, new, delta = entry.get("old") or {}, entry.get("new") or {}, entry.get("delta") or {}
        names = (
            ("macro_f1", "accuracy", "ece")
            if "accuracy" in old or "accuracy" in new
            else (
                "micro_f1",
                "macro_f1",
                "ece",
            )
        )
        figures = "  ".join(
            f"{n} {fmt(old.get(n))} -> {fmt(new.get(n))} {signed(delta.get(n))}".rstrip()
            for n in names
        )
        changed = entry.get("changed_predictions")
        moves = (
            f"  changed {changed['changed']}/{changed['rows']}: fixed {changed['fixed']}, "
            f"broken {changed['broken']}"
            if changed
            else ""
        )
        lines.append(f"  {head:<10} {figures}{moves}")
    verdict = (report.get("verdict") or {}).get("summary")
    if verdict:
        lines.append(f"verdict: {verdict}")
    if report.get("drift"):
        unknown = (report["drift"].get("unit_names") or {}).get("unknown") or {}
        if unknown:
            lines.append(f"drift: unit names unknown to the new model: {', '.join(unknown)}")
    return "\n".join(lines) + "\n"
