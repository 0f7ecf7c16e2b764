"""Reviewer decisions and the derived state of each proposal (current labels, status, flags).

Decisions are append-only; a proposal's current value of a field is the value of its latest
decision on that field, else the value the import brought (if any). A proposal is reviewed
once both its category and its main unit have been decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from service.models import (
    DECISION_FIELDS,
    Decision,
    DuplicatePair,
    Proposal,
    Suggestion,
    User,
)

LABEL_MAX = 200
FIELD_NAMES = {
    "category": "类别",
    "main_unit": "主办单位",
    "co_units": "协办单位",
    "merge_group": "并案组",
}


class DecisionError(ValueError):
    """A decision that cannot be recorded (bad field, value or target)."""


@dataclass
class ProposalView:
    """Everything the queue needs about one proposal."""

    row_id: int
    year: int
    pid: str
    title: str
    current: dict[str, Any]
    decided: set[str]
    suggestion: dict[str, Any] | None
    suggestion_id: int | None
    model_version: str | None
    duplicate_score: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "reviewed" if {"category", "main_unit"} <= self.decided else "pending"

    @property
    def confidence(self) -> float | None:
        """Joint calibrated confidence of the suggestion (see service.review_state)."""
        from service.review_state import joint_confidence

        return joint_confidence(self.suggestion)

    @property
    def abstain(self) -> bool:
        """需人工判断: a head a reviewer has not decided yet is flagged."""
        from service.review_state import open_flags

        return bool(open_flags(self.suggestion, self.decided))

    @property
    def likely_duplicate(self) -> bool:
        return self.duplicate_score > 0

    @property
    def needs_attention(self) -> bool:
        """Pending and flagged, or a likely duplicate not yet merged (reviewed: never)."""
        if self.status == "reviewed":
            return False
        return self.abstain or (self.likely_duplicate and not self.current.get("merge_group"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "id": self.pid,
            "title": self.title,
            "status": self.status,
            "category": self.current.get("category"),
            "main_unit": self.current.get("main_unit"),
            "co_units": self.current.get("co_units") or [],
            "merge_group": self.current.get("merge_group"),
            "decided": sorted(self.decided),
            "confidence": self.confidence,
            "abstain": self.abstain,
            "likely_duplicate": self.likely_duplicate,
            "needs_attention": self.needs_attention,
            "suggestion": self.suggestion,
            "model_version": self.model_version,
        }


def imported_value(p: Proposal, name: str) -> Any:
    if name == "co_units":
        return list(p.co_units or [])
    if name == "merge_group":
        return None
    return getattr(p, name)


def latest_decisions(session: Session, ids: Sequence[int]) -> dict[int, dict[str, Decision]]:
    """The latest decision per (proposal, field)."""
    latest = (
        select(func.max(Decision.id))
        .where(Decision.proposal_id.in_(list(ids)))
        .group_by(Decision.proposal_id, Decision.field)
    )
    out: dict[int, dict[str, Decision]] = {}
    for d in session.scalars(select(Decision).where(Decision.id.in_(latest))):
        out.setdefault(d.proposal_id, {})[d.field] = d
    return out


def latest_suggestions(session: Session, ids: Sequence[int]) -> dict[int, Suggestion]:
    """The newest suggestion per proposal."""
    newest = (
        select(func.max(Suggestion.id))
        .where(Suggestion.proposal_id.in_(list(ids)))
        .group_by(Suggestion.proposal_id)
    )
    return {
        s.proposal_id: s
        for s in session.scalars(select(Suggestion).where(Suggestion.id.in_(newest)))
    }


def duplicate_scores(session: Session, ids: Sequence[int]) -> dict[int, float]:
    """The best likely-duplicate score per proposal (only proposals in a flagged pair)."""
    out: dict[int, float] = {}
    wanted = set(ids)
    rows = session.execute(
        select(DuplicatePair.proposal_a, DuplicatePair.proposal_b, DuplicatePair.score).where(
            or_(DuplicatePair.proposal_a.in_(list(ids)), DuplicatePair.proposal_b.in_(list(ids)))
        )
    )
    for a, b, score in rows:
        for x in (a, b):
            if x in wanted:
                out[x] = max(out.get(x, 0.0), float(score))
    return out


def views(session: Session, proposals: Sequence[Proposal]) -> list[ProposalView]:
    """Views of proposals, in the order given."""
    ids = [p.id for p in proposals]
    out: list[ProposalView] = []
    for start in range(0, len(ids), 500):
        part = proposals[start : start + 500]
        part_ids = ids[start : start + 500]
        decisions = latest_decisions(session, part_ids)
        suggestions = latest_suggestions(session, part_ids)
        dups = duplicate_scores(session, part_ids)
        for p in part:
            made = decisions.get(p.id, {})
            current = {
                f: (made[f].new_value if f in made else imported_value(p, f))
                for f in DECISION_FIELDS
            }
            s = suggestions.get(p.id)
            out.append(
                ProposalView(
                    row_id=p.id,
                    year=p.year,
                    pid=p.pid,
                    title=p.title,
                    current=current,
                    decided=set(made),
                    suggestion=s.payload if s else None,
                    suggestion_id=s.id if s else None,
                    model_version=s.model_version.version if s else None,
                    duplicate_score=dups.get(p.id, 0.0),
                )
            )
    return out


SORTS = {
    "id": lambda v: (v.pid,),
    "confidence": lambda v: (v.confidence if v.confidence is not None else -1.0,),
    "status": lambda v: (v.status, v.pid),
    "category": lambda v: (v.current.get("category") or "", v.pid),
}


def queue(
    session: Session,
    year: int,
    *,
    status: str | None = None,
    category: str | None = None,
    unit: str | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    needs_attention: bool | None = None,
    q: str | None = None,
    sort: str = "id",
    descending: bool = False,
) -> list[ProposalView]:
    """The year's proposals, filtered and sorted for the review queue."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    query = select(Proposal).where(Proposal.year == year)
    if q:
        like = f"%{q}%"
        query = query.where(or_(Proposal.title.like(like), Proposal.pid.like(like)))
    items = views(session, list(session.scalars(query.order_by(Proposal.pid))))

    def keep(v: ProposalView) -> bool:
        if status and v.status != status:
            return False
        if category and v.current.get("category") != category:
            return False
        if (
            unit
            and unit != v.current.get("main_unit")
            and unit not in (v.current.get("co_units") or [])
        ):
            return False
        conf = v.confidence
        if min_confidence is not None and (conf is None or conf < min_confidence):
            return False
        if max_confidence is not None and (conf is None or conf > max_confidence):
            return False
        return needs_attention is None or v.needs_attention == needs_attention

    return sorted(filter(keep, items), key=SORTS[sort], reverse=descending)


