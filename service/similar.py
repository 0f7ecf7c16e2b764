"""Similar proposals of earlier years, and the units that handled them.

Uses the passage vectors the analysis already cached (``embeddings``) through the process's
vector store (:mod:`service.vector_store`), so showing them costs one small query and a search,
never an encoder call nor a decode of every vector. Without cached vectors the list is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Embedding, Proposal
from service.vector_store import store_for


def similar_past(session: Session, proposal: Proposal, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` earlier-year proposals nearest to ``proposal`` (cosine), best first."""
    from service.review import views

    own = session.scalar(select(Embedding).where(Embedding.proposal_id == proposal.id).limit(1))
    if own is None:
        return []
    hits = store_for(session).nearest(
        session,
        own.encoder,
        np.frombuffer(own.vector, dtype=np.float32),
        k,
        before_year=proposal.year,
    )
    if not hits.proposal_ids:
        return []
    by_id = {
        p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(hits.proposal_ids)))
    }
    found = views(session, [by_id[i] for i in hits.proposal_ids])
    return [
        {
            "year": v.year,
            "id": v.pid,
            "title": v.title,
            "similarity": round(float(score), 4),
            "category": v.current.get("category"),
            "main_unit": v.current.get("main_unit"),
            "co_units": v.current.get("co_units") or [],
        }
        for score, v in zip(hits.scores, found, strict=True)
    ]
