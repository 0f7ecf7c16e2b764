"""What the pages and the API routers share: year parameters, reads of proposals and years,
and the queueing of import and analysis jobs.

Pages never import from ``service.api`` (an import-linter contract in pyproject.toml): what
both need lives here, once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Query
from fastapi import Path as PathParam
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.analysis import pairs_touching
from service.importer import ImportRejected, import_file
from service.jobs import Job
from service.models import Decision, DuplicateGroup, DuplicatePair, Proposal, Topic, TopicMatch
from service.review import decision_dict, latest_suggestions, views
from service.state import AppState

YEAR_MIN, YEAR_MAX = 1900, 2100
# Bounded years: an unbounded int reaches the database and overflows its integer type.
YearPath = Annotated[int, PathParam(ge=YEAR_MIN, le=YEAR_MAX, description="year, e.g. 2024")]
YearQuery = Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX, description="year, e.g. 2024")]
OptionalYearQuery = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]


def get_proposal(session: Session, year: int, pid: str) -> Proposal:
    """The proposal ``pid`` of ``year``, else 404."""
    p = session.scalar(select(Proposal).where(Proposal.year == year, Proposal.pid == pid))
    if p is None:
        raise HTTPException(404, f"no proposal {pid!r} in {year}")
    return p


# -- one proposal ------------------------------------------------------------------------


def proposal_detail(session: Any, p: Proposal) -> dict[str, Any]:
    """Everything the proposal page shows (no proposer: personal data stays in the database)."""
    view = views(session, [p])[0].to_dict()
    s = latest_suggestions(session, [p.id]).get(p.id)
    view.update(
        {
            "content": p.content,
            "time": p.time,
            "extra": p.extra,
            "imported": {"category": p.category, "main_unit": p.main_unit, "co_units": p.co_units},
            "why": s.explanation if s else {},
            "duplicates": duplicates_of(session, p),
            "topics": topics_of(session, p),
            "decisions": [
                decision_dict(d, p.pid, p.year)
                for d in session.scalars(
                    select(Decision).where(Decision.proposal_id == p.id).order_by(Decision.id)
                )
            ],
        }
    )
    return view


def duplicates_of(session: Any, p: Proposal, evidence: bool = False) -> list[dict[str, Any]]:
    """Likely duplicates of ``p`` (this year and earlier), best first, with their handling units."""
    out = []
    for pair in pairs_touching(session, p.id):
        other = session.get(
            Proposal, pair.proposal_b if pair.proposal_a == p.id else pair.proposal_a
        )
        other_view = views(session, [other])[0]
        item: dict[str, Any] = {
            "year": other.year,
            "id": other.pid,
            "title": other.title,
            "score": round(pair.score, 4),
            "kind": pair.kind,
            "category": other_view.current.get("category"),
            "main_unit": other_view.current.get("main_unit"),
            "co_units": other_view.current.get("co_units") or [],
            "merge_group": other_view.current.get("merge_group"),
        }
        if evidence:
            from model.evidence import pair_evidence

            item["content"] = other.content
            item["evidence"] = pair_evidence(p.text, other.text)
        out.append(item)
    return out


def topics_of(session: Any, p: Proposal) -> list[dict[str, Any]]:
    rows = session.execute(
        select(TopicMatch, Topic)
        .join(Topic, Topic.id == TopicMatch.topic_row_id)
        .where(TopicMatch.proposal_id == p.id)
        .order_by(TopicMatch.rank)
    )
    return [{"topic_id": t.topic_id, "topic": t.topic, "score": round(m.score, 4)} for m, t in rows]


# -- a year's merge groups --------------------------------------------------------------


SNIPPET = 80  # characters of a shared passage shown on the 并案 page


def year_groups(session: Session, year: int, *, evidence: bool = False) -> list[dict[str, Any]]:
    """The year's suggested merge groups, representative first, for the 并案 page and the API.

    Each group has its ``label`` (the group id), the ``representative`` and ``members`` (with
    their current merge group and review status), the scored ``pairs`` among its members and,
    with ``evidence``, the passages each member shares with the representative.
    """
    from service.review import views

    groups = list(
        session.scalars(
            select(DuplicateGroup).where(DuplicateGroup.year == year).order_by(DuplicateGroup.id)
        )
    )
    member_ids = {int(m) for g in groups for m in g.members} | {g.representative_id for g in groups}
    if not member_ids:
        return []
    props = {p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(member_ids)))}
    state = {v.row_id: v for v in views(session, list(props.values()))}
    pairs: dict[tuple[int, int], DuplicatePair] = {}
    for found in session.scalars(
        select(DuplicatePair).where(
            or_(
                DuplicatePair.proposal_a.in_(list(member_ids)),
                DuplicatePair.proposal_b.in_(list(member_ids)),
            )
        )
    ):
        key = (min(found.proposal_a, found.proposal_b), max(found.proposal_a, found.proposal_b))
        pairs[key] = found
    out = []
    for g in groups:
        rep = props[g.representative_id]
        members = [int(m) for m in g.members]
        ordered = [rep.id] + [m for m in members if m != rep.id]
        rows = []
        for m in ordered:
            p, v = props[m], state[m]
            row: dict[str, Any] = {
                "year": p.year,
                "id": p.pid,
                "title": p.title,
                "representative": m == rep.id,
                "merge_group": v.current.get("merge_group"),
                "status": v.status,
                "main_unit": v.current.get("main_unit"),
            }
            if m != rep.id:
                pair = pairs.get((min(m, rep.id), max(m, rep.id)))
                row["score"] = round(pair.score, 4) if pair is not None else None
                row["kind"] = pair.kind if pair is not None else None
                if evidence:
                    row["evidence"] = _evidence(rep.text, p.text)
            rows.append(row)
        scores = [
            round(pr.score, 4)
            for (a, b), pr in pairs.items()
            if a in set(members) | {rep.id} and b in set(members) | {rep.id}
        ]
        same_year = [r for r in rows if r["year"] == year]
        merged = {r["merge_group"] for r in same_year}
        out.append(
            {
                "label": g.label,
                "representative": {"year": rep.year, "id": rep.pid, "title": rep.title},
                "members": rows,
                "pairs": len(scores),
                "best_score": max(scores) if scores else None,
                "min_score": min(scores) if scores else None,
                # Merges are recorded within a year: earlier years' members are references.
                "mergeable": len(same_year) >= 2,
                "merged": len(same_year) >= 2 and len(merged) == 1 and None not in merged,
            }
        )
    return out


def _evidence(a: str, b: str) -> dict[str, Any]:
    """Shared passages of two texts, as short snippets with their total length."""
    from model.evidence import pair_evidence

    passages = pair_evidence(a, b)["passages"]
    snippets = []
    for x in passages[:3]:
        # A passage may start or end on a mark (overlap is found on characters): trim them.
        text = a[x["a_start"] : x["a_end"]].strip("，。；、：！？,.;:!? \n")
        snippets.append(text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…")
    return {
        "shared_chars": sum(x["a_end"] - x["a_start"] for x in passages),
        "passages": snippets,
    }


# -- a year's topic coverage ------------------------------------------------------------


def coverage_report(session: Any, year: int, threshold: float | None = None) -> dict[str, Any]:
    """How many of the year's proposals answer each topic (``model.topics.coverage``).

    A proposal counts as answering a topic when a reviewer confirmed or assigned it, else when
    the model's score reaches the fitted cut-off (``model.topics.DEFAULT_WEIGHTS.threshold``).
    Whether it answers none is the matcher's stored verdict (matches stored before the verdict
    was kept: no topic reaching the cut-off).
    """
    from model.topics import DEFAULT_WEIGHTS, coverage
    from model.topics import Topic as ModelTopic
    from model.topics import TopicMatch as ModelMatch
    from service.topic_review import confirmed_topics

    if threshold is None:
        threshold = DEFAULT_WEIGHTS.threshold
    topics = list(session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.topic_id)))
    by_row = {t.id: t.topic_id for t in topics}
    props = {p.id: p.pid for p in session.scalars(select(Proposal).where(Proposal.year == year))}
    ranked: dict[int, list[tuple[str, float]]] = {pid: [] for pid in props}
    verdict: dict[int, bool] = {}  # the matcher's stored "no topic"
    if props:
        rows = session.scalars(
            select(TopicMatch)
            .where(TopicMatch.proposal_id.in_(list(props)))
            .order_by(TopicMatch.rank)
        )
        for m in rows:
            if m.topic_row_id in by_row:
                ranked[m.proposal_id].append((by_row[m.topic_row_id], m.score))
                if m.no_topic is not None:
                    verdict[m.proposal_id] = m.no_topic
    known = set(by_row.values())
    confirmed = {
        props[i]: [t for t in ids if t in known]
        for i, ids in confirmed_topics(session, list(props)).items()
    }
    matches = [
        ModelMatch(props[i], r, no_topic=verdict.get(i, not r or r[0][1] < threshold))
        for i, r in ranked.items()
        if r
    ]
    report = coverage(
        matches,
        [ModelTopic(t.topic_id, t.topic) for t in topics],
        threshold=threshold,
        confirmed=confirmed,
    )
    report["year"] = year
    report["proposals_not_matched_yet"] = sum(
        1 for i, r in ranked.items() if not r and props[i] not in confirmed
    )
    return report


# -- import and analysis jobs -----------------------------------------------------------


def model_labels(state: AppState) -> dict[str, list[str]]:
    """The live model's label sets (empty without a live model)."""
    live = state.runtime.current
    labels = getattr(live.classifier, "labels", None) if live is not None else None
    return dict(labels) if isinstance(labels, dict) else {}


