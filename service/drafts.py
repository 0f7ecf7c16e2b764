"""The service side of the draft check (提案预审), shared by the page and the JSON API.

A check reads what the office already holds (stored proposals with their cached passage
vectors, reference topics, the live model) and returns what the writer may see: form
remarks, similar proposals (year, 案由, handling unit, state; never the proposer), topics and
the likely category and unit. It writes nothing: the draft is not stored, not encoded into
the vector cache, and the log line holds only sizes and timings, never the text.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import DuplicateGroup, Embedding, Proposal, Topic
from service.state import AppState
from service.vector_store import store_for

if TYPE_CHECKING:  # types only: loading them at import would pull in the model stack
    from model.encoder import TextEncoder

log = logging.getLogger("tian.service.drafts")

SIMILAR_K = 5
# Past proposals scored by the duplicate scorer per check (nearest by cosine first).
SHORTLIST = 12
TOPICS_K = 3
MAX_TITLE = 200
MAX_CONTENT = 20_000
STATE_TEXT = {"registered": "已立案", "merged": "已并案", "replied": "已答复"}
# Extra columns an office's table may carry for a reply (答复); any non-empty one means replied.
REPLY_FIELDS = ("答复", "答复情况", "答复时间", "办理结果", "办理答复", "reply")

_topic_cache: dict[tuple[str, int, str], np.ndarray] = {}
_vector_cache: dict[str, tuple[str, list[int], np.ndarray]] = {}
_cache_lock = threading.Lock()


class DraftError(ValueError):
    """A draft that cannot be checked (message in Chinese)."""


def _state(p: Proposal, merged: bool) -> str:
    extra = p.extra or {}
    if any(str(extra.get(k) or "").strip() for k in REPLY_FIELDS):
        return "replied"
    return "merged" if merged else "registered"


def _merged_ids(session: Session, ids: list[int]) -> set[int]:
    """Proposals merged into another one (members of a 并案 group that do not represent it)."""
    out: set[int] = set()
    for g in session.scalars(select(DuplicateGroup)):
        out.update(int(m) for m in g.members or [] if int(m) != g.representative_id)
    from service.review import views

    if ids:
        rows = list(session.scalars(select(Proposal).where(Proposal.id.in_(ids))))
        out.update(v.row_id for v in views(session, rows) if v.current.get("merge_group"))
    return out


def _past_vectors(session: Session, encoder_name: str) -> tuple[list[int], np.ndarray]:
    """Ids and cached passage vectors of every stored proposal, kept between checks.

    The (id, text hash) list is read each time (cheap) and the vectors only when it
    changed, so a re-encoded or new proposal is never missed and a check does not parse
    thousands of blobs.
    """
    keys = session.execute(
        select(Embedding.proposal_id, Embedding.text_hash)
        .where(Embedding.encoder == encoder_name)
        .order_by(Embedding.proposal_id)
    ).all()
    signature = hashlib.sha256(repr([tuple(k) for k in keys]).encode()).hexdigest()
    with _cache_lock:
        hit = _vector_cache.get(encoder_name)
    if hit is not None and hit[0] == signature:
        return hit[1], hit[2]
    rows = session.execute(
        select(Embedding.proposal_id, Embedding.vector)
        .where(Embedding.encoder == encoder_name)
        .order_by(Embedding.proposal_id)
    ).all()
    ids = [int(r[0]) for r in rows]
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    with _cache_lock:
        _vector_cache[encoder_name] = (signature, ids, matrix)
    return ids, matrix


def _similar(
    session: Session, encoder: TextEncoder, title: str, content: str, vector: np.ndarray
) -> list[dict[str, Any]]:
    from model.draft_check import rank_similar

    # Only the shortlist's texts are read: the cosine comes from the process's vector index.
    hits = store_for(session).nearest(session, encoder.name, vector, SHORTLIST)
    if not hits.proposal_ids:
        return []
    props = {
        p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(hits.proposal_ids)))
    }
    keep = [n for n, i in enumerate(hits.proposal_ids) if i in props]
    shortlist = [props[hits.proposal_ids[n]] for n in keep]
    ranked = rank_similar(
        title,
        content,
        vector,
        [p.title or "" for p in shortlist],
        [p.content or "" for p in shortlist],
        hits.vectors[keep],
        k=SIMILAR_K,
        shortlist=SHORTLIST,
    )
    chosen = [shortlist[i] for i, _, _ in ranked]
    merged = _merged_ids(session, [p.id for p in chosen])
    from service.review import views

    current = {v.row_id: v.current for v in views(session, chosen)}
    out = []
    for (_, score, cosine), p in zip(ranked, chosen, strict=True):
        state = _state(p, p.id in merged)
        out.append(
            {
                "year": p.year,
                "id": p.pid,
                "title": p.title,
                "main_unit": current[p.id].get("main_unit"),
                "category": current[p.id].get("category"),
                "state": state,
                "state_text": STATE_TEXT[state],
                "score": round(float(score), 4),
                "cosine": round(float(cosine), 4),
            }
        )
    return out


def _topic_vectors(encoder: TextEncoder, year: int, topics: list[Topic]) -> np.ndarray:
    # Topics change once a year: encode them once per encoder and list, not per check.
    key = (encoder.name, year, "\n".join(t.topic for t in topics))
    with _cache_lock:
        hit = _topic_cache.get(key)
    if hit is None:
        hit = np.asarray(encoder.encode([t.topic for t in topics], kind="query"), np.float32)
        with _cache_lock:
            if len(_topic_cache) > 8:
                _topic_cache.clear()
            _topic_cache[key] = hit
    return hit


def _topics(
    session: Session, encoder: TextEncoder, text: str, vector: np.ndarray
) -> dict[str, Any]:
    from model.topics import Topic as ModelTopic
    from model.topics import match_topics

    year = session.scalar(select(func.max(Topic.year)))
    if year is None:
        return {"year": None, "matches": [], "no_topic": None}
    topics = list(session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.id)))
    t_vecs = _topic_vectors(encoder, int(year), topics)
    # The score ranks the draft among the year's proposals for each topic (rank_in_topic):
    # pass theirs as context, or a lone draft would be every topic's best match.
    ids, matrix = _past_vectors(session, encoder.name)
    year_ids = set(session.scalars(select(Proposal.id).where(Proposal.year == year)))
    context = matrix[[n for n, i in enumerate(ids) if i in year_ids]] if ids else None
    match = match_topics(
        ["draft"],
        [text],
        vector[None, :],
        [ModelTopic(str(i), t.topic) for i, t in enumerate(topics)],
        t_vecs,
        top_k=TOPICS_K,
        context_vectors=context,
    )[0]
    return {
        "year": int(year),
        "matches": [
            {
                "topic_id": topics[int(i)].topic_id,
                "topic": topics[int(i)].topic,
                "score": round(s, 4),
            }
            for i, s in match.topics
        ],
        "no_topic": match.no_topic,
    }


def _classify(state: AppState, text: str) -> dict[str, Any] | None:
    from model.suggest import suggest
    from service.review_state import joint_confidence, open_flags

    live = state.runtime.current
    if live is None:
        return None
    row = suggest(live.classifier, ["draft"], [text], top_k=3)[0]
    found = row.get("review")
    review: dict[str, Any] = found if isinstance(found, dict) else {}
    flags = open_flags(row, ())
    return {
        "model_version": live.version,
        "category": row.get("category") or [],
        "main_unit": row.get("main_unit") or [],
        "co_units": row.get("co_units") or [],
        "confidence": joint_confidence(row),
        "flag": bool(review.get("flag")) if "flag" in review else bool(flags),
        "reasons": list(review.get("reasons") or flags),
    }


def usual_length(session: Session) -> tuple[int, int]:
    """The office's usual content length (10th–90th percentile of stored proposals)."""
    from model.draft_check import length_range

    lengths = session.scalars(select(func.length(Proposal.content))).all()
    return length_range([int(n or 0) for n in lengths])


