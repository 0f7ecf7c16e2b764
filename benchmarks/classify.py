"""Classification benchmark: every `auto` member, the served model and TF-IDF + LinearSVC, one split.

    nice -n 10 .venv/bin/python benchmarks/classify.py --teddy DIR --task category --tokenized
    nice -n 10 .venv/bin/python benchmarks/classify.py --teddy DIR --task unit \\
        --units benchmarks/teddy_units.csv
    nice -n 10 .venv/bin/python benchmarks/classify.py --task demo --units data/units.csv

category: train on a stratified 80% of messages_labeled.csv (with --tokenized, plus the rows of
messages_tokenized.csv that are not the same message as a labelled row, their jieba tokens
joined back without spaces), test on the other 20%.
unit: replies.csv rows with a main_unit, stratified 75/25 split.
demo: data/demo/proposals.csv, train on 2022-2023, test on 2024 (category and main_unit).

`tian train --kind auto` is fitted on the training part with every member refitted, so that each
member alone, each blend it compared out of fold, the served model (chosen per head, with near
repeats and inactive units applied) and the plain TF-IDF + LinearSVC baseline (`--kind
baseline`) are all measured on the same test rows: macro-F1, accuracy, top-3, ECE, and the share
of suggestions left to the machine at 98% (and 95%) accuracy when ranked by confidence. For the
served model also the review flag at the bundle's target accuracy, and timings: training, and
predicting the test rows with the bundle load included.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import f1_score  # noqa: E402

from model.bundle import load_classifier, save_bundle  # noqa: E402
from model.calibration import expected_calibration_error  # noqa: E402
from model.ensemble import HeadPlan, blend_scores, member_scores  # noqa: E402
from model.records import Proposal, read_proposals  # noqa: E402
from model.selective import risk_coverage  # noqa: E402
from training.auto import AutoConfig, fit_auto  # noqa: E402
from training.data import split_by_year, stratified_split  # noqa: E402
from training.transformer import TransformerConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_category(data: Path, tokenized: bool, seed: int) -> tuple[list[Proposal], list[Proposal]]:
    labelled = read_proposals(data / "messages_labeled.csv")
    for p in labelled:
        p.main_unit, p.co_units = None, []
    train, test = stratified_split(labelled, "category", 0.2, seed)
    if tokenized:
        with open(data / "messages_tokenized.csv", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["same_message_as"]:
                    continue  # the same message is in messages_labeled.csv: it may sit in the test part
                text = "".join(row["tokens"].split())
                train.append(
                    Proposal(id=row["id"], title="", content=text, category=row["category"])
                )
    return train, test


def load_unit(data: Path, seed: int) -> tuple[list[Proposal], list[Proposal]]:
    rows = [p for p in read_proposals(data / "replies.csv") if p.main_unit]
    for p in rows:
        p.category = None  # replies.csv has no category; keep the unit head alone
        p.co_units = []
    return stratified_split(rows, "main_unit", 0.25, seed)


def load_demo() -> tuple[list[Proposal], list[Proposal]]:
    from model.aliases import load_aliases

    rows, _ = load_aliases(None).apply(read_proposals(REPO / "data" / "demo" / "proposals.csv"))
    return split_by_year(rows, [2024])


def figures(probs: np.ndarray, truth: list[str | None], labels: list[str]) -> dict[str, float]:
    """Test figures of one head; rows whose label the model never saw count as wrong."""
    index = {label: i for i, label in enumerate(labels)}
    keep = [i for i, t in enumerate(truth) if t]
    p = probs[keep]
    y = np.array([index.get(truth[i], -1) for i in keep])  # type: ignore[arg-type]
    pred = p.argmax(axis=1)
    names = [labels[j] for j in pred]
    true_names = [truth[i] for i in keep]
    top3 = np.argsort(-p, axis=1)[:, :3]
    right = pred == y
    rc = risk_coverage(p.max(axis=1), right)
    seen = y >= 0
    return {
        "rows": len(keep),
        "macro_f1": round(
            float(
                f1_score(
                    true_names,
                    names,
                    labels=sorted(set(true_names)),
                    average="macro",
                    zero_division=0,
                )
            ),
            4,
        ),
        "accuracy": round(float(right.mean()), 4),
        "top3": round(float(np.mean([y[i] in top3[i] for i in range(len(y))])), 4),
        "ece": round(expected_calibration_error(p[seen], y[seen]), 4),
        "left_at_98": rc["at_accuracy"]["0.98"],
        "left_at_95": rc["at_accuracy"]["0.95"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teddy", type=Path, help="folder of the Teddy 2020 tables")
    parser.add_argument("--task", choices=["category", "unit", "demo"], default="category")
    parser.add_argument(
        "--tokenized", action="store_true", help="add messages_tokenized.csv to training"
    )
    parser.add_argument(
        "--members", nargs="+", default=["baseline", "transformer", "neighbours", "directory"]
    )
    parser.add_argument("--units", type=Path, help="unit directory CSV (directory member)")
    parser.add_argument("--target-accuracy", type=float, default=0.95)
    parser.add_argument("--base-model", default="e5-small")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--many-rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", help="append each JSON result line to this file")
    args = parser.parse_args()

    if args.task == "demo":
        train, test = load_demo()
        heads = ["category", "main_unit"]
    else:
        if args.teddy is None:
            parser.error("--teddy DIR is needed for the Teddy tasks")
        if args.task == "category":
            train, test = load_category(args.teddy, args.tokenized, args.seed)
            heads = ["category"]
        else:
            train, test = load_unit(args.teddy, args.seed)
            heads = ["main_unit"]
    config = AutoConfig(
        members=tuple(args.members),
        target_accuracy=args.target_accuracy,
        many_rows=args.many_rows,
        refit_all=True,
        seed=args.seed,
        transformer=TransformerConfig(
            base_model=args.base_model,
            epochs=args.epochs,
            trainable_layers=args.trainable_layers,
            max_length=args.max_length,
        ),
    )
    started = time.perf_counter()
    model, report = fit_auto(train, config, units=args.units)
    train_seconds = time.perf_counter() - started
    texts = [p.text for p in test]
    results = []

    def emit(result: dict) -> None:
        result |= {"task": args.task, "tokenized": args.tokenized, "train_rows": len(train)}
        print(json.dumps(result, ensure_ascii=False), flush=True)
        if args.results:
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result, ensure_ascii=False) + "\n")
        results.append(result)

    member_seconds = {}
    scores = {}
    for name, member in model.members.items():
        t = time.perf_counter()
        scores[name] = member_scores(name, member, texts, model.labels)
        member_seconds[name] = round(time.perf_counter() - t, 1)
    for head in heads:
        truth = [getattr(p, head) for p in test]
        for r in report["comparison"].get(head, []):
            if not all(m in scores for m in r["members"]):
                continue
            plan = {head: HeadPlan(r["members"], r["weights"])}
            p = blend_scores(scores, plan, model.labels, model.suppressed)[head]
            emit(
                {"model": "+".join(r["members"]), "head": head, "chosen": r["chosen"]}
                | figures(p, truth, model.labels[head])
                | {"oof_macro_f1": r["macro_f1"], "oof_log_loss": r["log_loss"]}
            )

    # The served bundle, as `tian predict` would use it: save, load, predict (timed).
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_bundle(model, Path(tmp) / "bundle", {"version": "bench"})
        t = time.perf_counter()
        served = load_classifier(folder)
        probs = served.predict_proba(texts)
        predict_seconds = time.perf_counter() - t
    review = served.calibration.review
    confidence = review.confidence(probs) if review is not None else None
    for head in heads:
        truth = [getattr(p, head) for p in test]
        result = {"model": "served", "head": head} | figures(probs[head], truth, model.labels[head])
        result |= {
            "serving": "+".join(model.plans[head].members),
            "train_seconds": round(train_seconds, 1),
            "predict_seconds_with_load": round(predict_seconds, 1),
            "member_predict_seconds": member_seconds,
            "int8": (report.get("int8") or {}).get("int8"),
        }
        emit(result)
    if confidence is not None and review is not None:
        unflagged = confidence >= review.threshold
        right = np.ones(len(test), dtype=bool)
        for head in heads:
            idx = {label: i for i, label in enumerate(model.labels[head])}
            y = np.array([idx.get(getattr(p, head) or "", -1) for p in test])
            right &= probs[head].argmax(axis=1) == y
        emit(
            {
                "model": "served review flag",
                "head": "+".join(heads),
                "target_accuracy": review.target_accuracy,
                "flagged": round(float(1 - unflagged.mean()), 4),
                "unflagged_accuracy": round(float(right[unflagged].mean()), 4)
                if unflagged.any()
                else None,
                "joint_left_at_98": risk_coverage(confidence, right)["at_accuracy"]["0.98"],
            }
        )

    # The anchor: TF-IDF + LinearSVC with its own cross-validated calibration (`--kind baseline`).
    from training.baseline import fit_baseline

    t = time.perf_counter()
    anchor = fit_baseline(train)
    anchor_seconds = time.perf_counter() - t
    anchor_probs = anchor.predict_proba(texts)
    for head in heads:
        truth = [getattr(p, head) for p in test]
        emit(
            {"model": "tfidf+linearsvc (--kind baseline)", "head": head}
            | figures(anchor_probs[head], truth, anchor.labels[head])
            | {"train_seconds": round(anchor_seconds, 1)}
        )

    print(
        f"\nauto: {report['scheme']}, trained in {train_seconds:.0f} s "
        f"(out-of-fold member seconds {report['member_seconds']})"
    )
    print(
        f"{'head':<10}{'model':<42}{'macro-F1':>9}{'acc':>7}{'top-3':>7}{'ECE':>7}"
        f"{'@98%':>7}{'@95%':>7}"
    )
    for r in results:
        if "macro_f1" not in r:
            continue
        name = r["model"] + (" *" if r.get("chosen") else "")
        print(
            f"{r['head']:<10}{name:<42}{r['macro_f1']:>9.3f}{r['accuracy']:>7.3f}{r['top3']:>7.3f}"
            f"{r['ece']:>7.3f}{r['left_at_98']:>7.1%}{r['left_at_95']:>7.1%}"
        )
    for r in results:
        if r["model"] == "served review flag":
            print(
                f"review flag at target {r['target_accuracy']}: {r['flagged']:.1%} flagged, "
                f"unflagged {r['unflagged_accuracy']} right; joint share left at 98%: "
                f"{r['joint_left_at_98']:.1%}"
            )
    print(f"served: predicted {len(test)} rows in {predict_seconds:.1f} s, bundle load included")


if __name__ == "__main__":
    main()
