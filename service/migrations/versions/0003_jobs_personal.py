"""durable jobs, personal columns kept apart

Revision ID: 0003
Revises: 0002
Jobs (imports, analyses) live in the database so that any worker sees any job and a restart
loses none: a job whose process died is reported as interrupted. Extra columns that look like
personal data (提案人姓名, 电话, ...) move from ``proposals.extra``, which the API shows, to
``proposals.personal``, which nothing shows, next to the proposer.

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("personal", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    _move_personal_extras()


def _move_personal_extras() -> None:
    """Existing rows: extra fields whose header looks like personal data go to ``personal``."""
    from model.records import is_personal_header

    proposals = sa.table(
        "proposals",
        sa.column("id", sa.Integer()),
        sa.column("extra", sa.JSON()),
        sa.column("personal", sa.JSON()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(proposals.c.id, proposals.c.extra)).all()
    for row_id, extra in rows:
        if not isinstance(extra, dict):
            continue
        personal = {k: v for k, v in extra.items() if is_personal_header(k)}
        if personal:
            kept = {k: v for k, v in extra.items() if k not in personal}
            bind.execute(
                proposals.update()
                .where(proposals.c.id == row_id)
                .values(extra=kept, personal=personal)
            )


def downgrade() -> None:
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_column("personal")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_owner_id"))
    op.drop_table("jobs")
