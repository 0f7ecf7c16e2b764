"""The review queue, the proposal page and the decision form."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from service.deps import CurrentUser, FormCsrf, SessionDep, WriterUser
from service.models import Proposal
from service.pages.common import FIELD_TEXT, flash, render, show, this_year
from service.queries import (
    OptionalYearQuery,
    YearPath,
    coverage_report,
    duplicates_of,
    get_proposal,
    proposal_detail,
)
from service.review import SORTS, DecisionError, StaleDecision, queue, record_decision
from service.topic_review import topic_context

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)


def years(session: Any) -> list[int]:
    return list(session.scalars(select(Proposal.year).distinct().order_by(Proposal.year.desc())))


def _opt_float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return RedirectResponse("/queue", status_code=303)


@router.get("/queue", response_class=HTMLResponse)
def queue_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    year: OptionalYearQuery = None,
    status: str = "",
    category: str = "",
    unit: str = "",
    min_confidence: str = "",
    max_confidence: str = "",
    attention: str = "",
    dup: str = "",
    q: str = "",
    sort: str = "id",
    desc: str = "",
) -> HTMLResponse:
    all_years = years(session)
    year = year or (all_years[0] if all_years else this_year())
    items = queue(
        session,
        year,
        status=status or None,
        category=category or None,
        unit=unit or None,
        min_confidence=_opt_float(min_confidence),
        max_confidence=_opt_float(max_confidence),
        needs_attention=True if attention else None,
        q=q or None,
        sort=sort if sort in SORTS else "id",
        descending=bool(desc),
    )
    if dup:  # the 疑似重复 card: only proposals with a likely duplicate
        items = [v for v in items if v.likely_duplicate]
    everything = queue(session, year)
    live = request.app.state.tian.runtime.current
    labels = dict(live.classifier.labels) if live is not None else {}
    categories = sorted(
        set(labels.get("category", []))
        | {v.current["category"] for v in everything if v.current.get("category")}
    )
    units = sorted(
        set(labels.get("main_unit", []))
        | {v.current["main_unit"] for v in everything if v.current.get("main_unit")}
    )
    return render(
        request,
        "queue.html",
        user=user,
        year=year,
        years=all_years,
        items=items,
        total=len(everything),
        counts={
            "pending": sum(v.status == "pending" for v in everything),
            "reviewed": sum(v.status == "reviewed" for v in everything),
            "attention": sum(v.needs_attention for v in everything),
            "duplicates": sum(v.likely_duplicate for v in everything),
            "groups": _group_count(session, year),
        },
        categories=categories,
        units=units,
        filters={
            "status": status,
            "category": category,
            "unit": unit,
            "min_confidence": min_confidence,
            "max_confidence": max_confidence,
            "attention": attention,
            "dup": dup,
            "q": q,
            "sort": sort,
            "desc": desc,
        },
    )


def _group_count(session: Any, year: int) -> int:
    from sqlalchemy import func

    from service.models import DuplicateGroup

    return int(
        session.scalar(
            select(func.count()).select_from(DuplicateGroup).where(DuplicateGroup.year == year)
        )
        or 0
    )


def proposal_context(request: Request, session: Any, p: Proposal) -> dict[str, Any]:
    """What the proposal page shows: the detail, duplicates side by side, similar past ones."""
    from service.highlight import segments
    from service.similar import similar_past

    detail = proposal_detail(session, p)
    text = p.text
    dups = duplicates_of(session, p, evidence=True)
    for d in dups:
        passages = d["evidence"]["passages"]
        d["mine"] = segments(text, [(x["a_start"], x["a_end"]) for x in passages])
        d["theirs"] = segments(_text_of(session, d), [(x["b_start"], x["b_end"]) for x in passages])
        d["overlap_chars"] = sum(x["a_end"] - x["a_start"] for x in passages)
    detail["duplicates"] = dups
    # Whole words and phrases only, each once (suggestions stored before this rule may
    # still hold character fragments such as 区停).
    from model.keywords import whole_words

    detail["why"] = {
        head: [
            {"word": w, "weight": x}
            for w, x in whole_words(text, [(w["word"], w["weight"]) for w in words])
        ]
        for head, words in (detail.get("why") or {}).items()
    }
    live = request.app.state.tian.runtime.current
    labels = dict(live.classifier.labels) if live is not None else {}
    similar = similar_past(session, p)
    voters = voting_neighbours(live.classifier if live is not None else None, text)
    return {
        "p": detail,
        "similar": mark_voters(similar, voters),
        # Why the list may be empty: no earlier year at all, or vectors not computed yet.
        "has_past": similar
        or session.scalar(select(Proposal.id).where(Proposal.year < p.year).limit(1)) is not None,
        "voters": None if voters is None else _other_voters(session, p, voters, similar),
        "labels": labels,
        "abstain_notes": abstain_notes(detail.get("suggestion")),
        # What the page shows as current: decisions send it back as the value they replace.
        "current_json": json.dumps(
            {f: detail.get(f) for f in ("category", "main_unit", "co_units", "merge_group")},
            ensure_ascii=False,
        ),
        "topic_state": topic_context(session, p),
    }


def voting_neighbours(classifier: Any, text: str) -> set[str] | None:
    """Ids of the past proposals whose labels voted on `text`: the neighbour member's k
    nearest, where some head of the model is served with that member (else None)."""
    plans = getattr(classifier, "plans", None) or {}
    vote = (getattr(classifier, "members", None) or {}).get("neighbours")
    if vote is None or not any("neighbours" in plan.members for plan in plans.values()):
        return None
    try:
        found = classifier.neighbours(text, k=int(vote.k))
    except Exception:  # a nicety: never fail the page for it
        log.exception("neighbour vote lookup failed")
        return None
    return {str(n["id"]) for n in found}


def mark_voters(similar: list[dict[str, Any]], voters: set[str] | None) -> list[dict[str, Any]]:
    """Each similar past proposal with "voted": whether it is among `voters` (None: unknown)."""
    for row in similar:
        row["voted"] = None if voters is None else row["id"] in voters
    return similar


def _other_voters(
    session: Any, p: Proposal, voters: set[str], similar: list[dict[str, Any]]
) -> dict[str, Any]:
    """How many voted, and the voters the similar list does not show (year and id, to link)."""
    shown = {row["id"] for row in similar}
    rest = sorted(voters - shown)
    found = (
        session.execute(
            select(Proposal.year, Proposal.pid).where(
                Proposal.pid.in_(rest), Proposal.year < p.year
            )
        ).all()
        if rest
        else []
    )
    return {
        "count": len(voters),
        "shown": len(voters & shown),
        "others": [{"year": y, "id": pid} for y, pid in sorted(found)],
    }


def _text_of(session: Any, d: dict[str, Any]) -> str:
    other = session.scalar(
        select(Proposal).where(Proposal.year == d["year"], Proposal.pid == d["id"])
    )
    return other.text if other is not None else ""


HEAD_TEXT = {"category": "类别", "main_unit": "主办单位"}


def abstain_notes(suggestion: dict[str, Any] | None) -> dict[str, str]:
    """Plain words for each head the model abstains on: its prediction set and coverage."""
    notes: dict[str, str] = {}
    for head, info in ((suggestion or {}).get("abstain") or {}).items():
        if head not in HEAD_TEXT or not info.get("flag"):
            continue
        coverage = info.get("coverage")
        level = f"{float(coverage) * 100:.0f}%" if coverage is not None else "设定的"
        members = "、".join(info.get("prediction_set") or [])
        notes[head] = (
            f"模型在{level}置信水平下无法确定唯一{HEAD_TEXT[head]}，候选：{members}。请人工判断。"
        )
    return notes


@router.get("/proposals/{year}/{pid}", response_class=HTMLResponse)
def proposal_page(
    request: Request, year: YearPath, pid: str, session: SessionDep, user: CurrentUser
) -> HTMLResponse:
    p = get_proposal(session, year, pid)
    return render(
        request, "proposal.html", user=user, error=None, **proposal_context(request, session, p)
    )


@router.post("/proposals/{year}/{pid}/decide", dependencies=[FormCsrf])
def decide(
    request: Request,
    year: YearPath,
    pid: str,
    session: SessionDep,
    user: WriterUser,
    action: str = Form(...),
    field: str = Form(default=""),
    value: str = Form(default="", max_length=2000),
    note: str = Form(default="", max_length=1000),
    previous_value: str = Form(default="", max_length=20_000),
    confirm: str = Form(default=""),
    replace: str = Form(default=""),
) -> Response:
    p = get_proposal(session, year, pid)
    parsed: Any = value
    if field == "co_units":
        parsed = [
            v.strip() for v in value.replace("，", "、").replace(",", "、").split("、") if v.strip()
        ]

    def again(status: int, **extra: Any) -> HTMLResponse:
        return render(
            request,
            "proposal.html",
            status,
            user=user,
            **{"error": None, **extra},
            **proposal_context(request, session, p),
        )

    if action == "accept" and not field and not confirm:
        # 一键采纳 asks first when the model is unsure or a value would be kept or replaced.
        check = accept_all_check(session, p)
        if check:
            return again(200, confirm_accept=check)
    try:
        made = record_decision(
            session,
            p,
            user,
            action=action,
            field_name=field or None,
            value=parsed if field == "co_units" else (parsed or None),
            note=note,
            previous=_seen(previous_value, action, field),
            replace=bool(replace),
        )
    except StaleDecision as exc:
        session.rollback()
        return again(409, error=str(exc))
    except DecisionError as exc:
        session.rollback()
        return again(422, error=str(exc))
    session.commit()
    flash(request, saved_message(made))
    return RedirectResponse(f"/proposals/{year}/{pid}", status_code=303)


def _seen(raw: str, action: str, field: str) -> dict[str, Any] | None:
    """The values the page showed (its hidden ``previous_value``), for the fields acted on."""
    try:
        shown = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(shown, dict):
        return None
    if action in ("merge", "unmerge"):
        names = ["merge_group"]
    else:
        names = [field] if field else ["category", "main_unit", "co_units"]
    return {n: shown.get(n) for n in names if n in shown}


def accept_all_check(session: Any, p: Proposal) -> dict[str, Any] | None:
    """What the confirmation of 一键采纳 lists: heads to judge and values it would not change."""
    from service.review import accept_all_plan, flagged_heads, latest_suggestions

    s = latest_suggestions(session, [p.id]).get(p.id)
    try:
        _, kept = accept_all_plan(session, p)
    except DecisionError:
        return None  # no suggestion: recording fails with its own message
    flagged = flagged_heads(s.payload if s else None)
    if not flagged and not kept:
        return None
    return {
        "flagged": [HEAD_TEXT[h] for h in flagged if h in HEAD_TEXT],
        "kept": [
            {"field": FIELD_TEXT[name], "current": show(cur), "suggested": show(sug)}
            for name, (cur, sug) in kept.items()
        ],
    }


def saved_message(made: Any) -> str:
    """已保存 … : what an action recorded and what it left as it was."""
    parts = []
    for d in made:
        if d.field == "merge_group":
            text = f"并入并案组“{d.new_value}”" if d.new_value else "已取消并案"
        else:
            text = f"{FIELD_TEXT[d.field]}为“{show(d.new_value)}”"
        if text not in parts:  # a merge writes one row per member of the group
            parts.append(text)
    kept = [f"{FIELD_TEXT[k]}“{show(v)}”" for k, v in getattr(made, "kept", {}).items()]
    text = "已保存：" + "；".join(parts) + "。" if parts else "没有需要保存的改动。"
    if kept:
        text += "保留原有的" + "、".join(kept) + "（未被建议替换）。"
    return text


@router.get("/topics", response_class=HTMLResponse)
def topics_page(
    request: Request, session: SessionDep, user: CurrentUser, year: OptionalYearQuery = None
) -> HTMLResponse:
    all_years = years(session)
    year = year or (all_years[0] if all_years else this_year())
    return render(
        request,
        "topics.html",
        user=user,
        year=year,
        years=all_years,
        report=coverage_report(session, year),
    )
