"""PNG plots of a model comparison: per-class F1 old vs new, calibration, labels by year."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.records import Proposal
from training.drift import label_counts
from training.plots import HEAD_TITLES, plt, use_cjk_font


def plot_per_class_f1(entry: dict[str, Any], title: str, out: Path) -> Path:
    """Horizontal bars of each class's F1 under the old and the new model, by support."""
    use_cjk_font()
    rows = sorted(entry["per_class"], key=lambda r: (r["support"], r["label"]))
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(rows) + 1.2)))
    ax.barh(y - 0.2, [r["f1_old"] for r in rows], height=0.4, label="旧模型", color="C7")
    ax.barh(y + 0.2, [r["f1_new"] for r in rows], height=0.4, label="新模型", color="C0")
    ax.set_yticks(y, [f"{r['label']} ({r['support']})" for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    d = entry.get("delta", {}).get("macro_f1")
    ax.set_title(
        f"{title}：各类 F1（括号内为样本数）" + (f"  宏F1 变化 {d:+.3f}" if d is not None else "")
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_calibration(entry: dict[str, Any], title: str, out: Path) -> Path:
    """Reliability curves of both models on one diagram (confidence against accuracy)."""
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="完美校准")
    for name, color, text in (("old", "C7", "旧模型"), ("new", "C0", "新模型")):
        cal = entry["calibration"][name]
        rows = cal["reliability"]
        ece = cal["ece"]
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            "o-",
            color=color,
            label=f"{text} ECE {ece:.3f}" if ece is not None else text,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("置信度")
    ax.set_ylabel("准确率")
    ax.set_title(f"{title}：校准")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_labels_by_year(proposals: Sequence[Proposal], head: str, out: Path, top: int = 25) -> Path:
    """Share of each label per year (the `top` most frequent labels), one bar group a label."""
    use_cjk_font()
    years = sorted({p.year for p in proposals if p.year is not None})
    counts = {y: label_counts([p for p in proposals if p.year == y], head) for y in years}
    total: Counter[str] = sum(counts.values(), Counter())
    labels = [k for k, _ in total.most_common(top)]
    x = np.arange(len(labels))
    width = 0.8 / max(len(years), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(labels) + 2), 4.5))
    for i, y in enumerate(years):
        n = max(sum(counts[y].values()), 1)
        ax.bar(
            x + i * width - 0.4 + width / 2, [counts[y][k] / n for k in labels], width, label=str(y)
        )
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("占比")
    ax.set_title(f"{HEAD_TITLES.get(head, head)}：各年分布")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_comparison_plots(
    report: dict[str, Any], out_dir: Path, proposals: Sequence[Proposal] = ()
) -> list[Path]:
    """All comparison plots into `out_dir`; label-by-year plots when `proposals` are given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for head, entry in report["heads"].items():
        title = HEAD_TITLES.get(head, head)
        if entry.get("per_class"):
            written.append(plot_per_class_f1(entry, title, out_dir / f"per_class_f1_{head}.png"))
        if entry.get("calibration"):
            written.append(plot_calibration(entry, title, out_dir / f"calibration_{head}.png"))
    if proposals:
        for head in ("category", "main_unit"):
            written.append(
                plot_labels_by_year(proposals, head, out_dir / f"labels_by_year_{head}.png")
            )
    return written
