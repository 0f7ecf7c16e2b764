"""`tian check-draft FILE`: the draft check (提案预审) of one .txt/.docx draft on the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tian.commands.dedup import add_encoder_args
from tian.errors import UserError


def register(subparsers: Any) -> None:
    """Add the `check-draft` subcommand."""
    p = subparsers.add_parser(
        "check-draft",
        help="check a draft proposal before submission (form, similar proposals, topics)",
        description=(
            "Form remarks (案由 shape, concrete suggestions, length, one matter per proposal) "
            "with the sentences behind them; with --past, the most similar past proposals; "
            "with --topics, the reference topics it answers; with --model, the likely "
            "category and handling unit. The first line of FILE is the 案由."
        ),
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the draft, .txt or .docx")
    p.add_argument("--title", help="the 案由 (default: the first line of FILE)")
    p.add_argument(
        "--past", nargs="+", type=Path, default=[], help="past proposals (CSV/XLSX/JSONL)"
    )
    p.add_argument("--topics", type=Path, help="reference topics (CSV/XLSX or TXT)")
    p.add_argument("--top-k", type=int, default=5, help="similar proposals listed (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_encoder_args(p)
    p.set_defaults(func=run)


def _read(args: argparse.Namespace) -> tuple[str, str]:
    from model.draft_check import read_draft

    if not args.file.is_file():
        raise UserError(f"file not found: {args.file}")
    try:
        title, content = read_draft(args.file.read_bytes(), args.file.name)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.title is not None:
        # The whole file is the content when the 案由 is given separately.
        content = "\n".join(x for x in (title, content) if x)
        title = args.title.strip()
    if not (title or content):
        raise UserError(f"{args.file}: the draft is empty")
    return title, content


def check(args: argparse.Namespace) -> dict[str, Any]:
    """The check's result as a dict (what --json prints)."""
    import numpy as np

    from model.draft_check import DEFAULT_LENGTH_RANGE, form_remarks, length_range, rank_similar
    from model.records import read_proposals

    title, content = _read(args)
    text = "\n".join(x for x in (title, content) if x)
    past = [p for path in args.past for p in read_proposals(path)]
    span = length_range([len(p.content or "") for p in past]) if past else DEFAULT_LENGTH_RANGE
    out: dict[str, Any] = {
        "title": title,
        "form": [r.to_dict() for r in form_remarks(title, content, span)],
        "length": {"chars": len(content), "usual": list(span)},
        "similar": [],
        "topics": [],
        "suggestion": None,
    }
    if past or args.topics:
        from tian.commands.dedup import encode_texts, load_cli_encoder

        encoder = load_cli_encoder(args)
        vector = np.asarray(encoder.encode([text], kind="passage")[0], dtype=np.float32)
        if past:
            vecs = encode_texts(
                encoder,
                [p.id for p in past],
                [p.text for p in past],
                progress=not args.no_progress,
            )
            ranked = rank_similar(
                title,
                content,
                vector,
                [p.title for p in past],
                [p.content for p in past],
                vecs,
                k=args.top_k,
            )
            out["similar"] = [
                {
                    "year": past[i].year,
                    "id": past[i].id,
                    "title": past[i].title,
                    "main_unit": past[i].main_unit,
                    "score": round(score, 4),
                }
                for i, score, _ in ranked
            ]
        if args.topics:
            from model.topics import match_topics, read_topics

            if not args.topics.is_file():
                raise UserError(f"file not found: {args.topics}")
            topics = read_topics(args.topics)
            t_vecs = encoder.encode([t.topic for t in topics], kind="query")
            # Rank the draft among the latest past year's proposals for each topic (the
            # score's rank_in_topic feature); alone it would be every topic's best match.
            context = None
            if past:
                latest = max(p.year or 0 for p in past)
                context = vecs[[i for i, p in enumerate(past) if (p.year or 0) == latest]]
            m = match_topics(
                ["draft"], [text], vector[None, :], topics, t_vecs, top_k=3, context_vectors=context
            )[0]
            by_id = {t.topic_id: t.topic for t in topics}
            out["topics"] = [
                {"topic_id": t, "topic": by_id[t], "score": round(s, 4)} for t, s in m.topics
            ]
    if args.model is not None:
        from model.bundle import load_classifier
        from model.suggest import suggest

        row = suggest(load_classifier(args.model), ["draft"], [text], top_k=3)[0]
        out["suggestion"] = {h: row.get(h) for h in ("category", "main_unit", "co_units", "review")}
    return out


def report(result: dict[str, Any]) -> str:
    """The result for people, in Chinese."""
    lines = [f"案由：{result['title'] or '（空）'}", "", "一、格式检查"]
    usual = result["length"]["usual"]
    lines.append(f"  正文 {result['length']['chars']} 字（常见篇幅 {usual[0]}–{usual[1]} 字）")
    for r in result["form"] or [{"message": "未发现问题。", "sentences": []}]:
        lines.append(f"  - {r['message']}")
        lines.extend(f"      “{s}”" for s in r["sentences"])
    lines += ["", "二、已有相似提案"]
    for s in result["similar"]:
        unit = s["main_unit"] or "—"
        lines.append(f"  {s['year']}  {s['title']}（{unit}；同一事项可能性 {s['score']:.0%}）")
    if not result["similar"]:
        lines.append("  （未提供往年提案 --past，或没有找到）")
    lines += ["", "三、参考题目与承办单位"]
    lines.extend(f"  题目：{t['topic']}（{t['score']:.0%}）" for t in result["topics"])
    s = result["suggestion"]
    if s:
        for head, name in (("category", "类别"), ("main_unit", "主办单位")):
            top = "、".join(f"{o['label']}（{o['score']:.0%}）" for o in s.get(head) or [])
            lines.append(f"  {name}：{top or '—'}")
        review = s.get("review") or {}
        if "confidence" in review:
            lines.append(f"  联合置信度：{review['confidence']:.0%}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Entry point for `tian check-draft`."""
    result = check(args)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))  # noqa: T201
    else:
        print(report(result))  # noqa: T201
    return 0
