"""What the service computes after an import: suggestions, likely duplicates, topic matches.

Runs as a background job. Suggestions come from the live model (``model.suggest``), duplicate
pairs and merge groups from ``model.dedup`` / ``model.grouping`` over this year and earlier
years, topic matches from ``model.topics``. Passage vectors are cached in the database per
encoder and text, so a new import only encodes the new proposals.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs import Job
from service.models import (
    DuplicateGroup,
    DuplicatePair,
    Embedding,
    ModelVersion,
    Proposal,
    Suggestion,
    Topic,
    TopicMatch,
)
from service.registry_runtime import LiveModel, ModelRuntime

if TYPE_CHECKING:  # types only: loading them at import would pull in the model stack
    from model.encoder import TextEncoder
    from model.suggest import Suggestion as SuggestionRow

log = logging.getLogger("tian.service.analysis")

TOPICS_PER_PROPOSAL = 5
EXPLAIN_WORDS = 8


class EncoderHolder:
    """Loads the text encoder on first use (it is slow to load and not always needed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._encoder: TextEncoder | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.name.lower() != "none"

    def get(self) -> TextEncoder | None:
        """The encoder, or None when switched off or unloadable (``error`` says why)."""
        if not self.enabled:
            return None
        with self._lock:
            if self._encoder is None and self.error is None:
                from model.encoder import load_encoder

                try:
                    self._encoder = load_encoder(self.name)
                except Exception as exc:
                    self.error = f"text encoder {self.name!r} could not be loaded: {exc}"
                    log.error("%s", self.error)
            return self._encoder

    def set(self, encoder: TextEncoder) -> None:
        """Use an already loaded encoder (tests)."""
        self._encoder = encoder


# ---------------------------------------------------------------------------------------
# Suggestions


def model_version_row(session: Session, live: LiveModel) -> ModelVersion:
    """The model_versions row for ``live``, created on first use."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == live.version))
    if row is None:
        row = ModelVersion(version=live.version, kind=live.kind, manifest=live.manifest)
        session.add(row)
        session.flush()
    return row


def explanation(live: LiveModel, text: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Words that drove the top category and main unit, per head (whole words and phrases)."""
    from model.keywords import whole_words

    out: dict[str, Any] = {}
    for head in ("category", "main_unit"):
        ranked = payload.get(head) or []
        if ranked:
            # Ask for more terms than shown: character n-grams are dropped (whole words only).
            terms = live.explain(text, head, ranked[0]["label"], EXPLAIN_WORDS * 5)
            words = whole_words(text, terms, EXPLAIN_WORDS)
            out[head] = [{"word": w, "weight": round(float(s), 4)} for w, s in words]
    return out


def suggest_texts(
    live: LiveModel, ids: Sequence[str], texts: Sequence[str], top_k: int = 3
) -> list[SuggestionRow]:
    """`tian predict` rows for texts, with explanations under ``"why"``."""
    from model.suggest import suggest

    rows = suggest(live.classifier, list(ids), list(texts), top_k=top_k)
    for row, text in zip(rows, texts, strict=True):
        row["why"] = explanation(live, text, row)
    return rows


def store_suggestions(
    factory: sessionmaker[Session],
    runtime: ModelRuntime,
    proposal_ids: Sequence[int] | None = None,
    *,
    job: Job | None = None,
    only_missing: bool = True,
    batch: int = 64,
) -> int:
    """Suggest for proposals (all when ``proposal_ids`` is None) with the live model.

    With ``only_missing`` a proposal that already has a suggestion from this model version is
    skipped. Returns how many suggestions were stored (0 without a live model).
    """
    live = runtime.current
    if live is None:
        return 0
    with factory() as session, session.begin():
        version = model_version_row(session, live)
        query = select(Proposal.id)
        if proposal_ids is not None:
            query = query.where(Proposal.id.in_(list(proposal_ids)))
        wanted = list(session.scalars(query.order_by(Proposal.id)))
        if only_missing:
            have = set(
                session.scalars(
                    select(Suggestion.proposal_id).where(Suggestion.model_version_id == version.id)
                )
            )
            wanted = [i for i in wanted if i not in have]
        version_id = version.id
    stored = 0
    for start in range(0, len(wanted), batch):
        part = wanted[start : start + batch]
        with factory() as session, session.begin():
            props = list(session.scalars(select(Proposal).where(Proposal.id.in_(part))))
            rows = suggest_texts(live, [p.pid for p in props], [p.text for p in props])
            for p, row in zip(props, rows, strict=True):
                why = row.pop("why", {})
                session.add(
                    Suggestion(
                        proposal_id=p.id,
                        model_version_id=version_id,
                        payload=row,
                        explanation=why,
                    )
                )
        stored += len(part)
        if job is not None:
            job.progress(stored, len(wanted), "正在生成建议")
    return stored


# ---------------------------------------------------------------------------------------
# Vectors


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vectors_for(session: Session, encoder: TextEncoder, props: Sequence[Proposal]) -> np.ndarray:
    """Passage vectors for proposals, encoding only those not cached for this encoder/text."""
    cached = {
        e.proposal_id: e
        for e in session.scalars(
            select(Embedding).where(
                Embedding.encoder == encoder.name,
                Embedding.proposal_id.in_([p.id for p in props]),
            )
        )
    }
    out = np.zeros((len(props), encoder.dim), dtype=np.float32)
    todo = []
    for i, p in enumerate(props):
        hit = cached.get(p.id)
        if hit is not None and hit.text_hash == _text_hash(p.text):
            out[i] = np.frombuffer(hit.vector, dtype=np.float32)
        else:
            todo.append(i)
    if todo:
        vecs = encoder.encode([props[i].text for i in todo], kind="passage")
        for i, vec in zip(todo, vecs, strict=True):
            out[i] = vec
            p = props[i]
            blob = np.asarray(vec, dtype=np.float32).tobytes()
            row = cached.get(p.id)
            if row is None:
                session.add(
                    Embedding(
                        proposal_id=p.id,
                        encoder=encoder.name,
                        text_hash=_text_hash(p.text),
                        vector=blob,
                    )
                )
            else:
                row.text_hash, row.vector = _text_hash(p.text), blob
    return out


# ---------------------------------------------------------------------------------------
# Duplicates


def find_duplicates(
    factory: sessionmaker[Session],
    encoder: TextEncoder,
    year: int,
    *,
    threshold: float | None = None,
) -> dict[str, int]:
    """Recompute the year's likely duplicate pairs (also against earlier years) and groups.

    `threshold` defaults to the shipped scorer's own (chosen on real labelled pairs).
    """
    from model.duplicates import find_duplicates

    with factory() as session, session.begin():
        data = list(
            session.scalars(select(Proposal).where(Proposal.year == year).order_by(Proposal.id))
        )
        earlier = list(
            session.scalars(select(Proposal).where(Proposal.year < year).order_by(Proposal.id))
        )
        everything = data + earlier
        session.execute(delete(DuplicatePair).where(DuplicatePair.year == year))
        session.execute(delete(DuplicateGroup).where(DuplicateGroup.year == year))
        if len(everything) < 2 or not data:
            return {"pairs": 0, "groups": 0}
        vectors = vectors_for(session, encoder, everything)
        rank = {str(p.id): (p.year, p.id) for p in everything}
        # The same search as `tian dedup`, keyed by the proposals' own ids (提案号) so that
        # group ids ("G-" + representative) match the command line's; numbers that restart
        # each year are told apart by their year.
        keys = [p.pid for p in everything]
        if len(set(keys)) < len(keys):
            keys = [f"{p.year}/{p.pid}" for p in everything]
        by_pid = dict(zip(keys, everything, strict=True))
        key_of = {p.id: k for k, p in by_pid.items()}
        found = find_duplicates(
            keys,
            [p.title or "" for p in everything],
            [p.content or "" for p in everything],
            vectors,
            n_data=len(data),
            order={
                key_of[p.id]: i
                for i, p in enumerate(sorted(everything, key=lambda p: rank[str(p.id)]))
            },
            threshold=threshold,
        )
        for s in found.flagged:
            a, b = sorted((by_pid[s.id_a].id, by_pid[s.id_b].id))
            session.add(
                DuplicatePair(year=year, proposal_a=a, proposal_b=b, score=s.score, kind=s.kind)
            )
        for g in found.groups:
            session.add(
                DuplicateGroup(
                    year=year,
                    label=g.group_id,
                    representative_id=by_pid[g.representative].id,
                    members=[by_pid[m].id for m in g.members],
                )
            )
        return {"pairs": len(found.flagged), "groups": len(found.groups)}


# ---------------------------------------------------------------------------------------
# Topics


def match_year_topics(
    factory: sessionmaker[Session], encoder: TextEncoder, year: int
) -> dict[str, int]:
    """Recompute topic matches of the year's proposals against the year's reference topics."""
    from model.topics import Topic as ModelTopic
    from model.topics import match_topics

    with factory() as session, session.begin():
        topics = list(session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.id)))
        props = list(
            session.scalars(select(Proposal).where(Proposal.year == year).order_by(Proposal.id))
        )
        ids = [p.id for p in props]
        if ids:
            session.execute(delete(TopicMatch).where(TopicMatch.proposal_id.in_(ids)))
        if not topics or not props:
            return {"matched": 0}
        p_vecs = vectors_for(session, encoder, props)
        t_vecs = encoder.encode([t.topic for t in topics], kind="query")
        matches = match_topics(
            [str(i) for i in ids],
            [p.text for p in props],
            p_vecs,
            [ModelTopic(str(t.id), t.topic) for t in topics],
            t_vecs,
            top_k=TOPICS_PER_PROPOSAL,
        )
        for m in matches:
            for rank, (topic_row, score) in enumerate(m.topics, start=1):
                session.add(
                    TopicMatch(
                        proposal_id=int(m.id),
                        topic_row_id=int(topic_row),
                        score=score,
                        rank=rank,
                        no_topic=m.no_topic,
                    )
                )
        return {"matched": len(matches)}


