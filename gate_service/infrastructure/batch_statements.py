"""The batch SQL of the Gate, in SQLAlchemy Core (PostgreSQL): the group commit's (a whole batch of new
intents and their outbox rows in one statement, the update of one decided intent) and the update of many
loaded intents at once (execution reports).

The batch travels as two JSON parameters (rows as json_to_recordset reads them), so the statement is the
same, and prepared once, whatever the batch size.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import JSON, Integer, Select, Table, Update, bindparam, cast, column, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert

from gate_service.infrastructure.tables import intents

INTENT_ROWS = "intent_rows"  # [{"unit": n, <intents columns>}, ...]
OUTBOX_ROWS = "outbox_rows"  # [{"unit": n, "n": order, <outbox columns a new event sets>}, ...]
# Set by the database or later by the relay, never by a new event.
_OUTBOX_SKIPPED = ("position", "published_at", "publish_attempts", "last_error", "parked_at")


def _recordset(
    parameter: str, table: Table, name: str, skip: tuple[str, ...] = (), extra: tuple[str, ...] = ("unit",)
) -> Any:
    """The JSON parameter as rows typed like `table`'s columns, plus integer `extra` columns (by default
    the unit of each row)."""
    columns = [
        *(column(e, Integer) for e in extra),
        *(column(c.name, c.type) for c in table.columns if c.name not in skip),
    ]
    return (
        func.json_to_recordset(cast(bindparam(parameter), JSON))
        .table_valued(*columns)
        .render_derived(name=name, with_types=True)
    )


def insert_batch(outbox: Table) -> Select[tuple[int]]:
    """Inserts the intents, leaves out the outbox rows of every unit one of whose intents clashed (on the
    idempotency key), and returns those units. ORDER BY n keeps each unit's events in the order they
    happened (the outbox position)."""
    given = select(_recordset(INTENT_ROWS, intents, "g")).cte("given")  # read once, used twice
    names = [c.name for c in intents.columns]
    inserted = (
        insert(intents)
        .from_select(names, select(*(given.c[name] for name in names)))
        .on_conflict_do_nothing()
        .returning(intents.c.id)
        .cte("inserted")
    )
    clashed = select(given.c.unit).distinct().where(given.c.id.not_in(select(inserted.c.id))).cte("clashed")
    events = _recordset(OUTBOX_ROWS, outbox, "given_events", skip=_OUTBOX_SKIPPED, extra=("unit", "n"))
    event_columns = [c.name for c in outbox.columns if c.name not in _OUTBOX_SKIPPED]
    published = (
        insert(outbox)
        .from_select(
            event_columns,
            select(*(events.c[name] for name in event_columns))
            .where(events.c.unit.not_in(select(clashed.c.unit)))
            .order_by(events.c.n),
        )
        .cte("published")
    )
    return select(clashed.c.unit).add_cte(published)


LOADED_VERSION = "loaded_version"
update_decided = (
    update(intents)
    .where(intents.c.id == bindparam("b_id"), intents.c.version == bindparam(LOADED_VERSION))
    .values({c.name: bindparam(c.name) for c in intents.columns if c.name != "id"})
)


def update_loaded_batch() -> Update:
    """Saves many loaded intents (INTENT_ROWS, each with the LOADED_VERSION it was read at) in one statement;
    only rows still at that version are updated, and it returns their ids: an id missing from the result
    lost an optimistic race."""
    given = _recordset(INTENT_ROWS, intents, "g", extra=(LOADED_VERSION,))
    return (
        update(intents)
        .where(intents.c.id == given.c.id, intents.c.version == given.c[LOADED_VERSION])
        .values({c.name: given.c[c.name] for c in intents.columns if c.name != "id"})
        .returning(intents.c.id)
    )


def to_json(rows: object) -> str:
    """Rows as one JSON parameter of these statements."""
    # orjson writes datetimes as RFC 3339 itself; only the outbox payloads need the callback.
    return orjson.dumps(rows, default=_bytea).decode()


def _bytea(value: object) -> str:
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's hex input format
    raise TypeError(type(value).__name__)


def compiled(statement: Any) -> str:
    """The statement as the psycopg driver takes it (named %(...)s parameters)."""
    return str(statement.compile(dialect=postgresql.psycopg.dialect()))
