"""`tian evaluate`: a JSON report of a bundle on labelled proposals, plus PNG plots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="measure a model bundle on labelled data")
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--data", required=True, nargs="+", metavar="FILE")
    p.add_argument(
        "--years", nargs="+", type=int, metavar="YEAR", help="evaluate on these years only"
    )
    p.add_argument(
        "--plots",
        metavar="DIR",
        help="write confusion and reliability PNGs here (default: next to --report, else none)",
    )
    p.add_argument("--report", metavar="FILE.json", help="also write the report to this file")
    p.add_argument(
        "--format", choices=["json", "table"], default="json", help="what to print (default json)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.bundle import load_classifier, write_json
    from tian.commands.common import read_inputs, require_bundle
    from training.evaluate import evaluate

    classifier = load_classifier(require_bundle(args.model))
    proposals = read_inputs(args.data, args.years)
    report = evaluate(classifier, proposals, progress=True)
    report["model"] = str(args.model)
    plots_dir = (
        Path(args.plots) if args.plots else (Path(args.report).parent if args.report else None)
    )
    if plots_dir is not None:
        from training.plots import write_plots

        report["plots"] = [str(p) for p in write_plots(report, plots_dir)]
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.report), report)
    if args.format == "table":
        sys.stdout.write(summary_table(report))
    else:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    return 0


def summary_table(report: dict) -> str:
    """A few lines a person reads at a glance; the JSON report has everything else."""
    lines = [f"model {report['model']} ({report['model_kind']}), {report['rows']} proposals"]
    for head, r in report["heads"].items():
        if "accuracy" in r:
            c = r["conformal"]
            lines.append(
                f"  {head:<10} acc {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  "
                f"top-3 {r['top_k_accuracy']['3']:.3f}  ECE {r['ece']:.3f}  "
                f"set coverage {c['coverage']:.3f} (target {c['target_coverage']:.2f}), "
                f"mean set {c['mean_set_size']:.1f}, abstains {c['abstain_rate']:.0%}"
                + (
                    f", {r['unseen_label_rows']} rows with labels unseen in training"
                    if r["unseen_label_rows"]
                    else ""
                )
            )
        else:
            suggested = (
                f"; {r['suggested_co_units']} suggested at cut {r['threshold']:.2f}, "
                f"{r['true_co_units']} true"
                if "suggested_co_units" in r
                else ""
            )
            lines.append(
                f"  {head:<10} micro-F1 {r['micro_f1']:.3f}  macro-F1 {r['macro_f1']:.3f}  "
                f"precision {r.get('precision', float('nan')):.3f}  "
                f"recall {r.get('recall', float('nan')):.3f}  "
                f"ECE {r['ece']:.3f}  ({r['rows_with_co_units']} of {r['rows']} rows have "
                f"co-units{suggested})"
            )
    review = report.get("review") or {}
    for name, r in list(review.get("heads", {}).items()) + [("joint", review.get("joint"))]:
        if r and r.get("at_accuracy"):
            at = r["at_accuracy"]
            lines.append(
                f"  {name:<10} left to the machine at accuracy 0.95: {at.get('0.95', 0):.0%}, "
                f"0.98: {at.get('0.98', 0):.0%}"
            )
    if review.get("flagged") is not None:
        acc = review.get("unflagged_accuracy")
        lines.append(
            f"  review flag (target {review['target_accuracy']:.2f}, cut {review['threshold']:.3f}, "
            f"rule {review.get('rule', 'observed')}): {review['flagged']:.0%} "
            f"flagged, unflagged {'n/a' if acc is None else f'{acc:.3f}'} right"
        )
    if report.get("plots"):
        lines.append("  plots: " + ", ".join(report["plots"]))
    return "\n".join(lines) + "\n"