class StaleDecision(DecisionError):
    """The value a decision says it replaces is no longer the current one (HTTP 409)."""


class Recorded(list[Decision]):
    """The decision rows one action made, plus the fields a bulk accept left as they were."""

    def __init__(self, rows: Sequence[Decision] = (), kept: dict[str, Any] | None = None):
        super().__init__(rows)
        self.kept: dict[str, Any] = kept or {}


def _clean_label(value: Any, name: str) -> str:
    from model.formulas import is_formula_like
    from model.text import normalize_label

    text = FIELD_NAMES.get(name, name)
    if not isinstance(value, str) or not normalize_label(value):
        raise DecisionError(f"{text}不能为空")
    label = normalize_label(value)
    if len(label) > LABEL_MAX:
        raise DecisionError(f"{text}超过 {LABEL_MAX} 个字符")
    if is_formula_like(label) or is_formula_like(value):
        # Exports would carry it into spreadsheets, where it could run as a formula.
        raise DecisionError(f"{text}不能以 = + - @ 或制表符开头（电子表格会把它当作公式）")
    return label


def _clean_value(name: str, value: Any) -> Any:
    if name in ("category", "main_unit"):
        return _clean_label(value, name)
    if name == "co_units":
        if not isinstance(value, list):
            raise DecisionError("协办单位应为单位名称的列表")
        return list(dict.fromkeys(_clean_label(v, "co_units") for v in value))
    raise DecisionError(f"未知字段 {name!r}")


def _accepted_value(suggestion: Suggestion | None, name: str) -> Any:
    if suggestion is None:
        raise DecisionError("该提案暂无模型建议可采纳")
    ranked = suggestion.payload.get(name) or []
    if name == "co_units":
        above = (
            suggestion.payload.get("abstain", {}).get("co_units", {}).get("suggested_above", 0.5)
        )
        return [c["label"] for c in ranked if c["score"] >= above]
    if not ranked:
        raise DecisionError(f"模型建议中没有{FIELD_NAMES[name]}")
    return ranked[0]["label"]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _same(a: Any, b: Any) -> bool:
    """Equal as decision values (nothing, an empty text and an empty list are all nothing)."""
    if _empty(a) or _empty(b):
        return _empty(a) and _empty(b)
    return bool(a == b)


