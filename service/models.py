"""ORM tables (SQLAlchemy 2, typed declarative). The schema itself is made by Alembic.

Reviewer decisions are an append-only audit trail: the ORM refuses to update or delete them,
and the migration adds database triggers that refuse it too. A proposal's current labels are
derived from its latest decisions (see :mod:`service.review`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "reviewer", "viewer", "member")  # member: draft check only
DECISION_FIELDS = ("category", "main_unit", "co_units", "merge_group")
DECISION_ACTIONS = ("accept", "set", "merge", "unmerge")


def utcnow() -> dt.datetime:
    """Timezone-aware now (stored as UTC)."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    user: Mapped[User] = relationship()


class AuthSession(Base):
    """A signed-in browser session; the cookie holds the id, the database only its SHA-256."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SigninFailure(Base):
    """Recent failed sign-ins of one (username, address) key; ``*`` stands for any."""

    __tablename__ = "signin_failures"
    __table_args__ = (UniqueConstraint("username", "address", name="uq_signin_failures_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)


class ImportBatch(Base):
    """One accepted upload (rejected uploads store nothing)."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Proposal(Base):
    """One proposal of one year; (year, pid) is unique. ``proposer`` is personal data."""

    __tablename__ = "proposals"
    __table_args__ = (UniqueConstraint("year", "pid", name="uq_proposals_year_pid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    pid: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    proposer: Mapped[str | None] = mapped_column(Text, default=None)
    category: Mapped[str | None] = mapped_column(String(200), default=None)
    main_unit: Mapped[str | None] = mapped_column(String(200), default=None)
    co_units: Mapped[list[Any]] = mapped_column(JSON, default=list)
    time: Mapped[str | None] = mapped_column(String(40), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Extra columns that look like personal data (model.records.is_personal_header): like the
    # proposer, stored but never shown or exported.
    personal: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:  # never shows the proposer
        return f"Proposal(year={self.year!r}, pid={self.pid!r})"

    @property
    def text(self) -> str:
        """Title and content joined as the model reads them."""
        return "\n".join(part for part in (self.title, self.content) if part)


class JobRecord(Base):
    """A background job (import, analysis) as every worker sees it; see :mod:`service.jobs`."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True, default=None)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker: Mapped[str] = mapped_column(String(100), default="")  # host:pid:token
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Topic(Base):
    """One reference topic (提案参考题目) of a year."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("year", "topic_id", name="uq_topics_year_topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    topic_id: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """A model version the service has used for suggestions."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Suggestion(Base):
    """What one model version suggested for one proposal (the `tian predict` row)."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model_version: Mapped[ModelVersion] = relationship()


class Decision(Base):
    """One reviewer decision; append-only (never updated or deleted)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(16))
    field: Mapped[str] = mapped_column(String(32))
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    previous_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    suggestion_id: Mapped[int | None] = mapped_column(ForeignKey("suggestions.id"), default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship()


class Embedding(Base):
    """Cached passage vector of a proposal's text for one encoder."""

    __tablename__ = "embeddings"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), primary_key=True)
    encoder: Mapped[str] = mapped_column(String(300), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class DuplicatePair(Base):
    """A likely duplicate pair found by the analysis (derived data, recomputed per year)."""

    __tablename__ = "duplicate_pairs"
    __table_args__ = (UniqueConstraint("proposal_a", "proposal_b", name="uq_duplicate_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    proposal_a: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    proposal_b: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))


class DuplicateGroup(Base):
    """A suggested merge group (并案 candidate); ``members`` holds proposal row ids."""

    __tablename__ = "duplicate_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, index=True)
    label: Mapped[str] = mapped_column(String(100))
    representative_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"))
    members: Mapped[list[Any]] = mapped_column(JSON)


class TopicMatch(Base):
    """A ranked reference topic for a proposal (derived data)."""

    __tablename__ = "topic_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    topic_row_id: Mapped[int] = mapped_column(ForeignKey("topics.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    # The matcher's verdict for the whole proposal (same on each of its rows); None: stored
    # before the verdict was kept, read as "no topic reaches the cut-off".
    no_topic: Mapped[bool | None] = mapped_column(Boolean, default=None)


class AppendOnlyError(RuntimeError):
    """Raised on an attempt to rewrite the decision audit trail."""


@event.listens_for(Decision, "before_update")
def _no_update(mapper: Any, connection: Any, target: Decision) -> None:
    raise AppendOnlyError("decisions are append-only: record a new decision instead")


@event.listens_for(Decision, "before_delete")
def _no_delete(mapper: Any, connection: Any, target: Decision) -> None:
    raise AppendOnlyError("decisions are append-only: they are never deleted")
