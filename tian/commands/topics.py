"""`tian topics`: rank the year's reference topics for each proposal, and report coverage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tian.commands.dedup import add_encoder_args


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
        help="score below which a proposal has no topic (default: calibrated 0.5)",
    )
    p.add_argument("--coverage", type=Path, help="also write the coverage report as JSON")
    add_encoder_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point for `tian topics`."""
    from dataclasses import replace

    from model.topics import DEFAULT_WEIGHTS, coverage, coverage_table, match_topics, read_topics
    from tian.cli import UserError
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

    from model.records import read_proposals

    topics = read_topics(args.topics)
    proposals = list(read_proposals(args.data))
    if args.years:
        proposals = [p for p in proposals if p.year in set(args.years)]
    if not proposals:
        years = f" for year(s) {', '.join(map(str, args.years))}" if args.years else ""
        raise UserError(f"{args.data}: no proposals{years}")

    encoder, index = load_cli_encoder(args)
    ids = [p.id for p in proposals]
    texts = [p.text for p in proposals]
    progress = not args.no_progress
    p_vecs = encode_texts(encoder, ids, texts, index, kind="passage", progress=progress)
    t_vecs = encoder.encode([t.topic for t in topics], kind="query", progress=progress)
    matches = match_topics(ids, texts, p_vecs, topics, t_vecs, top_k=args.top_k, weights=weights)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for m in matches:
            fh.write(json.dumps(m.to_dict(), ensure_ascii=False) + "\n")
    report = coverage(matches, topics, threshold=weights.threshold)
    if args.coverage:
        args.coverage.parent.mkdir(parents=True, exist_ok=True)
        args.coverage.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(coverage_table(report))  # noqa: T201
    print(f"{len(matches)} proposals -> {args.out}", file=sys.stderr)  # noqa: T201
    return 0
