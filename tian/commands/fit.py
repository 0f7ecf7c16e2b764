"""`tian fit ...`: refit the values the model ships with (duplicate scorer, topic weights).

Each subcommand reads its flags here and calls plain, typed functions in `training/`: no
module below the command line parses arguments (tests/test_layering.py checks it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tian.errors import UserError

REPO = Path(__file__).resolve().parents[2]
# The pairs behind the shipped model/dedup_calibration.json: ids of Teddy 2020 messages,
# labelled by the rule in docs/duplicate_labelling.md (the texts are never copied here).
TEDDY_HARD_PAIRS = REPO / "benchmarks" / "dedup_hard_pairs.csv"


def register(subparsers: Any) -> None:
    """Add the `fit` group and its subcommands."""
    p = subparsers.add_parser(
        "fit",
        help="refit a shipped calibration (duplicate scorer, topic weights)",
        description="Refit the values the model ships with on labelled data.",
    )
    fits = p.add_subparsers(dest="fit_command", required=True, metavar="WHAT")
    _register_dedup_scorer(fits)
    _register_topic_fits(fits)


# ----------------------------------------------------------------------------- dedup-scorer
def _register_dedup_scorer(fits: Any) -> None:
    p = fits.add_parser(
        "dedup-scorer",
        help="fit the duplicate scorer on labelled pairs (model/dedup_calibration.json)",
        description=(
            "Fit the duplicate scorer on pairs an office labelled (CSV id_a,id_b,label with "
            "label duplicate / related / unrelated) and the proposals or messages file the ids "
            "refer to. `--teddy DIR` reproduces the shipped model/dedup_calibration.json from "
            "the Teddy 2020 data (with --demo data/demo)."
        ),
    )
    p.add_argument("--pairs", type=Path, help="labelled pairs CSV: id_a,id_b,label")
    p.add_argument(
        "--messages",
        type=Path,
        help="the file the pair ids refer to: proposals (CSV, XLSX, JSONL) or a CSV with "
        "id,title,content",
    )
    p.add_argument(
        "--teddy",
        type=Path,
        metavar="DIR",
        help="Teddy 2020 folder: --messages DIR/hot_messages.csv and, unless --pairs is "
        "given, the shipped benchmarks/dedup_hard_pairs.csv",
    )
    p.add_argument(
        "--demo", type=Path, help="also fit on the demo's planted groups (data/demo), down-weighted"
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(".cache/dedup"),
        help="folder for cached vectors (default .cache/dedup)",
    )
    p.add_argument("--base-model", help="encoder: 'e5-small' (default) or a HF model folder")
    p.add_argument(
        "--precision", type=float, default=None, help="precision the threshold keeps (default 0.9)"
    )
    p.add_argument(
        "--c", type=float, default=None, help="inverse L2 strength of the regression (default 10)"
    )
    p.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_dedup_scorer)


def run_dedup_scorer(args: argparse.Namespace) -> int:
    """Entry point for `tian fit dedup-scorer`."""
    from training import dedup_scorer as ds

    messages, pairs_path = args.messages, args.pairs
    if args.teddy is not None:
        if messages is not None:
            raise UserError("give --teddy or --messages, not both")
        messages = args.teddy / "hot_messages.csv"
        pairs_path = pairs_path or TEDDY_HARD_PAIRS
    if messages is None or pairs_path is None:
        raise UserError("give --pairs and --messages (or --teddy DIR)")
    for path in (messages, pairs_path):
        if not path.is_file():
            raise UserError(f"file not found: {path}")
    precision = ds.DEFAULT_PRECISION if args.precision is None else args.precision
    if not 0.0 < precision <= 1.0:
        raise UserError(f"--precision must be in (0, 1], not {precision}")
    c = ds.DEFAULT_C if args.c is None else args.c
    if c <= 0:
        raise UserError(f"--c must be positive, not {c}")

    from model.encoder import load_encoder

    try:
        encoder = load_encoder(args.base_model)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    try:
        pairs = ds.read_labelled_pairs(pairs_path)
        # Teddy's messages are read verbatim, as the shipped calibration was fitted; an
        # office's file is read as `tian dedup --data` reads it.
        texts = ds.read_pair_texts(messages, raw_messages=args.teddy is not None)
    except (ValueError, KeyError) as exc:
        raise UserError(str(exc)) from exc
    try:
        cal = ds.fit_dedup_scorer(
            pairs,
            texts,
            encoder,
            fitted_on=f"{len(pairs)} labelled pairs of {Path(messages).name}",
            cache=args.cache,
            demo=args.demo,
            c=c,
            precision=precision,
            progress=not args.no_progress,
        )
    except ValueError as exc:  # too few pairs of a class, ids not in the file
        raise UserError(str(exc)) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    recall = cal.info["out_of_fold_recall_at_threshold"]
    print(  # noqa: T201
        f"threshold {cal.threshold:.4f} (out-of-fold recall {recall:.3f}); wrote {args.out}"
    )
    return 0


# ---------------------------------------------------------------- topic-weights, topic-cutoff
TOPIC_CALIBRATION = REPO / "model" / "topic_calibration.json"


def _register_topic_fits(fits: Any) -> None:
    for name, help_text, func in (
        (
            "topic-weights",
            "fit the topic-matching weights and then their 'no topic' cut-off on an answer key",
            run_topic_weights,
        ),
        (
            "topic-cutoff",
            "refit only the 'no topic' cut-off for the current topic weights",
            run_topic_cutoff,
        ),
    ):
        p = fits.add_parser(
            name,
            help=help_text,
            description=(
                f"{help_text[0].upper()}{help_text[1:]}. The folder holds proposals.csv, "
                "topics_<year>.csv (topic_id,topic) and topic_answers.csv (topic_id,id), as "
                "data/demo does; the result goes to model/topic_calibration.json with "
                "in-sample and out-of-fold figures."
            ),
        )
        p.add_argument("--demo", type=Path, required=True, help="folder with the topic files")
        p.add_argument("--year", type=int, default=2024, help="the topics' year (default 2024)")
        p.add_argument("--base-model", help="encoder: 'e5-small' (default) or a HF model folder")
        p.add_argument("--cache", type=Path, help="folder for cached proposal vectors")
        p.add_argument(
            "--out", type=Path, default=TOPIC_CALIBRATION, help="calibration JSON to write"
        )
        p.set_defaults(func=func)


def _topic_data(args: argparse.Namespace) -> Any:
    for name in ("proposals.csv", f"topics_{args.year}.csv", "topic_answers.csv"):
        if not (args.demo / name).is_file():
            raise UserError(f"file not found: {args.demo / name}")
    from model.encoder import load_encoder
    from training.topic_weights import load_topic_data

    try:
        encoder = load_encoder(args.base_model)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    data = load_topic_data(args.demo, encoder, args.cache, year=args.year)
    if not data.truth.any():
        raise UserError(f"{args.demo / 'topic_answers.csv'}: no answer for year {args.year}")
    return data


def _write_topic_calibration(args: argparse.Namespace, weights: Any, data: Any) -> None:
    from training.topic_cutoff import calibration_json, write_calibration

    content = calibration_json(weights, data)
    write_calibration(args.out, content)
    cut = content["info"]["cutoff"]
    for label, fig in (("in-sample", cut["at_fitted"]), ("out-of-fold", cut["out_of_fold"][0])):
        t, p = fig["topics_without_proposal"], fig["proposals_without_topic"]
        print(  # noqa: T201
            f"{label}: topics without a proposal P {t['precision']:.2f} R {t['recall']:.2f}; "
            f"proposals without a topic P {p['precision']:.2f} R {p['recall']:.2f}"
        )
    margin = content.get("no_topic_margin")
    rule = f", no-topic margin {margin:.4f}" if margin is not None else ""
    print(f"cut-off {content['threshold']:.4f}{rule}; wrote {args.out}")  # noqa: T201


def run_topic_weights(args: argparse.Namespace) -> int:
    """Entry point for `tian fit topic-weights`."""
    from training.topic_weights import fit_topic_weights

    data = _topic_data(args)
    weights, figures = fit_topic_weights(data)
    print(  # noqa: T201
        f"weights: in-sample recall@1 {figures['recall@1']:.3f}, "
        f"recall@5 {figures['recall@5']:.3f}, ECE {figures['ece']:.3f}"
    )
    _write_topic_calibration(args, weights, data)
    return 0


def run_topic_cutoff(args: argparse.Namespace) -> int:
    """Entry point for `tian fit topic-cutoff`."""
    from model.topics import weights_from_json

    path = args.out if args.out.is_file() else TOPIC_CALIBRATION
    _write_topic_calibration(args, weights_from_json(path), _topic_data(args))
    return 0