def check_draft(
    state: AppState, session: Session, title: str, content: str, *, user_id: int | None = None
) -> dict[str, Any]:
    """Check one draft; nothing is stored and nothing of its text is logged.

    Raises DraftError for an empty or oversized draft.
    """
    from model.draft_check import form_remarks

    started = time.perf_counter()
    title, content = (title or "").strip(), (content or "").strip()
    if not title and not content:
        raise DraftError("请填写案由和提案内容。")
    if len(title) > MAX_TITLE or len(content) > MAX_CONTENT:
        raise DraftError(f"案由最多 {MAX_TITLE} 字，提案内容最多 {MAX_CONTENT} 字。")
    text = "\n".join(part for part in (title, content) if part)
    span = usual_length(session)
    result: dict[str, Any] = {
        "form": [r.to_dict() for r in form_remarks(title, content, span)],
        "length": {"chars": len(content), "usual": list(span)},
        "similar": [],
        "topics": {"year": None, "matches": [], "no_topic": None},
        "suggestion": _classify(state, text),
        "notices": [],
    }
    encoder = state.encoders.get()
    if encoder is None:
        result["notices"].append("文本编码器未启用，暂不能查找相似提案和参考题目。")
    else:
        vector = np.asarray(encoder.encode([text], kind="passage")[0], dtype=np.float32)
        result["similar"] = _similar(session, encoder, title, content, vector)
        result["topics"] = _topics(session, encoder, text, vector)
        if not result["similar"]:
            result["notices"].append("尚无可比对的已存提案（导入后完成分析即可比对）。")
    if result["suggestion"] is None:
        result["notices"].append("尚未部署模型，暂不提供类别和承办单位建议。")
    elapsed = time.perf_counter() - started
    result["elapsed_ms"] = round(elapsed * 1000)
    # Sizes and timings only: the draft's words never reach the log.
    log.info(
        "draft check user=%s chars=%d remarks=%d similar=%d ms=%d",
        user_id,
        len(text),
        len(result["form"]),
        len(result["similar"]),
        result["elapsed_ms"],
    )
    return result