def run_import(
    state: AppState, path: Path, name: str, user_id: int, year: int | None, update: bool, job: Job
) -> dict[str, Any]:
    """The import job: store the file, then queue the follow-up analysis. Removes ``path``."""
    try:
        result = import_file(
            state.factory,
            path,
            file_name=name,
            user_id=user_id,
            default_year=year,
            update=update,
            progress=lambda done, total, msg: job.progress(done, total, msg),
            known_labels=model_labels(state),
            timeout_s=state.settings.import_timeout_s,
            memory_mb=state.settings.import_memory_mb,
            job_id=job.id if job.id > 0 else None,
        )
    except ImportRejected as exc:
        job.result = rejection(exc)
        raise
    finally:
        path.unlink(missing_ok=True)
    out = result.to_dict()
    if result.changed_ids:
        # The follow-up is the system's, not the user's: it never counts against their limit.
        out["analysis_job"] = queue_analysis(
            state, result.years, result.changed_ids, limited=False
        ).id
    return out


def queue_analysis(
    state: AppState,
    years: list[int],
    ids: list[int] | None,
    *,
    owner_id: int | None = None,
    limited: bool = True,
) -> Job:
    """Queue suggestions, duplicates and topics for ``years`` (after an import or promotion).

    A reviewer's own request counts against their job limit (429 past it); the analysis an
    import queues for itself (``limited=False``) does not.
    """
    from service.analysis import analyse

    def work(job: Job) -> dict[str, Any]:
        return analyse(
            state.factory,
            state.runtime,
            state.encoders,
            years=years,
            proposal_ids=ids,
            threshold=state.settings.dedup_threshold,
            job=job,
        )

    return state.jobs.submit("analysis", work, owner_id, limited=limited)


def rejection(exc: ImportRejected) -> dict[str, Any]:
    """The body of a 422 and the ``result`` of a rejected import job (Chinese messages)."""
    return {
        "detail": exc.user_message,
        "code": "import_rejected",
        "file_name": exc.file_name,
        "errors": [i.to_dict() for i in exc.issues],
        "more_errors": exc.more,
    }


def submit_import(
    state: AppState, path: Path, name: str, user_id: int, year: int | None, update: bool
) -> Job:
    """Queue an import job (429 past the user's job limit; the upload is then removed)."""
    try:
        return state.jobs.submit(
            "import", lambda j: run_import(state, path, name, user_id, year, update, j), user_id
        )
    except HTTPException:
        path.unlink(missing_ok=True)
        raise
