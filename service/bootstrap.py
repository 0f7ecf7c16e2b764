"""Getting a service ready before it serves: demo admin, imports, topics, analysis.

``tian serve --import FILE --topics FILE --demo-admin`` calls these so that ``make run`` ends
with the service running on the demo data. Everything here is idempotent: running it again
imports nothing new, keeps stored topics, and only computes what is missing.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Topic, User
from service.state import AppState

DEMO_USER = "demo"


def store_topics(session: Session, year: int, topics: Sequence[Any]) -> tuple[int, int]:
    """Add or update a year's reference topics (the caller commits); returns (added, updated)."""
    existing = {t.topic_id: t for t in session.scalars(select(Topic).where(Topic.year == year))}
    added = changed = 0
    for t in topics:
        row = existing.get(t.topic_id)
        if row is None:
            session.add(Topic(year=year, topic_id=t.topic_id, topic=t.topic))
            added += 1
        elif row.topic != t.topic:
            row.topic = t.topic
            changed += 1
    return added, changed


def ensure_demo_admin(state: AppState, password: str | None = None) -> tuple[int, str]:
    """Create (or reset) the admin ``demo`` with a fresh random password; returns (id, password).

    Only for development: a fixed, printed sign-in must never exist in production.
    """
    from service.auth import create_user, hash_password

    if state.settings.environment != "development":
        raise ValueError("a demo admin is only allowed when TIAN_ENVIRONMENT=development")
    password = password or secrets.token_urlsafe(9)
    with state.factory() as session, session.begin():
        user = session.scalar(select(User).where(User.username == DEMO_USER))
        if user is None:
            user = create_user(session, DEMO_USER, password, "admin")
        else:
            # Reset so that the sign-in printed at every start works.
            user.password_hash = hash_password(password)
            user.role, user.active = "admin", True
        return user.id, password


def prepare(
    state: AppState,
    *,
    user_id: int,
    imports: Sequence[Path] = (),
    topics: Path | None = None,
    topics_year: int | None = None,
    log: Any = None,
    job: Any = None,
) -> dict[str, Any]:
    """Import files (all or nothing each), load topics, then suggest, dedup and match topics.

    Raises ``service.importer.ImportRejected`` for a bad file and ``ValueError`` for bad topics.
    """
    from model.topics import read_topics
    from service.analysis import analyse
    from service.importer import import_file

    say = log or (lambda message: None)
    years: set[int] = set()
    out: dict[str, Any] = {"imports": []}
    for path in imports:
        result = import_file(state.factory, Path(path), file_name=Path(path).name, user_id=user_id)
        years.update(result.years)
        out["imports"].append(result.to_dict())
        say(
            f"imported {Path(path).name}: {result.added} added, {result.updated} updated, "
            f"{result.unchanged} unchanged"
        )
    if topics is not None:
        if topics_year is None:
            raise ValueError("--topics needs --topics-year")
        with state.factory() as session, session.begin():
            added, changed = store_topics(session, topics_year, read_topics(topics))
        years.add(topics_year)
        say(f"topics {Path(topics).name} for {topics_year}: {added} added, {changed} updated")
    if years:
        say(f"analysing {', '.join(map(str, sorted(years)))} (suggestions, duplicates, topics)")
        out["analysis"] = analyse(
            state.factory,
            state.runtime,
            state.encoders,
            years=sorted(years),
            threshold=state.settings.dedup_threshold,
            job=job,  # anything with progress(done, total, message), done and total
        )
    return out
