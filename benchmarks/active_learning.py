"""Active-learning benchmark on the Teddy 2020 messages: how many labels does
uncertainty-first review save against random review, to reach the same macro-F1?

    .venv/bin/python benchmarks/active_learning.py [--seeds 0 1 2 3 4] [--batch 100] \
        [--out runs/active_learning]

messages_labeled.csv (7 categories) is split once, stratified: 25% fixed held-out test part,
75% the "unreviewed pool". Each run starts from 100 random labels and reveals a batch of 100
per round, chosen at random, by uncertainty (margin of the model's probabilities) or by
uncertainty plus disagreement with a second model (complement naive Bayes), retraining the
baseline's class-balanced linear SVM on TF-IDF word and character n-grams after each batch.
The vectoriser is fitted once on the pool's texts (unlabelled text is available up front).
Prints the mean learning curves, the labels each strategy needs to reach random's final
macro-F1 and fixed targets, and writes curves.json and learning_curve.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.features import make_vectorizer  # noqa: E402
from model.records import read_proposals  # noqa: E402
from training.active import (  # noqa: E402
    SimulationConfig,
    labels_to_reach,
    nb_learner,
    simulate,
    svm_learner,
)
from training.data import stratified_split  # noqa: E402

STRATEGIES = ("random", "uncertainty", "disagreement")


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    steps = min(len(c) for c in curves)
    return [(curves[0][i][0], float(np.mean([c[i][1] for c in curves]))) for i in range(steps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teddy", type=Path, required=True, help="folder of the Teddy 2020 files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--initial", type=int, default=100)
    parser.add_argument("--budget", type=int, default=None, help="stop at this many labels")
    parser.add_argument("--targets", nargs="+", type=float, default=[0.80, 0.85])
    parser.add_argument("--out", default="runs/active_learning")
    args = parser.parse_args()

    started = time.perf_counter()
    rows = [p for p in read_proposals(args.teddy / "messages_labeled.csv") if p.category]
    pool, test = stratified_split(rows, "category", 0.25, seed=0)
    classes = sorted({p.category for p in rows})
    y_pool = np.array([classes.index(p.category) for p in pool])
    y_test = np.array([classes.index(p.category) for p in test])
    vectorizer = make_vectorizer(min_df=2)
    x_pool = vectorizer.fit_transform([p.text for p in pool]).tocsr()
    x_test = vectorizer.transform([p.text for p in test]).tocsr()
    print(
        f"pool {len(pool)}, test {len(test)}, {len(classes)} classes, "
        f"{x_pool.shape[1]} features ({time.perf_counter() - started:.0f} s)",
        flush=True,
    )

    curves: dict[str, list[list[tuple[int, float]]]] = {s: [] for s in STRATEGIES}
    for seed in args.seeds:
        config = SimulationConfig(
            initial=args.initial, batch=args.batch, budget=args.budget, seed=seed
        )
        for strategy in STRATEGIES:
            t = time.perf_counter()
            curve = simulate(
                x_pool, y_pool, x_test, y_test, strategy, config, svm_learner(), nb_learner()
            )
            curves[strategy].append(curve)
            print(
                f"seed {seed} {strategy:<12} final macro-F1 {curve[-1][1]:.4f} "
                f"at {curve[-1][0]} labels ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )

    means = {s: mean_curve(c) for s, c in curves.items()}
    random_final = means["random"][-1][1]
    targets = {"random_final": random_final, **{f"{t:.2f}": t for t in args.targets}}
    reach = {
        name: {s: labels_to_reach(means[s], target) for s in STRATEGIES}
        for name, target in targets.items()
    }
    per_seed = {
        s: [labels_to_reach(c, curves["random"][i][-1][1]) for i, c in enumerate(curves[s])]
        for s in STRATEGIES
    }
    result = {
        "data": "teddy2020/messages_labeled.csv category",
        "pool": len(pool),
        "test": len(test),
        "seeds": args.seeds,
        "batch": args.batch,
        "initial": args.initial,
        "mean_curves": {s: [[n, round(f, 4)] for n, f in c] for s, c in means.items()},
        "targets": {k: round(v, 4) for k, v in targets.items()},
        "labels_to_reach_mean_curve": reach,
        "labels_to_reach_random_final_per_seed": per_seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(means, curves, random_final, out / "learning_curve.png")

    print(json.dumps({k: v for k, v in result.items() if k != "mean_curves"}, indent=2))
    print(f"\n{'labels':>7} " + " ".join(f"{s:>13}" for s in STRATEGIES))
    for i, (n, _) in enumerate(means["random"]):
        print(f"{n:>7} " + " ".join(f"{means[s][i][1]:>13.4f}" for s in STRATEGIES))
    for name, r in reach.items():
        base = r["random"]
        line = ", ".join(
            f"{s} {r[s]}" + (f" (saves {base - r[s]})" if base and r[s] else "") for s in STRATEGIES
        )
        print(f"labels to reach macro-F1 {targets[name]:.4f} ({name}): {line}")


def plot(means, curves, random_final, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, s in enumerate(STRATEGIES):
        for c in curves[s]:
            ax.plot([n for n, _ in c], [f for _, f in c], color=f"C{i}", alpha=0.15, lw=0.8)
        ax.plot([n for n, _ in means[s]], [f for _, f in means[s]], color=f"C{i}", lw=2, label=s)
    ax.axhline(random_final, color="grey", ls="--", lw=0.8, label="random, all labels")
    ax.set_xlabel("labels used")
    ax.set_ylabel("test macro-F1 (category)")
    ax.set_title("Teddy 2020: pool-based active learning (mean of seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
