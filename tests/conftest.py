"""Fixtures shared by the integration and scenario tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.kube import ControlPlane, provision_or_skip


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """One real Kubernetes control plane per session (scripts/kube); skipped when it cannot be
    provisioned, except on CI where that fails."""
    with ExitStack() as stack:
        yield provision_or_skip(stack)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig
