"""The team's Job template: a batch/v1 Job manifest per model, read from YAML and checked
against the Job schema (the kubernetes client's models), each mistake with its line.

The bot fills in what belongs to a run (``manifests.job_manifest``) and keeps the rest as
written: resources, tolerations, node selection, pull secrets, service account, priority,
volumes and shared memory are set the Kubernetes way.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes.aio.client import V1Job

CONTAINER = "train"
Path_ = tuple[str | int, ...]


class TemplateError(ValueError):
    """The template cannot be used; ``problems`` are lines ``file:line: path: what``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load(path: str | Path) -> dict[str, Any]:
    """The template as a dict; TemplateError listing every mistake (with its line)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as err:
        raise TemplateError([f"{file}: cannot be read ({err.strerror or err})"]) from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise TemplateError([f"{file}{line}: not valid YAML ({err})"]) from None
    problems = [
        f"{file}:{_line(root, where)}: {dotted(where) or 'the file'}: {what}"
        for where, what in check(data)
    ]
    if problems:
        raise TemplateError(problems)
    assert isinstance(data, dict)
    return data


def dotted(where: Path_) -> str:
    """``spec.template.spec.containers[0].image``."""
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in where).lstrip(".")


def check(data: Any) -> list[tuple[Path_, str]]:
    """(path, problem) for everything that is not a batch/v1 Job the bot can fill in."""
    if not isinstance(data, dict):
        return [((), "the template must be one YAML mapping (a batch/v1 Job)")]
    problems = list(_walk(V1Job, data, ()))
    kind = (data.get("apiVersion"), data.get("kind"))
    if kind != ("batch/v1", "Job"):
        problems.append((("kind",), f"must be apiVersion batch/v1, kind Job (not {kind})"))
    containers = _containers(data)
    if containers is not None and not any(c.get("name") == CONTAINER for c in containers):
        where: Path_ = ("spec", "template", "spec", "containers")
        problems.append((where, f"needs a container named {CONTAINER!r} (the bot fills it in)"))
    return problems


def _containers(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    spec = data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    found = pod.get("containers") if isinstance(pod, dict) else None
    if not isinstance(found, list):
        return None
    return [c for c in found if isinstance(c, dict)]


def _walk(model: type[Any], data: Any, where: Path_) -> Iterator[tuple[Path_, str]]:
    """Unknown fields and wrong kinds of value, against the client's model classes."""
    if not isinstance(data, dict):
        yield where, f"must be a mapping ({model.__name__.removeprefix('V1')})"
        return
    fields = {alias: name for name, alias in model.attribute_map.items()}
    for key, value in data.items():
        name = fields.get(key)
        if name is None:
            yield (*where, key), f"unknown field {key!r} in {model.__name__.removeprefix('V1')}"
            continue
        yield from _value(model.model_fields[name].annotation, value, (*where, key))


def _value(kind: Any, value: Any, where: Path_) -> Iterator[tuple[Path_, str]]:
    if value is None:
        return
    kind = _unwrap(kind)
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, list):
            yield where, "must be a list"
            return
        (item,) = typing.get_args(kind)
        for index, element in enumerate(value):
            yield from _value(item, element, (*where, index))
    elif origin is dict:
        if not isinstance(value, dict):
            yield where, "must be a mapping"
            return
        item = _unwrap(typing.get_args(kind)[1])
        for key, element in value.items():
            if item is str and not isinstance(element, str | int | float):
                yield (*where, key), "must be a string (or a number, for a quantity)"
    elif isinstance(kind, type) and hasattr(kind, "attribute_map"):
        yield from _walk(kind, value, where)
    elif kind in (str, int, bool) and not _is(kind, value):
        yield where, f"must be {_NAMES[kind]} (not {value!r})"


_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _is(kind: type[Any], value: Any) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _unwrap(kind: Any) -> Any:
    """``Optional[X]`` -> X, ``Annotated[X, ...]`` -> X."""
    while True:
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            if len(args) != 1:
                return Any
            kind = args[0]
        else:
            return kind


def _line(root: yaml.Node | None, where: Path_) -> int:
    """The 1-based line of the field at ``where`` (or of the nearest parent that exists)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else 1)
    for step in where:
        found = _child(node, step) if node is not None else None
        if found is None:
            break
        line, node = found[0].start_mark.line + 1, found[1]
    return line


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(where the step is written, its value) inside ``node``."""
    if isinstance(node, yaml.MappingNode):
        return next(((k, v) for k, v in node.value if k.value == step), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        item: yaml.Node = node.value[step]
        return item, item
    return None
