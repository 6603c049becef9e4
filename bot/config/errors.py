"""Turn configuration problems into one line each: exact key path, what is valid, what was given."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

SECRET_WORDS = ("token", "secret", "password")
BOUND_ERRORS = ("greater_than_equal", "greater_than", "less_than_equal", "less_than")
KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "dict": "a mapping",
    "list": "a list",
    "model": "a mapping",
}


def key_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def shown(value: Any, loc: Sequence[int | str]) -> str:
    """The offending value as YAML would read it, hidden when the key holds a secret."""
    if any(word in str(part).lower() for part in loc for word in SECRET_WORDS):
        return "(hidden)"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def walk(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[Any, FieldInfo | None]:
    """The annotation and field found at ``loc`` inside ``root`` (best effort)."""
    annotation: Any = root
    info: FieldInfo | None = None
    for part in loc:
        annotation = strip_optional(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return None, None
            annotation = info.annotation
        elif origin is dict:
            annotation, info = typing.get_args(annotation)[1], None
        elif origin is list:
            annotation, info = typing.get_args(annotation)[0], None
        else:
            return None, None
    return strip_optional(annotation), info


def bounds(info: FieldInfo | None) -> str:
    if info is None:
        return ""
    words = []
    for meta in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(meta, getattr(annotated_types, attr.capitalize())):
                words.append(f"{sign} {getattr(meta, attr)}")
    return " " + " and ".join(words) if words else ""


def type_phrase(error_type: str) -> str:
    kind = error_type.split("_")[0]
    return KIND_NAMES.get(kind, "a valid value")


def noun_for(annotation: Any) -> str:
    return "an integer" if annotation is int else "a number"


def choices(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return ", ".join(str(m.value) for m in annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(str(a) for a in typing.get_args(annotation))
    return ""


def describe(error: ErrorDetails, root: type[BaseModel]) -> str:
    loc = error["loc"]
    kind = error["type"]
    got = shown(error.get("input"), loc)
    if kind == "missing":
        return f"{key_path(loc)}: is required"
    if kind == "extra_forbidden":
        parent, _ = walk(root, loc[:-1])
        fields = (
            parent.model_fields
            if isinstance(parent, type) and issubclass(parent, BaseModel)
            else {}
        )
        return f"{key_path(loc)}: unknown key; valid keys here: {', '.join(sorted(fields))}"
    if loc and loc[-1] == "[key]":
        mapping, _ = walk(root, loc[:-2])
        keys = choices(typing.get_args(mapping)[0]) if mapping is not None else ""
        return f"{key_path(loc)}: unknown key; valid keys here: {keys}"
    annotation, info = walk(root, loc)
    if kind in ("literal_error", "enum"):
        return f"{key_path(loc)}: must be one of {choices(annotation)}, got {got}"
    if kind == "string_pattern_mismatch":
        return f"{key_path(loc)}: {pattern_hint(loc)}, got {got}"
    if kind in BOUND_ERRORS:
        return f"{key_path(loc)}: must be {noun_for(annotation)}{bounds(info)}, got {got}"
    if kind.endswith(("_parsing", "_type", "_from_float")):
        return f"{key_path(loc)}: must be {type_phrase(kind)}{bounds(info)}, got {got}"
    return f"{key_path(loc)}: {error['msg']}, got {got}"


def pattern_hint(loc: Sequence[int | str]) -> str:
    last = str(loc[-1]) if loc else ""
    if last == "channel":
        return "must be a channel id (C...) or a channel name like #ml-fraud"
    if last == "owners":
        return "must be a Slack user group id (S...)"
    return "must be a Slack user id (U... or W...) or user group id (S...)"


def describe_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem, with key paths and bounds read from the ``root`` model."""
    return [describe(error, root) for error in exc.errors()]
