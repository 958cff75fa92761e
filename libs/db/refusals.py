"""Telling a write the store refused because of one row's data from a write that failed for every row.

A batch (a group commit, a batch of job outcomes) fails as a whole when the database refuses one row: a
string longer than its column, a NUL byte, a number out of range. Those failures are about the row, so the
batch can be split and the others written (ADR 0031). A lost connection or a server that is down is not:
splitting it only multiplies the failures, so it fails the batch as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import psycopg
from sqlalchemy import BigInteger, Integer, SmallInteger, String, Table
from sqlalchemy.exc import DBAPIError

from libs.seedwork.errors import FieldViolation, RefusedByStore

UNIQUE_VIOLATION = "23505"

# What a refusal says when no value of the row can be named; never the server's own message, which quotes
# the data and names constraints.
_BY_SQLSTATE = {
    "22001": "a value is longer than the store allows",
    "22003": "a number is out of the range the store allows",
    "22008": "a date or time is out of the range the store allows",
    "22021": "a string holds a character the store cannot hold",
    "22P05": "a string holds a character the store cannot hold (such as NUL)",
    "23502": "a required value is missing",
    "23514": "a value breaks a rule of the store",
}
_INTEGER_BITS = ((BigInteger, 64), (SmallInteger, 16), (Integer, 32))  # subclasses first


def driver_error(exc: BaseException) -> BaseException:
    """The driver's exception, whether raised by the driver itself or wrapped by SQLAlchemy."""
    return exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc


def refused_for_data(exc: BaseException) -> bool:
    """Whether the write failed because of the data it carried (splitting the batch can isolate it), as
    opposed to the connection or the server (it would fail for every part)."""
    error = driver_error(exc)
    return isinstance(
        error,
        psycopg.DataError  # class 22: too long, NUL, out of range, bad text (also raised by psycopg itself)
        | psycopg.IntegrityError  # class 23: a constraint, for one row
        | orjson.JSONEncodeError  # a row the batch's JSON cannot carry (a lone surrogate)
        | UnicodeEncodeError,  # the same, in a parameter
    )


def is_unique_violation(exc: BaseException) -> bool:
    return getattr(driver_error(exc), "sqlstate", None) == UNIQUE_VIOLATION


def refusal(
    exc: BaseException,
    rows: Iterable[tuple[Table, Mapping[str, Any]]] = (),
    *,
    fields: Mapping[str, str] | None = None,
) -> RefusedByStore:
    """The error for the one unit whose write was refused: which of its values the store cannot hold (found
    by checking `rows` against their tables' columns; `fields` names a column's request field when the two
    differ), or what kind of value it was when none can be named."""
    fields = fields or {}
    violations = [
        FieldViolation(fields.get(name, name), problem)
        for table, row in rows
        for name, value in row.items()
        if name in table.c and (problem := _problem(table, name, value)) is not None
    ]
    if not violations:
        sqlstate = getattr(driver_error(exc), "sqlstate", None) or ""
        description = _BY_SQLSTATE.get(sqlstate, "a value of this request could not be stored")
        violations = [FieldViolation("request", description)]
    return RefusedByStore(_unique(violations), "the store refused a value")


def _problem(table: Table, name: str, value: Any) -> str | None:
    column_type = table.c[name].type
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain a NUL character"
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid UTF-8"
        length = getattr(column_type, "length", None)
        if isinstance(column_type, String) and length is not None and len(value) > length:
            return f"must be at most {length} characters"
    elif isinstance(value, int) and not isinstance(value, bool):
        bits = next((b for kind, b in _INTEGER_BITS if isinstance(column_type, kind)), None)
        if bits is not None and not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return "is out of range"
    return None


def _unique(violations: list[FieldViolation]) -> list[FieldViolation]:
    return list(dict.fromkeys(violations))
