"""Resource store: current resources, every version, and the search index.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX_COLUMNS: dict[str, tuple[list[sa.Column[Any]], list[str]]] = {
    "search_token": (
        [sa.Column("system", sa.Text()), sa.Column("code", sa.Text()), sa.Column("display", sa.Text())],
        ["code", "system"],
    ),
    "search_string": (
        [sa.Column("value", sa.Text(), nullable=False), sa.Column("exact", sa.Text(), nullable=False)],
        ["value"],
    ),
    "search_date": (
        [
            sa.Column("low", sa.DateTime(timezone=True), nullable=False),
            sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        ],
        ["low", "high"],
    ),
    "search_reference": (
        [sa.Column("target_type", sa.Text()), sa.Column("target_id", sa.Text(), nullable=False)],
        ["target_id", "target_type"],
    ),
    "search_number": (
        [
            sa.Column("value", sa.Numeric(), nullable=False),
            sa.Column("system", sa.Text()),
            sa.Column("code", sa.Text()),
        ],
        ["value"],
    ),
}


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_resource"),
    )
    op.create_index(
        "ix_resource_resource_type_last_updated_id", "resource", ["resource_type", "last_updated", "id"]
    )
    op.create_table(
        "resource_version",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id", name="pk_resource_version"),
        sa.UniqueConstraint("seq", name="uq_resource_version_seq"),
    )
    op.create_index(
        "ix_resource_version_resource_type_last_updated_seq",
        "resource_version",
        ["resource_type", "last_updated", "seq"],
    )
    op.create_index("ix_resource_version_last_updated_seq", "resource_version", ["last_updated", "seq"])
    for table, (columns, lookup) in _INDEX_COLUMNS.items():
        op.create_table(
            table,
            sa.Column("resource_type", sa.Text(), nullable=False),
            sa.Column("resource_id", sa.Text(), nullable=False),
            sa.Column("param", sa.Text(), nullable=False),
            *columns,
        )
        op.create_index(f"ix_{table}_resource_type_resource_id", table, ["resource_type", "resource_id"])
        op.create_index(
            f"ix_{table}_resource_type_param_{'_'.join(lookup)}",
            table,
            ["resource_type", "param", *lookup],
        )


def downgrade() -> None:
    for table in reversed(list(_INDEX_COLUMNS)):
        op.drop_table(table)
    op.drop_table("resource_version")
    op.drop_table("resource")
