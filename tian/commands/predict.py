"""`tian predict`: suggestions for every proposal in a table, as JSON lines in input order."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("tian.predict")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="suggest category and handling units")
    p.add_argument("--model", required=True, metavar="DIR", help="model bundle folder")
    p.add_argument("--data", required=True, metavar="FILE")
    p.add_argument("--out", required=True, metavar="FILE.jsonl")
    p.add_argument("--top-k", type=int, default=3, help="labels listed per head")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from model.bundle import load_classifier
    from model.suggest import suggest
    from tian.commands.common import read_inputs, require_bundle, write_jsonl

    classifier = load_classifier(require_bundle(args.model))
    proposals = read_inputs([args.data])
    rows = suggest(
        classifier,
        [p.id for p in proposals],
        [p.text for p in proposals],
        top_k=args.top_k,
        progress=True,
    )
    write_jsonl(args.out, rows)
    flagged = sum(1 for r in rows if r["review"]["flag"])
    target = rows[0]["review"]["target_accuracy"] if rows else None
    log.info(
        "wrote %d suggestions to %s (%d flagged for a reviewer%s)",
        len(rows),
        args.out,
        flagged,
        f", the rest expected {target:.0%} right" if target else "",
    )
    return 0
