"""Schema 2: the read position inside a long message (``users.cursor_part``) counts characters.

Schema 1 counted parts, which depend on the chunk size and tokenizer of the time (unknown now),
so a part position is reset to the message's start: the parts already read are read again and
nothing is skipped (a repeated fact merges with itself). Versions record the character ranges
they read in their report (JSON), so no column changes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE users SET cursor_part = 0 WHERE cursor_part != 0")
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")


def downgrade() -> None:
    # A character position is not a part position: read the message again from its start.
    op.execute("UPDATE users SET cursor_part = 0 WHERE cursor_part != 0")
    op.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