def _show(value: Any) -> str:
    if _empty(value):
        return "（空）"
    return "、".join(map(str, value)) if isinstance(value, list) else str(value)


def lock_proposals(session: Session, proposal: Proposal, *, whole_year: bool = False) -> None:
    """Start a fresh transaction that holds the write lock on the proposal (or its year).

    The caller must have no pending changes. On PostgreSQL ``SELECT ... FOR UPDATE`` takes the
    row locks (in id order, so two merges cannot deadlock; a second reviewer waits until the
    first commits, then reads the new value); on SQLite a no-op UPDATE takes the database's
    write lock, and as the first statement of the transaction it also gives a snapshot with
    every committed decision. So the check of the replaced value
    and the insert of the decision happen in one serialised transaction.
    """
    session.commit()  # end the read transaction the request began (nothing is pending)
    where = Proposal.year == proposal.year if whole_year else Proposal.id == proposal.id
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Proposal.id).where(where).order_by(Proposal.id).with_for_update())
    else:
        session.execute(update(Proposal).where(where).values(updated_at=Proposal.updated_at))
    session.refresh(proposal)


def _check_previous(current: dict[str, Any], previous: dict[str, Any] | None) -> None:
    for name, expected in (previous or {}).items():
        if name not in current:
            continue
        if not _same(current[name], expected):
            raise StaleDecision(
                f"{FIELD_NAMES.get(name, name)}已被他人修改：现为“{_show(current[name])}”，"
                f"不是页面上的“{_show(expected)}”。请刷新页面，看过最新结果后再决定。"
            )


def flagged_heads(suggestion: dict[str, Any] | None) -> list[str]:
    """The heads a person should decide (abstain flags, else the review block's flag)."""
    if not suggestion:
        return []
    heads = [
        h
        for h, info in (suggestion.get("abstain") or {}).items()
        if h in ("category", "main_unit") and isinstance(info, dict) and info.get("flag")
    ]
    review = suggestion.get("review") or {}
    if not heads and review.get("flag"):
        heads = [h for h in ("category", "main_unit") if suggestion.get(h)]
    return heads


def accept_all_plan(
    session: Session, proposal: Proposal
) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
    """What 一键采纳 would do: ``(taken, kept)``.

    ``taken`` maps each field to the suggested value it would record; ``kept`` maps the fields
    whose current value (from the import or a reviewer) differs from the suggestion to
    ``(current, suggested)``: they stay as they are unless the reviewer chooses to replace them.
    """
    current = views(session, [proposal])[0].current
    suggestion = latest_suggestions(session, [proposal.id]).get(proposal.id)
    taken: dict[str, Any] = {}
    kept: dict[str, tuple[Any, Any]] = {}
    if suggestion is None:
        raise DecisionError("该提案暂无模型建议可采纳")
    for name in ("category", "main_unit", "co_units"):
        if name != "co_units" and not suggestion.payload.get(name):
            continue  # a model without this head suggests nothing for it
        suggested = _accepted_value(suggestion, name)
        if _empty(current.get(name)) or _same(current.get(name), suggested):
            taken[name] = suggested
        else:
            kept[name] = (current.get(name), suggested)
    return taken, kept


