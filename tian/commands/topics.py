"""`tian topics`: rank the year's reference topics for each proposal, and report coverage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tian.commands.dedup import add_encoder_args
from tian.errors import UserError


def register(subparsers: Any) -> None:
    """Add the `topics` subcommand."""
    p = subparsers.add_parser(
        "topics",
        help="match proposals to reference topics (提案参考题目) and report coverage",
        description=(
            "Rank the reference topics for each proposal with calibrated scores, flag "
            "proposals that no topic fits, and count how many proposals answer each topic."
        ),
    )
    p.add_argument(
        "--topics",
        required=True,
        type=Path,
        help="topics: CSV/XLSX with topic_id,topic or TXT one topic a line",
    )
    p.add_argument("--data", required=True, type=Path, help="proposals (CSV, XLSX or JSONL)")
    p.add_argument("--out", required=True, type=Path, help="output JSONL, one line per proposal")
    p.add_argument("--years", nargs="+", type=int, metavar="YEAR", help="match these years only")
    p.add_argument("--top-k", type=int, default=5, help="topics listed per proposal (default 5)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="score below which a topic does not count as answered (default: the cut-off "
        "fitted on labelled topics, in model/topic_calibration.json)",
    )
    p.add_argument("--coverage", type=Path, help="also write the coverage report as JSON")
    add_encoder_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for `tian topics`."""
    from dataclasses import replace

    from model.topics import DEFAULT_WEIGHTS, coverage, coverage_table, match_topics, read_topics
    from tian.commands.dedup import encode_texts, load_cli_encoder

    if args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, not {args.top_k}")
    weights = DEFAULT_WEIGHTS
    if args.threshold is not None:
        if not 0.0 < args.threshold < 1.0:
            raise UserError(f"--threshold must be between 0 and 1, not {args.threshold}")
        weights = replace(weights, threshold=args.threshold)
    if not args.topics.is_file():
        raise UserError(f"file not found: {args.topics}")
    if not args.data.is_file():
        raise UserError(f"file not found: {args.data}")

    from model.atomic import atomic_write_json
    from model.records import read_proposals
    from tian.commands.common import write_jsonl

    topics = read_topics(args.topics)
    proposals = list(read_proposals(args.data))
    if args.years:
        proposals = [p for p in proposals if p.year in set(args.years)]
    if not proposals:
        years = f" for year(s) {', '.join(map(str, args.years))}" if args.years else ""
        raise UserError(f"{args.data}: no proposals{years}")

    encoder = load_cli_encoder(args)
    ids = [p.id for p in proposals]
    texts = [p.text for p in proposals]
    progress = not args.no_progress
    p_vecs = encode_texts(encoder, ids, texts, kind="passage", progress=progress)
    t_vecs = encoder.encode([t.topic for t in topics], kind="query", progress=progress)
    matches = match_topics(ids, texts, p_vecs, topics, t_vecs, top_k=args.top_k, weights=weights)

    # Both outputs atomically: an interrupted run leaves any earlier files as they were.
    write_jsonl(args.out, (m.to_dict() for m in matches))
    report = coverage(matches, topics, threshold=weights.threshold)
    if args.coverage:
        args.coverage.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.coverage, report)
    print(coverage_table(report))  # noqa: T201
    print(f"{len(matches)} proposals -> {args.out}", file=sys.stderr)  # noqa: T201
    return 0
