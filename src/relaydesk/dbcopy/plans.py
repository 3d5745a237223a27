"""What is copied: every table of every domain, as the copy sees it.

A Plan is one table of relaydesk's metadata (`Base.metadata.sorted_tables`, so parents
come before children): its columns, each reduced to a kind (and a text's length or an
integer's bits) that decides how its values are converted and checked, and the columns
of its primary key, which order and page the rows. A new column type is taught here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy import Column as SAColumn
from sqlalchemy.types import TypeDecorator

from relaydesk.core import domains
from relaydesk.core.db import Base
from relaydesk.dbcopy.report import CopyError

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Col:
    """A column as the copy sees it: a kind, and for text its length, for int its bits."""

    name: str
    kind: str  # "datetime", "bool", "int", "float", "json" or "text"
    limit: int | None = None


@dataclass(frozen=True)
class Plan:
    """One table to copy: its columns and which of them form the primary key."""

    table: str
    columns: tuple[Col, ...]
    key: tuple[int, ...]

    def key_text(self, row: Row) -> str:
        """The primary key of a row, as `id=12` or `provider='openai', model='x'`."""
        return ", ".join(f"{self.columns[i].name}={row[i]!r}" for i in self.key)


def plans() -> list[Plan]:
    """Every relaydesk table (every domain's models), parents before children."""
    domains.load_models()
    out = []
    for table in Base.metadata.sorted_tables:
        columns = tuple(_col(table.name, c) for c in table.columns)
        names = [c.name for c in columns]
        key = tuple(names.index(c.name) for c in table.primary_key.columns)
        if not key:
            raise CopyError(f"table {table.name} has no primary key: the copy cannot page it")
        out.append(Plan(table.name, columns, key))
    return out


def _col(table: str, column: SAColumn[Any]) -> Col:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, DateTime):
        return Col(column.name, "datetime")
    if isinstance(kind, Boolean):
        return Col(column.name, "bool")
    if isinstance(kind, Integer):
        bits = 64 if isinstance(kind, BigInteger) else 16 if isinstance(kind, SmallInteger) else 32
        return Col(column.name, "int", bits)
    if isinstance(kind, Float):
        return Col(column.name, "float")
    if isinstance(kind, JSON):
        return Col(column.name, "json")
    if isinstance(kind, String):  # Text, and the state machines' Enum columns
        return Col(column.name, "text", kind.length)
    raise CopyError(f"{table}.{column.name}: the copy does not know the type {kind!r}")


def _q(name: str) -> str:
    """A quoted SQL identifier (names come from relaydesk's own metadata)."""
    return '"' + name.replace('"', '""') + '"'