def record_decision(
    session: Session,
    proposal: Proposal,
    user: User,
    *,
    action: str,
    field_name: str | None = None,
    value: Any = None,
    note: str = "",
    previous: dict[str, Any] | None = None,
    replace: bool = False,
) -> Recorded:
    """Append the decision rows one reviewer action makes (the caller commits).

    Actions: ``accept`` (take the latest suggestion for ``field_name``; without a field, for
    category, main unit and co-units), ``set`` (a value the reviewer picked), ``merge`` (value:
    the id, or a list of ids, of proposals of the same year; the whole groups of all of them
    join one merge group) and ``unmerge``.

    ``previous`` maps fields to the values the reviewer saw: when one is no longer current,
    :class:`StaleDecision` is raised and nothing is recorded. The check and the insert run in
    one transaction under :func:`lock_proposals`, so the recorded 原值 is always the real one.
    Accepting all suggestions never overwrites a value the import or a reviewer gave unless
    ``replace`` is true: such fields are left as they are and listed in ``Recorded.kept``.
    """
    lock_proposals(session, proposal, whole_year=action == "merge")
    current = views(session, [proposal])[0]
    _check_previous(current.current, previous)
    suggestion = latest_suggestions(session, [proposal.id]).get(proposal.id)
    changes: list[tuple[str, Any]] = []
    kept: dict[str, Any] = {}
    if action == "accept":
        if field_name and field_name not in ("category", "main_unit", "co_units"):
            raise DecisionError(f"不能对{FIELD_NAMES.get(field_name, field_name)}采纳建议")
        if field_name:
            changes.append((field_name, _accepted_value(suggestion, field_name)))
        else:
            taken, differing = accept_all_plan(session, proposal)
            for name in ("category", "main_unit", "co_units"):
                if name in taken:
                    changes.append((name, taken[name]))
                elif name not in differing:
                    continue
                elif replace:
                    changes.append((name, differing[name][1]))
                else:
                    kept[name] = differing[name][0]
    elif action == "set":
        if field_name not in ("category", "main_unit", "co_units"):
            raise DecisionError("修改需要指定类别、主办单位或协办单位")
        changes.append((field_name, _clean_value(field_name, value)))
    elif action == "merge":
        return Recorded(_merge(session, proposal, user, value, note))
    elif action == "unmerge":
        changes.append(("merge_group", None))
    else:
        raise DecisionError(f"未知操作 {action!r}；可用 accept、set、merge 或 unmerge")
    rows = [
        _append(
            session, proposal, user, action, name, new, current.current.get(name), suggestion, note
        )
        for name, new in changes
    ]
    return Recorded(rows, kept)


def _append(
    session: Session,
    proposal: Proposal,
    user: User,
    action: str,
    name: str,
    new: Any,
    previous: Any,
    suggestion: Suggestion | None,
    note: str,
) -> Decision:
    d = Decision(
        proposal_id=proposal.id,
        user_id=user.id,
        action=action,
        field=name,
        new_value=new,
        previous_value=previous,
        suggestion_id=suggestion.id if suggestion is not None and action == "accept" else None,
        note=note[:1000],
    )
    session.add(d)
    session.flush()
    return d


def _merge(
    session: Session, proposal: Proposal, user: User, value: Any, note: str
) -> list[Decision]:
    """Join the whole groups of ``proposal`` and of every target into one merge group.

    Merging A with B and then B with C puts A, B and C in one group; merging with several ids
    at once keeps them all. The group keeps the first target's label (else the proposal's, else
    a new one named after the first target). Runs under the year's lock (see record_decision).
    """
    wanted = [value] if isinstance(value, str) else value
    if not isinstance(wanted, list) or not wanted:
        raise DecisionError("并案需要给出要合并的提案号")
    pids = list(dict.fromkeys(v.strip() for v in wanted if isinstance(v, str) and v.strip()))
    if not pids:
        raise DecisionError("并案需要给出要合并的提案号")
    targets: list[Proposal] = []
    for pid in pids:
        target = session.scalar(
            select(Proposal).where(Proposal.year == proposal.year, Proposal.pid == pid)
        )
        if target is None:
            raise DecisionError(f"{proposal.year} 年没有提案 {pid!r}")
        if target.id == proposal.id:
            raise DecisionError("提案不能与自身并案")
        targets.append(target)
    year_views = {
        v.row_id: v
        for v in views(
            session,
            list(session.scalars(select(Proposal).where(Proposal.year == proposal.year))),
        )
    }
    involved = [*targets, proposal]
    labels = [year_views[p.id].current.get("merge_group") for p in involved]
    group = next((g for g in labels if g), None) or f"{targets[0].year}/{targets[0].pid}"
    joining = {p.id for p in involved} | {
        row_id
        for row_id, v in year_views.items()
        if v.current.get("merge_group") and v.current.get("merge_group") in set(labels)
    }
    made = []
    by_id = {p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(joining)))}
    # The proposal the reviewer acted on comes last, as before: its row is the action's result.
    for row_id in sorted(joining - {proposal.id}) + [proposal.id]:
        was = year_views[row_id].current.get("merge_group")
        if was != group:
            made.append(
                _append(
                    session, by_id[row_id], user, "merge", "merge_group", group, was, None, note
                )
            )
    return made


def decision_dict(d: Decision, pid: str | None = None, year: int | None = None) -> dict[str, Any]:
    """A decision as JSON (the reviewer's username, never a proposer)."""
    return {
        "id": d.id,
        "proposal": pid,
        "year": year,
        "user": d.user.username,
        "at": d.created_at.isoformat(),
        "action": d.action,
        "field": d.field,
        "new_value": d.new_value,
        "previous_value": d.previous_value,
        "suggestion_id": d.suggestion_id,
        "note": d.note,
    }
