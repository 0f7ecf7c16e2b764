"""`tian train`: fit a classifier on proposal tables and save it as a bundle."""

from __future__ import annotations

import argparse
import logging
import time

log = logging.getLogger("tian.train")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a classifier and save it as a model bundle")
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help="CSV, XLSX or JSONL tables"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument("--kind", choices=["transformer", "baseline"], default="transformer")
    p.add_argument("--years", nargs="+", type=int, metavar="YEAR", help="train on these years only")
    p.add_argument(
        "--base-model",
        default=None,
        help="transformer backbone: 'e5-small' (built in) or a model folder",
    )
    p.add_argument("--epochs", type=float, default=None, help="transformer epochs")
    p.add_argument("--max-length", type=int, default=None, help="transformer tokens per proposal")
    p.add_argument(
        "--coverage", type=float, default=0.95, help="target coverage of prediction sets"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--aliases",
        default=None,
        metavar="FILE",
        help="unit rename/merge map applied to the labels (default: data/unit_aliases.csv; "
        "'none' to train on the names as written)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.bundle import save_bundle
    from tian.cli import UserError
    from tian.commands.common import read_inputs
    from training.data import summarise

    # Check settings before reading data or training, so a typo costs seconds, not an hour.
    if not 0 < args.coverage < 1:
        raise UserError(f"--coverage must be between 0 and 1, not {args.coverage}")
    if args.epochs is not None and args.epochs <= 0:
        raise UserError(f"--epochs must be positive, not {args.epochs}")
    if args.max_length is not None and not 16 <= args.max_length <= 512:
        raise UserError(f"--max-length must be between 16 and 512 tokens, not {args.max_length}")
    proposals = read_inputs(args.data, args.years)
    proposals, aliases_used = _apply_aliases(proposals, getattr(args, "aliases", None))
    started = time.perf_counter()
    if args.kind == "baseline":
        from training.baseline import fit_baseline
        from training.config import BaselineConfig

        config = BaselineConfig(coverage=args.coverage, seed=args.seed)
        classifier = fit_baseline(proposals, config)
        settings = vars(config) | {}
        base_model = None
    else:
        from training.transformer import fit_transformer, transformer_config_from_args

        tconfig = transformer_config_from_args(args)
        classifier = fit_transformer(proposals, tconfig)
        settings = vars(tconfig) | {}
        base_model = tconfig.base_model
    seconds = time.perf_counter() - started
    manifest = {
        "version": time.strftime("%Y%m%d-%H%M%S"),
        "base_model": base_model,
        "settings": settings,
        "training_data": summarise(proposals) | {"files": [str(f) for f in args.data]},
        "training_seconds": round(seconds, 1),
        "calibration": classifier.calibration.to_dict(),
        "aliases": aliases_used,
    }
    save_bundle(classifier, args.out, manifest)
    log.info(
        "trained %s on %d proposals in %.1f s; bundle at %s",
        args.kind,
        len(proposals),
        seconds,
        args.out,
    )
    return 0


def _apply_aliases(proposals: list, option: str | None) -> tuple[list, dict | None]:
    """Map old unit names to current ones so that old years teach the current names."""
    if option is not None and option.lower() == "none":
        return proposals, None
    from model.aliases import AliasError, load_aliases
    from tian.cli import UserError

    try:
        aliases = load_aliases(option)
    except AliasError as exc:
        raise UserError(str(exc)) from exc
    mapped, report = aliases.apply(proposals)
    if report.renamed:
        log.info("unit aliases renamed %s", report.renamed)
    for name, ids in report.split_rows.items():
        log.warning("%d rows name %s, a unit that was split: check them by hand", len(ids), name)
    summary = report.to_dict()
    return mapped, aliases.to_manifest() | {
        "renamed": summary["renamed"],
        "split_rows": {name: s["rows"] for name, s in summary["split"].items()},
    }
