"""PNG plots of an evaluation report: confusion matrices and reliability diagrams.

Labels are Chinese, so a CJK font is registered first: the Noto Sans CJK file shipped by the
`cvttf-notosanscjk-regular` wheel (a [train] dependency), else any CJK font the system has.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

log = logging.getLogger(__name__)

_SYSTEM_CJK_NAMES = ("Noto Sans CJK SC", "Noto Sans CJK TC", "WenQuanYi Micro Hei", "SimHei")


@cache
def use_cjk_font() -> str | None:
    """Register a CJK font with matplotlib and make it the default; returns its name."""
    try:
        import cvttf_NotoSansCJK_Regular as font_pkg  # type: ignore[import-not-found]

        path = next(Path(font_pkg.__file__).parent.glob("*.otf"))
        font_manager.fontManager.addfont(str(path))
        name = font_manager.FontProperties(fname=str(path)).get_name()
    except (ImportError, StopIteration):
        available = {f.name for f in font_manager.fontManager.ttflist}
        name = next((n for n in _SYSTEM_CJK_NAMES if n in available), "")
    if not name:
        log.warning("no CJK font found: Chinese labels in plots will show as boxes")
        return None
    plt.rcParams["font.sans-serif"] = [name, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return name


def plot_confusion(head_report: dict[str, Any], title: str, out: Path) -> Path:
    """Row-normalised confusion matrix (rows: true label, columns: predicted)."""
    import numpy as np

    use_cjk_font()
    labels = head_report["confusion"]["labels"]
    matrix = np.array(head_report["confusion"]["matrix"], dtype=float)
    norm = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    size = max(5.0, 0.38 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    color = "white" if norm[i, j] > 0.6 else "black"
                    ax.text(
                        j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color
                    )
    ax.set_xlabel("预测")
    ax.set_ylabel("实际")
    ax.set_title(
        f"{title}  准确率 {head_report['accuracy']:.3f}  宏F1 {head_report['macro_f1']:.3f}"
    )
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_reliability(head_report: dict[str, Any], title: str, out: Path) -> Path:
    """Confidence against accuracy per bin, bar width by bin, with the count on each bar."""
    use_cjk_font()
    rows = head_report["reliability"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="完美校准")
    ax.bar(
        [r["low"] for r in rows],
        [r["accuracy"] for r in rows],
        width=[r["high"] - r["low"] for r in rows],
        align="edge",
        alpha=0.6,
        edgecolor="black",
        label="实际准确率",
    )
    ax.plot(
        [r["confidence"] for r in rows],
        [r["accuracy"] for r in rows],
        "o-",
        color="C3",
        label="各区间：平均置信度与准确率",
    )
    for r in rows:
        ax.text(
            (r["low"] + r["high"]) / 2,
            min(r["accuracy"] + 0.02, 0.97),
            str(r["count"]),
            ha="center",
            fontsize=7,
        )
    ece = head_report.get("ece")
    ax.set_title(f"{title}  ECE {ece:.3f}" if ece is not None else title)
    ax.set_xlabel("置信度")
    ax.set_ylabel("准确率")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


HEAD_TITLES = {"category": "类别", "main_unit": "主办单位"}


def plot_risk_coverage(review: dict[str, Any], out: Path) -> Path:
    """Accuracy of the suggestions left to the machine against their share, per head and
    joint (ranked by confidence), with the bundle's target accuracy as a line."""
    use_cjk_font()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curves = [(HEAD_TITLES.get(h, h), r) for h, r in review.get("heads", {}).items()]
    if review.get("joint"):
        curves.append(("全部建议（联合）", review["joint"]))
    for name, r in curves:
        points = r.get("curve") or []
        if points:
            ax.plot(
                [p["coverage"] for p in points],
                [p["accuracy"] for p in points],
                "o-",
                ms=3,
                label=name,
            )
    target = review.get("target_accuracy")
    if target:
        ax.axhline(target, color="grey", ls="--", label=f"目标准确率 {target:.0%}")
    ax.set_xlabel("交给机器的比例（按置信度从高到低）")
    ax.set_ylabel("这部分建议的准确率")
    ax.set_xlim(0, 1.02)
    ax.set_title("风险-覆盖曲线")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Confusion matrix and reliability diagram for each single-label head in the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for head, head_report in report["heads"].items():
        if "confusion" not in head_report:
            continue
        title = HEAD_TITLES.get(head, head)
        written.append(plot_confusion(head_report, title, out_dir / f"confusion_{head}.png"))
        written.append(plot_reliability(head_report, title, out_dir / f"reliability_{head}.png"))
    if report.get("review"):
        written.append(plot_risk_coverage(report["review"], out_dir / "risk_coverage.png"))
    return written
