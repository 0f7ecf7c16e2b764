"""`tian train`: fit a classifier on proposal tables and save it as a bundle."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tian.errors import UserError

if TYPE_CHECKING:
    from training.transformer import TransformerConfig

log = logging.getLogger("tian.train")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a classifier and save it as a model bundle")
    p.add_argument(
        "--data", nargs="+", required=True, metavar="FILE", help="CSV, XLSX or JSONL tables"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="bundle folder to write")
    p.add_argument(
        "--kind",
        choices=["auto", "transformer", "baseline"],
        default="auto",
        help="auto (default): fit the baseline, the transformer, the neighbour vote and, with "
        "--units, the unit directory; keep per head what wins out of fold",
    )
    p.add_argument(
        "--target-accuracy",
        type=float,
        default=0.95,
        help="accuracy that unflagged suggestions should reach (auto; stored in the bundle)",
    )
    p.add_argument(
        "--members",
        nargs="+",
        choices=["baseline", "transformer", "neighbours", "directory"],
        default=None,
        help="auto: members to try (default: all)",
    )
    p.add_argument(
        "--units",
        default=None,
        metavar="FILE",
        help="unit directory CSV (name, aliases, level, duties, active) for auto: a prior for "
        "units with few past proposals, and the list of current units",
    )
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
    from tian.commands.common import read_inputs
    from training.data import summarise

    # Check settings before reading data or training, so a typo costs seconds, not an hour.
    if not 0 < args.coverage < 1:
        raise UserError(f"--coverage must be between 0 and 1, not {args.coverage}")
    if args.epochs is not None and args.epochs <= 0:
        raise UserError(f"--epochs must be positive, not {args.epochs}")
    if args.max_length is not None and not 16 <= args.max_length <= 512:
        raise UserError(f"--max-length must be between 16 and 512 tokens, not {args.max_length}")
    target = getattr(args, "target_accuracy", 0.95)
    if not 0 < target < 1:
        raise UserError(f"--target-accuracy must be between 0 and 1, not {target}")
    units = getattr(args, "units", None)
    if units is not None:
        from pathlib import Path

        from model.units import UnitDirectory, UnitDirectoryError

        try:
            UnitDirectory.load(Path(units))
        except UnitDirectoryError as exc:
            raise UserError(str(exc)) from exc
    proposals = read_inputs(args.data, args.years)
    proposals, aliases_used = _apply_aliases(proposals, getattr(args, "aliases", None))
    started = time.perf_counter()
    extra: dict = {}
    if args.kind == "auto":
        from pathlib import Path

        from training.auto import AutoConfig, comparison_table, fit_auto

        tconfig = transformer_config_from_args(args)
        if args.epochs is None:
            # Fine-tuned only where rows are many (one held-out fold): 1 layer for 2 epochs keeps
            # 8,000 rows within the time goal; fewer rows train the heads alone anyway.
            tconfig = replace(tconfig, trainable_layers=1, epochs=2.0)
        aconfig = AutoConfig(
            target_accuracy=target, coverage=args.coverage, seed=args.seed, transformer=tconfig
        )
        if getattr(args, "members", None):
            aconfig = replace(aconfig, members=tuple(args.members))
        classifier, report = fit_auto(
            proposals, aconfig, units=Path(units) if units is not None else None
        )
        settings = _plain(aconfig)
        base_model = tconfig.base_model if "transformer" in classifier.members else None
        extra = {"metrics": report.pop("metrics"), "auto": report}
        sys.stdout.write(comparison_table(report))
    elif args.kind == "baseline":
        from training.baseline import fit_baseline
        from training.config import BaselineConfig

        config = BaselineConfig(coverage=args.coverage, seed=args.seed)
        classifier = fit_baseline(proposals, config)
        settings = vars(config) | {}
        base_model = None
    else:
        from training.transformer import fit_transformer

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
        **extra,
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


def _plain(value: Any) -> Any:
    """A (nested) settings dataclass as JSON-ready data."""
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _apply_aliases(proposals: list, option: str | None) -> tuple[list, dict | None]:
    """Map old unit names to current ones so that old years teach the current names."""
    if option is not None and option.lower() == "none":
        return proposals, None
    from model.aliases import AliasError, load_aliases

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


def transformer_config_from_args(args: argparse.Namespace) -> TransformerConfig:
    """The transformer's settings: the defaults, overridden by the flags the user gave."""
    from training.transformer import TransformerConfig

    overrides = {
        "base_model": args.base_model,
        "epochs": args.epochs,
        "max_length": args.max_length,
        "coverage": args.coverage,
        "seed": args.seed,
    }
    return TransformerConfig(**{k: v for k, v in overrides.items() if v is not None})
