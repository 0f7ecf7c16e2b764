"""Reviewer decisions and the derived state of each proposal (current labels, status, flags).

Decisions are append-only; a proposal's current value of a field is the value of its latest
decision on that field, else the value the import brought (if any). A proposal is reviewed
once both its category and its main unit have been decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
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
        """Calibrated probability of the top suggested category."""
        if not self.suggestion or not self.suggestion.get("category"):
            return None
        return float(self.suggestion["category"][0]["score"])

    @property
    def abstain(self) -> bool:
        if not self.suggestion:
            return False
        return any(a.get("flag") for a in self.suggestion.get("abstain", {}).values())

    @property
    def likely_duplicate(self) -> bool:
        return self.duplicate_score > 0

    @property
    def needs_attention(self) -> bool:
        return self.abstain or self.likely_duplicate

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


def _clean_label(value: Any, name: str) -> str:
    from model.text import normalize_label

    if not isinstance(value, str) or not normalize_label(value):
        raise DecisionError(f"{name} must be a non-empty text")
    label = normalize_label(value)
    if len(label) > LABEL_MAX:
        raise DecisionError(f"{name} is longer than {LABEL_MAX} characters")
    return label


def _clean_value(name: str, value: Any) -> Any:
    if name in ("category", "main_unit"):
        return _clean_label(value, name)
    if name == "co_units":
        if not isinstance(value, list):
            raise DecisionError("co_units must be a list of unit names")
        return list(dict.fromkeys(_clean_label(v, "co_units item") for v in value))
    raise DecisionError(f"unknown field {name!r}")


def _accepted_value(suggestion: Suggestion | None, name: str) -> Any:
    if suggestion is None:
        raise DecisionError("there is no suggestion to accept for this proposal")
    ranked = suggestion.payload.get(name) or []
    if name == "co_units":
        above = (
            suggestion.payload.get("abstain", {}).get("co_units", {}).get("suggested_above", 0.5)
        )
        return [c["label"] for c in ranked if c["score"] >= above]
    if not ranked:
        raise DecisionError(f"the suggestion has no {name}")
    return ranked[0]["label"]


def record_decision(
    session: Session,
    proposal: Proposal,
    user: User,
    *,
    action: str,
    field_name: str | None = None,
    value: Any = None,
    note: str = "",
) -> list[Decision]:
    """Append the decision rows one reviewer action makes (the caller commits).

    Actions: ``accept`` (take the latest suggestion for ``field_name``; without a field, for
    category, main unit and co-units), ``set`` (a value the reviewer picked), ``merge`` (value:
    the id of a proposal of the same year to merge with; both join one merge group) and
    ``unmerge``.
    """
    current = views(session, [proposal])[0]
    suggestion = latest_suggestions(session, [proposal.id]).get(proposal.id)
    changes: list[tuple[str, Any]] = []
    if action == "accept":
        names = [field_name] if field_name else ["category", "main_unit", "co_units"]
        for name in names:
            if name not in ("category", "main_unit", "co_units"):
                raise DecisionError(f"cannot accept a suggestion for {name!r}")
            changes.append((name, _accepted_value(suggestion, name)))
    elif action == "set":
        if field_name not in ("category", "main_unit", "co_units"):
            raise DecisionError("set needs field category, main_unit or co_units")
        changes.append((field_name, _clean_value(field_name, value)))
    elif action == "merge":
        return _merge(session, proposal, user, current, value, note)
    elif action == "unmerge":
        changes.append(("merge_group", None))
    else:
        raise DecisionError(f"unknown action {action!r}; use accept, set, merge or unmerge")
    return [
        _append(
            session, proposal, user, action, name, new, current.current.get(name), suggestion, note
        )
        for name, new in changes
    ]


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
    session: Session, proposal: Proposal, user: User, current: ProposalView, value: Any, note: str
) -> list[Decision]:
    if not isinstance(value, str) or not value.strip():
        raise DecisionError("merge needs the id of the proposal to merge with")
    target = session.scalar(
        select(Proposal).where(Proposal.year == proposal.year, Proposal.pid == value.strip())
    )
    if target is None:
        raise DecisionError(f"no proposal {value.strip()!r} in {proposal.year}")
    if target.id == proposal.id:
        raise DecisionError("a proposal cannot be merged with itself")
    target_view = views(session, [target])[0]
    group = target_view.current.get("merge_group") or f"{target.year}/{target.pid}"
    made = []
    if target_view.current.get("merge_group") != group:
        made.append(_append(session, target, user, "merge", "merge_group", group, None, None, note))
    made.append(
        _append(
            session,
            proposal,
            user,
            "merge",
            "merge_group",
            group,
            current.current.get("merge_group"),
            None,
            note,
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
