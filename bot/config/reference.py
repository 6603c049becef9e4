"""The configuration reference, generated from the settings model so it cannot drift.

    python -m bot.config.reference > docs/configuration.md

Types and defaults come from the model; what each key means and an example value come from
``DESCRIPTIONS`` in bot/config/descriptions.py, which must name every key path the model has
(a test checks both ways).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bot.config.descriptions import DESCRIPTIONS, Doc
from bot.config.settings import ENV_KEYS, Settings

PLACEHOLDERS = {"models": "<model>", "environments": "<env>", "roles": "<role>"}


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args if a is not type(None)) + (
            " (optional)" if type(None) in args else ""
        )
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping {type_name(args[0])} -> {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(str(m.value) for m in annotation)
    if annotation is SecretStr:
        return "secret string"
    return getattr(annotation, "__name__", str(annotation))


def default_of(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(section)"
        return json.dumps(value, default=str) if value not in ({}, []) else "empty"
    if info.default is PydanticUndefined:
        return "**required**"
    return json.dumps(info.default, default=str)


def submodel(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The settings model inside a field's type and how its key path continues."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return submodel(inner[0]) if len(inner) == 1 else (None, "")
    if origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return args[1], ".{key}"
    if origin is list and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    return None, ""


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, the model's own description) for every setting, depth first."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        inner, suffix = submodel(info.annotation)
        if inner is None:
            yield path, type_name(info.annotation), default_of(info), info.description or ""
            continue
        key = PLACEHOLDERS.get(name, "<name>")
        yield path, "section", default_of(info), info.description or (inner.__doc__ or "").strip()
        yield from rows(inner, path + suffix.format(key=key) + ".")


def key_paths() -> list[str]:
    return [path for path, *_ in rows(Settings)]


def undocumented() -> list[str]:
    """Key paths of the model without a description (or a setting without an example)."""
    missing = []
    for path, kind, _default, _text in rows(Settings):
        doc = DESCRIPTIONS.get(path)
        if doc is None or not doc.text.strip() or (kind != "section" and not doc.example):
            missing.append(path)
    return missing


def stale() -> list[str]:
    """Described key paths the model no longer has."""
    return sorted(set(DESCRIPTIONS) - set(key_paths()))


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def env_line(name: str, path: tuple[str, ...]) -> str:
    return f"| `{name}` | `{'.'.join(path)}` |"


def setting_line(path: str, kind: str, default: str, fallback: str) -> str:
    doc = DESCRIPTIONS.get(path, Doc(fallback))
    example = f"`{cell(doc.example)}`" if doc.example else ""
    return f"| `{path}` | {kind} | {default} | {example} | {cell(doc.text)} |"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Settings come from one YAML file (`--config FILE` or `MLOPS_BOT_CONFIG`) and from the",
        "environment variables below, which win over the file. `mlops-bot check-config` reports",
        "every problem with its key path. This page is generated from the settings model",
        "(`python -m bot.config.reference > docs/configuration.md`); a test keeps it current.",
        "",
        "Key paths: `<model>` and `<env>` stand for the names you choose, `[]` for each item of",
        "a list. Secrets (tokens, signing secrets) belong in the environment, not in the file;",
        "[examples/mlops-bot.yaml](../examples/mlops-bot.yaml) is a complete example.",
        "",
        "## Environment variables",
        "",
        "| variable | sets |",
        "| --- | --- |",
        *(env_line(name, path) for name, path in ENV_KEYS.items()),
        "",
        "## Settings",
        "",
        "| key | type | default | example | what it is |",
        "| --- | --- | --- | --- | --- |",
        *(setting_line(*row) for row in rows(Settings)),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
