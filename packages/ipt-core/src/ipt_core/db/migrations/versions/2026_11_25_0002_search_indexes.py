"""Search indexes cover the resource id, so search's EXISTS probes are index-only scans."""

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"

# Each index table's lookup index: (resource_type, param, value columns…). Searching by a
# value then needs the matching resource ids only, so carrying them in the index spares a
# heap visit per match (measured by bench/search_bench.py).
_LOOKUPS = {
    "search_token": ["code", "system"],
    "search_string": ["value"],
    "search_date": ["low", "high"],
    "search_reference": ["target_id", "target_type"],
    "search_number": ["value"],
}


def _name(table: str, lookup: list[str]) -> str:
    return f"ix_{table}_resource_type_param_{'_'.join(lookup)}"


def upgrade() -> None:
    for table, lookup in _LOOKUPS.items():
        op.drop_index(_name(table, lookup), table_name=table)
        op.create_index(
            _name(table, lookup),
            table,
            ["resource_type", "param", *lookup],
            postgresql_include=["resource_id"],
        )


def downgrade() -> None:
    for table, lookup in _LOOKUPS.items():
        op.drop_index(_name(table, lookup), table_name=table)
        op.create_index(_name(table, lookup), table, ["resource_type", "param", *lookup])
