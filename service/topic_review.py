"""Reviewers' topic decisions: confirm the matched reference topic or assign others (or none).

Stored like every other reviewer decision, in the append-only decisions table, under the field
``topic`` with the list of the year's topic ids as the value (an empty list: the reviewer says
the proposal answers no topic). The latest such decision replaces the model's matches for that
proposal on the coverage page and in the topic export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Decision, Proposal, Topic, User

TOPIC_FIELD = "topic"


class TopicDecisionError(ValueError):
    """A topic decision that cannot be recorded (the message is Chinese, for the page)."""


def confirmed_topics(session: Session, proposal_ids: Sequence[int]) -> dict[int, list[str]]:
    """The latest reviewer topic decision per proposal: proposal row id -> topic ids."""
    ids = list(proposal_ids)
    if not ids:
        return {}
    latest = (
        select(func.max(Decision.id))
        .where(Decision.proposal_id.in_(ids), Decision.field == TOPIC_FIELD)
        .group_by(Decision.proposal_id)
    )
    return {
        d.proposal_id: [str(t) for t in (d.new_value or [])]
        for d in session.scalars(select(Decision).where(Decision.id.in_(latest)))
    }


def record_topics(
    session: Session,
    proposal: Proposal,
    user: User,
    topic_ids: Sequence[str],
    *,
    confirm: bool = False,
    note: str = "",
) -> Decision:
    """Append a topic decision (the caller commits).

    ``confirm`` marks it as taking the model's match (action ``accept``), else the reviewer's
    own choice (``set``). Every id must be one of the proposal's year's topics.
    """
    wanted = list(dict.fromkeys(str(t).strip() for t in topic_ids if str(t).strip()))
    known = set(session.scalars(select(Topic.topic_id).where(Topic.year == proposal.year)))
    if not known:
        raise TopicDecisionError(f"{proposal.year} 年尚未导入参考题目。")
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise TopicDecisionError(f"{proposal.year} 年没有参考题目 {'、'.join(unknown)}。")
    previous = confirmed_topics(session, [proposal.id]).get(proposal.id)
    d = Decision(
        proposal_id=proposal.id,
        user_id=user.id,
        action="accept" if confirm else "set",
        field=TOPIC_FIELD,
        new_value=wanted,
        previous_value=previous,
        note=note[:1000],
    )
    session.add(d)
    session.flush()
    return d


def topic_rows(session: Session, year: int) -> dict[str, Any]:
    """The year's topics by id (topic_id -> text)."""
    return {
        t.topic_id: t.topic
        for t in session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.topic_id))
    }


def topic_context(session: Session, proposal: Proposal) -> dict[str, Any]:
    """What the proposal page's topic form needs: cut-off, reviewer's topics, the year's list."""
    from model.topics import DEFAULT_WEIGHTS

    return {
        "cutoff": DEFAULT_WEIGHTS.threshold,
        "confirmed": confirmed_topics(session, [proposal.id]).get(proposal.id),
        "all": topic_rows(session, proposal.year),
    }
