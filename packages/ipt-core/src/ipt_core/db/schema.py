"""Table definitions of the resource store. Migrations create them; this module describes them.

A test compares these definitions with the database the migrations build, so the two cannot
drift apart.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
)

__all__ = [
    "SEARCH_TABLES",
    "metadata",
    "resource",
    "resource_version",
    "search_date",
    "search_number",
    "search_reference",
    "search_string",
    "search_token",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The current version of every resource. `content` is the exact JSON served on reads (meta
# included), so a read never parses it; a deleted resource keeps its row with no content.
resource = Table(
    "resource",
    metadata,
    Column("resource_type", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("content", Text),
    PrimaryKeyConstraint("resource_type", "id"),
    Index(None, "resource_type", "last_updated", "id"),
)

# Every version ever written, current ones included. `seq` orders system-wide history.
resource_version = Table(
    "resource_version",
    metadata,
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("resource_type", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("method", Text, nullable=False),
    Column("content", Text),
    PrimaryKeyConstraint("resource_type", "id", "version_id"),
    Index(None, "resource_type", "last_updated", "seq"),
    Index(None, "last_updated", "seq"),
)


def _index_table(name: str, *columns: Column[object], lookup: tuple[str, ...]) -> Table:
    """Define a search-index table: one row per indexed value of a current resource."""
    return Table(
        name,
        metadata,
        Column("resource_type", Text, nullable=False),
        Column("resource_id", Text, nullable=False),
        Column("param", Text, nullable=False),
        *columns,
        Index(None, "resource_type", "resource_id"),
        Index(None, "resource_type", "param", *lookup),
    )


search_token = _index_table(
    "search_token",
    Column("system", Text),
    Column("code", Text),
    Column("display", Text),
    lookup=("code", "system"),
)
search_string = _index_table(
    "search_string",
    Column("value", Text, nullable=False),  # normalized: lower case, accents removed
    Column("exact", Text, nullable=False),
    lookup=("value",),
)
search_date = _index_table(
    "search_date",
    Column("low", DateTime(timezone=True), nullable=False),
    Column("high", DateTime(timezone=True), nullable=False),
    lookup=("low", "high"),
)
search_reference = _index_table(
    "search_reference",
    Column("target_type", Text),
    Column("target_id", Text, nullable=False),
    lookup=("target_id", "target_type"),
)
search_number = _index_table(
    "search_number",
    Column("value", Numeric, nullable=False),
    Column("system", Text),
    Column("code", Text),
    lookup=("value",),
)

SEARCH_TABLES = (search_token, search_string, search_date, search_reference, search_number)