# ---------------------------------------------------------------------------------------
# The whole follow-up


def analyse(
    factory: sessionmaker[Session],
    runtime: ModelRuntime,
    encoders: EncoderHolder,
    *,
    years: Sequence[int],
    proposal_ids: Sequence[int] | None = None,
    threshold: float | None = None,
    job: Job | None = None,
) -> dict[str, Any]:
    """Suggestions for ``proposal_ids`` (None: all missing), then duplicates and topics per year."""
    result: dict[str, Any] = {
        "suggestions": store_suggestions(factory, runtime, proposal_ids, job=job)
    }
    encoder = encoders.get()
    if encoder is None:
        result["notice"] = encoders.error or "duplicate and topic search are switched off"
        return result
    for year in sorted(set(years)):
        if job is not None:
            job.progress(job.done, job.total, f"{year} 年：查找重复提案")
        result[f"duplicates_{year}"] = find_duplicates(factory, encoder, year, threshold=threshold)
        if job is not None:
            job.progress(job.done, job.total, f"{year} 年：匹配参考题目")
        result[f"topics_{year}"] = match_year_topics(factory, encoder, year)
    return result


def pairs_touching(session: Session, proposal_id: int) -> list[DuplicatePair]:
    """Likely duplicate pairs that include a proposal, best first."""
    return list(
        session.scalars(
            select(DuplicatePair)
            .where(
                or_(
                    DuplicatePair.proposal_a == proposal_id, DuplicatePair.proposal_b == proposal_id
                )
            )
            .order_by(DuplicatePair.score.desc())
        )
    )
