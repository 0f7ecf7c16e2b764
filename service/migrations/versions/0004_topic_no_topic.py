"""the matcher's "no topic" verdict stored with a proposal's topic matches

Revision ID: 0004
Revises: 0003
Whether a proposal answers no reference topic is the matcher's own verdict (the standout
margin of its best topic, `model.topics`), not a cut on the stored scores, so the coverage
page reads it from here instead of recomputing it. NULL for matches stored before.

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topic_matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("no_topic", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("topic_matches", schema=None) as batch_op:
        batch_op.drop_column("no_topic")
