"""Similar proposals of earlier years, and the units that handled them.

Uses the passage vectors the analysis already cached (``embeddings``), so showing them costs a
matrix product, never an encoder call. Without cached vectors the list is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Embedding, Proposal


def similar_past(session: Session, proposal: Proposal, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` earlier-year proposals nearest to ``proposal`` (cosine), best first."""
    from service.review import views

    own = session.scalar(select(Embedding).where(Embedding.proposal_id == proposal.id).limit(1))
    if own is None:
        return []
    rows = session.execute(
        select(Embedding.proposal_id, Embedding.vector)
        .join(Proposal, Proposal.id == Embedding.proposal_id)
        .where(Embedding.encoder == own.encoder, Proposal.year < proposal.year)
    ).all()
    if not rows:
        return []
    query = np.frombuffer(own.vector, dtype=np.float32)
    matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
    scores = matrix @ query
    best = np.argsort(-scores)[:k]
    ids = [int(rows[i][0]) for i in best]
    by_id = {p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(ids)))}
    found = views(session, [by_id[i] for i in ids])
    return [
        {
            "year": v.year,
            "id": v.pid,
            "title": v.title,
            "similarity": round(float(scores[i]), 4),
            "category": v.current.get("category"),
            "main_unit": v.current.get("main_unit"),
            "co_units": v.current.get("co_units") or [],
        }
        for i, v in zip(best, found, strict=True)
    ]
