"""The tree says what the code is: no import circles, no module named after its own package,
every package says what it owns, and services stay free of outside SDKs (the dependency rule)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "integrations")
SDKS = ("slack_bolt", "slack_sdk", "boto3", "botocore", "gitlab", "kubernetes", "aiohttp")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported(path: Path, name: str) -> Iterator[tuple[str, ...]]:
    """What each import statement anywhere in the file names, most specific first
    (TYPE_CHECKING and lazy imports included: a circle hidden in a function is still a circle).
    ``from pkg import x`` names the module ``pkg.x`` when there is one, else ``pkg``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name,) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield from ((f"{base}.{alias.name}", base) for alias in node.names)


def resolve(candidates: tuple[str, ...], known: dict[str, Path]) -> str | None:
    """The first candidate that is one of our modules, or the closest package holding it."""
    for candidate in candidates:
        if candidate in known:
            return candidate
    target = candidates[-1]
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for candidates in imported(path, name):
            target = resolve(candidates, known)
            if target and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_module_takes_part_in_an_import_circle() -> None:
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_module_repeats_its_package_name_as_a_prefix() -> None:
    offenders = [
        name
        for name, path in modules().items()
        if path.name != "__init__.py"
        and (path.stem == path.parent.name or path.stem.startswith(f"{path.parent.name}_"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "package", sorted(p for p, f in modules().items() if f.name == "__init__.py")
)
def test_every_package_says_what_it_owns(package: str) -> None:
    tree = ast.parse(modules()[package].read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{package}/__init__.py needs a one-line docstring saying what it owns"


def test_services_import_no_outside_sdk() -> None:
    graph_sources = {n: p for n, p in modules().items() if n.startswith("bot.services")}
    offenders = sorted(
        f"{name} imports {target}"
        for name, path in graph_sources.items()
        for candidates in imported(path, name)
        for target in candidates[-1:]
        if target.split(".")[0] in SDKS
    )
    assert offenders == []
