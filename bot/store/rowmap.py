"""Dataclass <-> row mapping shared by the repositories of runs and deployments."""

from __future__ import annotations

import functools
import typing
from dataclasses import fields
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


@functools.cache
def columns(table: sa.Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns)


Plan = tuple[tuple[str, type[StrEnum] | None], ...]
_PLANS: dict[tuple[type[Any], str], Plan] = {}


def plan(cls: type[Any], table: sa.Table) -> Plan:
    """Which fields come from the table and which of them are enums: worked out once per
    class (``get_type_hints`` is far too slow to call per row)."""
    known = _PLANS.get((cls, table.name))
    if known is None:
        known = _PLANS[(cls, table.name)] = _plan(cls, table)
    return known


def _plan(cls: type[Any], table: sa.Table) -> Plan:
    names = columns(table)
    hints = typing.get_type_hints(cls)
    steps: list[tuple[str, type[StrEnum] | None]] = []
    for f in fields(cls):
        if f.name not in names:
            continue
        kind = hints.get(f.name)
        steps.append(
            (f.name, kind if isinstance(kind, type) and issubclass(kind, StrEnum) else None)
        )
    return tuple(steps)


def from_row(cls: type[T], row: sa.Row[Any], table: sa.Table, **extra: Any) -> T:
    """Build ``cls`` from the row's columns (enum fields are rebuilt from their values)."""
    values: dict[str, Any] = {}
    for name, enum in plan(cls, table):
        if name in extra:
            continue
        value = getattr(row, name)
        values[name] = enum(value) if enum is not None and value is not None else value
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
