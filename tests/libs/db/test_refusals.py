"""Which failed writes are about one row's data (a batch may be split to isolate it) and which are the
connection's or the server's (splitting would only repeat them); and what a refusal tells the caller."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
from sqlalchemy.exc import DataError, OperationalError

from libs.db.refusals import refusal, refused_for_data

table = Table(
    "things",
    MetaData(),
    Column("name", String(8)),
    Column("count", Integer),
    Column("total", BigInteger),
)


@pytest.mark.parametrize(
    ("error", "about_the_data"),
    [
        (psycopg.errors.StringDataRightTruncation("value too long"), True),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), True),
        (psycopg.errors.NotNullViolation("null value"), True),
        (DataError("INSERT", {}, psycopg.errors.NumericValueOutOfRange("out of range")), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (psycopg.OperationalError("consuming input failed: server closed the connection"), False),
        (OperationalError("INSERT", {}, psycopg.OperationalError("connection refused")), False),
        (psycopg.errors.AdminShutdown("terminating connection"), False),
        (TimeoutError(), False),
    ],
)
def test_only_refusals_of_the_data_are_split(error, about_the_data):
    assert refused_for_data(error) is about_the_data


def test_a_refusal_names_each_value_the_store_cannot_hold_and_quotes_none():
    error = refusal(
        psycopg.errors.StringDataRightTruncation("value too long for type character varying(8)"),
        [(table, {"name": "nine char", "count": 2**31, "total": 2**40, "other": "x" * 99})],
        fields={"name": "thing.name"},
    )

    assert [(v.field, v.description) for v in error.violations] == [
        ("thing.name", "must be at most 8 characters"),
        ("count", "is out of range"),
    ]
    assert "nine char" not in str(error) and "varying" not in str(error)


def test_a_refusal_with_no_value_to_name_says_what_kind_of_value_it_was():
    error = refusal(psycopg.errors.UntranslatableCharacter("\\u0000 cannot be converted to text"), [])

    assert [(v.field, v.description) for v in error.violations] == [
        ("request", "a string holds a character the store cannot hold (such as NUL)")
    ]
