"""Response models of the API: what /docs and /openapi.json show, and what the schema fuzz test
checks every answer against.

The routes build plain dicts (shared with the pages); these models describe them. Every model
allows extra keys (``Out``), so a key added to a dict later reaches clients rather than being
silently dropped, and the routes whose objects have optional keys answer with
``response_model_exclude_unset`` so an absent key stays absent instead of turning into null.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """Base of every response model: extra keys pass through unchanged."""

    model_config = ConfigDict(extra="allow")


# -- health ------------------------------------------------------------------------------


class HealthOut(Out):
    status: str


class ReadyOut(Out):
    status: str = Field(description="ready, or not ready (503)")
    database: str
    model: str | None = Field(description="the live model version; null when none is deployed")
    notice: str | None


# -- suggestions (the `tian predict` row, model.suggest.Suggestion) ------------------------


class RankedOut(Out):
    label: str
    score: float = Field(description="calibrated probability")


class HeadAbstainOut(Out):
    """Single-label heads: the conformal set; co-units: the cut above which a unit is shown."""

    flag: bool | None = None
    prediction_set: list[str] | None = None
    coverage: float | None = None
    suggested_above: float | None = None


class ReviewOut(Out):
    """Contract 1: joint confidence and whether a person should look."""

    confidence: float
    flag: bool
    target_accuracy: float | None = None
    reasons: list[str] = []


class SuggestionOut(Out):
    """Mirror of :class:`model.suggest.Suggestion` (a test keeps the two in step)."""

    id: str | None = None
    category: list[RankedOut]
    main_unit: list[RankedOut]
    co_units: list[RankedOut]
    abstain: dict[str, HeadAbstainOut]
    review: ReviewOut
    why: dict[str, Any] | None = None


class SuggestOut(SuggestionOut):
    """``POST /api/suggest``: a suggestion for a text that is not stored."""

    model_version: str


# -- proposals and decisions ------------------------------------------------------------


class DecisionOut(Out):
    id: int
    proposal: str | None
    year: int | None
    user: str = Field(description="the reviewer's username")
    at: str
    action: str
    field: str | None
    new_value: Any
    previous_value: Any
    suggestion_id: int | None
    note: str | None


class ProposalBrief(Out):
    """A proposal as the review queue shows it (current values, status, flags)."""

    year: int
    id: str
    title: str | None
    status: str
    category: str | None
    main_unit: str | None
    co_units: list[str]
    merge_group: str | None
    decided: list[str]
    confidence: float | None
    abstain: bool
    likely_duplicate: bool
    needs_attention: bool
    model_version: str | None


class ProposalList(Out):
    total: int
    items: list[ProposalBrief]


class ImportedValues(Out):
    category: str | None
    main_unit: str | None
    co_units: list[str] | None


class ProposalDuplicate(Out):
    """A likely duplicate of a proposal; ``content`` and ``evidence`` only where asked for."""

    year: int
    id: str
    title: str | None
    score: float
    kind: str | None
    category: str | None
    main_unit: str | None
    co_units: list[str]
    merge_group: str | None
    content: str | None = None
    evidence: dict[str, Any] | None = None


class TopicScore(Out):
    topic_id: str
    topic: str
    score: float


class ProposalDetail(ProposalBrief):
    """Everything the proposal page shows (never the proposer)."""

    suggestion: dict[str, Any] | None
    content: str | None
    time: str | None
    extra: dict[str, Any] | None
    imported: ImportedValues
    why: dict[str, Any]
    duplicates: list[ProposalDuplicate]
    topics: list[TopicScore]
    decisions: list[DecisionOut]


class ProposalDuplicates(Out):
    id: str
    year: int
    text: str
    duplicates: list[ProposalDuplicate]


class DecisionMade(Out):
    decisions: list[DecisionOut]
    kept: Any = Field(description="what the decision left as it was")
    proposal: ProposalBrief


# -- duplicates and merge groups --------------------------------------------------------


class ProposalRef(Out):
    year: int
    id: str
    title: str | None


class PairOut(Out):
    a: ProposalRef
    b: ProposalRef
    score: float
    kind: str | None


class GroupRef(Out):
    label: str
    representative: ProposalRef
    members: list[ProposalRef]


class DuplicatesOut(Out):
    year: int
    pairs: list[PairOut]
    groups: list[GroupRef]


class SharedPassages(Out):
    shared_chars: int
    passages: list[str]


class GroupMember(Out):
    """A member of a merge group; score, kind and evidence are absent on the representative."""

    year: int
    id: str
    title: str | None
    representative: bool
    merge_group: str | None
    status: str
    main_unit: str | None
    score: float | None = None
    kind: str | None = None
    evidence: SharedPassages | None = None


class MergeGroup(Out):
    label: str
    representative: ProposalRef
    members: list[GroupMember]
    pairs: int
    best_score: float | None
    min_score: float | None
    mergeable: bool
    merged: bool


class MergeGroups(Out):
    year: int
    groups: list[MergeGroup]


# -- topics -----------------------------------------------------------------------------


class TopicOut(Out):
    topic_id: str
    topic: str


class TopicsStored(Out):
    year: int
    topics: int
    added: int
    updated: int
    analysis_job: int | None


class TopicCoverage(Out):
    topic_id: str
    topic: str
    count: int
    proposals: list[str]


class CoverageOut(Out):
    year: int
    threshold: float
    topics: list[TopicCoverage]
    topics_without_proposals: list[str]
    proposals_without_topic: list[str]
    confirmed_proposals: list[str]
    proposals_not_matched_yet: int


class TopicDecisionOut(Out):
    year: int
    id: str
    topics: Any
    action: str


# -- imports and jobs -------------------------------------------------------------------


class JobQueued(Out):
    job: int
    status_url: str


class JobOut(Out):
    id: int
    kind: str
    status: str = Field(description="queued, running, done, failed or interrupted")
    done: int | None
    total: int | None
    message: str | None
    result: Any
    created: str | None
    finished: str | None


class ImportOut(Out):
    file_name: str
    sha256: str
    rows: int
    added: int
    updated: int
    unchanged: int
    years: list[int]
    batch_id: int | None
    warnings: list[Any]
    analysis_job: int | None = None
    job: int


class ImportIssueOut(Out):
    row: int | None
    column: str | None
    id: str | None
    code: str
    message: str


class ImportRejectedOut(Out):
    detail: str
    code: str
    file_name: str
    errors: list[ImportIssueOut]
    more_errors: int
    job: int | None = None


class ImportBatchOut(Out):
    id: int
    file_name: str
    sha256: str
    rows: int
    added: int
    updated: int
    unchanged: int
    at: str


# -- models -----------------------------------------------------------------------------


class LiveModelOut(Out):
    live: str | None
    kind: str | None
    previous: Any = Field(description="what a rollback would go back to")
    notice: str | None


class ModelsOut(LiveModelOut):
    bundles: list[dict[str, Any]]
    registry_notice: str | None


# -- users and tokens -------------------------------------------------------------------


class UserOut(Out):
    username: str
    role: str
    active: bool
    csrf_token: str | None = None


class TokenCreated(Out):
    token: str = Field(description="shown once")


class TokenOut(Out):
    id: int
    name: str | None
    created_at: str
    expires_at: str | None
    revoked: bool


class TokenRevoked(Out):
    id: int
    revoked: bool


# -- draft check ------------------------------------------------------------------------


class DraftLength(Out):
    chars: int
    usual: list[int]


class DraftTopics(Out):
    year: int | None
    matches: list[TopicScore]
    no_topic: bool | None


class DraftSuggestion(Out):
    model_version: str
    category: list[RankedOut]
    main_unit: list[RankedOut]
    co_units: list[RankedOut]
    confidence: float | None
    flag: bool
    reasons: list[str]


class DraftCheckOut(Out):
    form: list[dict[str, Any]]
    length: DraftLength
    similar: list[dict[str, Any]]
    topics: DraftTopics
    suggestion: DraftSuggestion | None
    notices: list[str]
    elapsed_ms: int


# -- files ------------------------------------------------------------------------------


def file_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route that answers a file, for the schema."""
    return {
        200: {
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}},
            "description": description,
        }
    }
