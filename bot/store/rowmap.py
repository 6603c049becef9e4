"""Dataclass <-> row mapping shared by the repositories of runs and deployments."""

from __future__ import annotations

import typing
from dataclasses import fields
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


def columns(table: sa.Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns)


def from_row(cls: type[T], row: sa.Row[Any], table: sa.Table, **extra: Any) -> T:
    """Build ``cls`` from the row's columns (enum fields are rebuilt from their values)."""
    names = columns(table)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in names or f.name in extra:
            continue
        value, kind = getattr(row, f.name), hints.get(f.name)
        is_enum = isinstance(kind, type) and issubclass(kind, StrEnum)
        values[f.name] = kind(value) if is_enum and value is not None else value  # type: ignore[misc]
    return cls(**values, **extra)


def values_of(obj: Any, table: sa.Table) -> dict[str, Any]:
    """The object's column values for an insert (without its id)."""
    names = columns(table)
    values = {f.name: getattr(obj, f.name) for f in fields(obj) if f.name in names}
    values.pop("id", None)
    return {k: str(v) if isinstance(v, StrEnum) else v for k, v in values.items()}


def checked(changes: dict[str, Any], table: sa.Table) -> dict[str, Any]:
    unknown = set(changes) - columns(table)
    if unknown:
        raise ValueError(f"not columns of {table.name}: {sorted(unknown)}")
    return {k: str(v) if isinstance(v, StrEnum) else v for k, v in changes.items()}
