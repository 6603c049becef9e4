"""The Dockerfile: hadolint finds nothing at warning level or above, the image is built the way
this project ships (a wheel, ecspresso with a verified checksum, no compilers, a non-root user),
and its install step works on exactly the build context .dockerignore lets through."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPILERS = ("gcc", "g++", "cc ", "clang", "build-essential", "make ", "rustc", "cargo")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages with their instructions."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                key, value = args.split("=", 1)
                global_args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


def arg_defaults(stage: Stage) -> dict[str, str]:
    return dict(a.split("=", 1) for a in stage.all("ARG") if "=" in a)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def test_hadolint_reports_nothing_at_warning_or_above(hadolint_bin: Path) -> None:
    done = subprocess.run(
        [
            str(hadolint_bin),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "warning",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(done.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert serious == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in serious)
    assert done.returncode == 0, done.stderr


def test_base_image_is_slim_python_pinned_to_a_patch_release(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    global_args, stages = dockerfile
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    base = global_args["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim(-\w+)?", base)
    assert match, f"{base}: pin python:<major>.<minor>.<patch>-slim[-<debian>]"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={match[1]}.{match[2]}" in requires
    names = {s.name for s in stages if s.name}
    for stage in stages:
        assert stage.base in ("${PYTHON_IMAGE}", *names), f"unpinned base {stage.base}"
    assert stages[-1].base == "${PYTHON_IMAGE}"


def test_the_app_is_installed_as_a_wheel_in_the_build_stage(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    build, final = stages[0], stages[-1]
    runs = " ".join(build.all("RUN"))
    assert "pip wheel --no-deps --wheel-dir /wheels ." in runs
    assert "pip install --no-cache-dir /wheels/mlops_bot-" in runs
    copies = final.all("COPY")
    assert f"--from={build.name} /opt/venv /opt/venv" in copies
    assert not any(c.startswith(("pyproject", "bot", ".")) for c in copies), "no sources in final"


def test_ecspresso_is_a_pinned_build_arg_verified_by_checksum(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    build = stages[0]
    args = arg_defaults(build)
    version = args["ECSPRESSO_VERSION"]
    assert version_tuple(version) >= version_tuple("2.4.0")
    assert version_tuple(version) >= version_tuple(Settings().ecspresso.min_version)
    for arch in ("AMD64", "ARM64"):
        assert re.fullmatch(r"[0-9a-f]{64}", args[f"ECSPRESSO_SHA256_{arch}"])
    download = next(r for r in build.all("RUN") if "ecspresso" in r)
    assert "releases/download/v${ECSPRESSO_VERSION}/" in download
    assert download.index("sha256sum --check") < download.index("tar -xzf")
    assert f"--from={build.name} /usr/local/bin/ecspresso /usr/local/bin/ecspresso" in (
        stages[-1].all("COPY")
    )


def test_final_stage_runs_mlops_bot_as_non_root_without_compilers(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    final = stages[-1]
    user = final.all("USER")[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit() and int(user) >= 1000
    assert [json.loads(e) for e in final.all("ENTRYPOINT")] == [["mlops-bot"]]
    assert [json.loads(c) for c in final.all("CMD")] == [["serve"]]
    runs = " ".join(final.all("RUN")) + " "
    assert "apt-get" not in runs and "pip " not in runs
    assert not [c for c in COMPILERS if c in runs]
    env = " ".join(final.all("ENV"))
    assert "MLOPS_BOT_DATA_DIR=/data" in env
    assert json.loads(final.all("VOLUME")[-1]) == ["/data"]


# ---- the build context and the wheel -------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include?, pattern) per .dockerignore line, in Docker's syntax (** and !)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negate, re.compile(regex)))
    return rules


def ignored(relative: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    candidates = [relative.as_posix(), *(p.as_posix() for p in relative.parents if str(p) != ".")]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


def build_context(into: Path) -> list[str]:
    """Copy the files `docker build .` would send; return their relative paths."""
    rules = dockerignore_rules()
    sent = []
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    for name in tracked:
        source = ROOT / name
        if not source.is_file() or ignored(Path(name), rules):
            continue
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        sent.append(name)
    return sent


def test_dockerignore_sends_only_what_the_build_copies(tmp_path: Path) -> None:
    sent = build_context(tmp_path)
    tops = {Path(name).parts[0] for name in sent}
    assert tops == {"pyproject.toml", "README.md", "bot", "handlers", "integrations"}
    _, stages = parse(DOCKERFILE.read_text())
    for copy in stages[0].all("COPY"):
        *sources, _dest = shlex.split(copy)
        for source in sources:
            assert (tmp_path / source).exists(), f"COPY {source}: not in the build context"


def test_the_build_context_makes_a_wheel_that_runs(tmp_path: Path) -> None:
    context, wheels = tmp_path / "context", tmp_path / "wheels"
    build_context(context)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = wheels.glob("mlops_bot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "mlops-bot = bot.entry:main" in archive.read(entry_points).decode()
    for package in ("bot/cli.py", "handlers/commands.py", "integrations/slack.py"):
        assert package in names
    assert "bot/sandbox/sample-config.yaml" in names
    assert not [n for n in names if n.startswith("tests/")]
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import bot.cli, bot.entry; "
            "assert bot.cli.__file__.startswith(sys.argv[1]); "
            "sys.argv[1:] = ['--help']; bot.entry.main()",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "serve" in run.stdout and "check-config" in run.stdout
