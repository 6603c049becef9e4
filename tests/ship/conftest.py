"""Fixtures of the ship tests: the tools from the test extra, which must be there on CI."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tests.tools import (
    KubeTools,
    ToolMissing,
    Validate,
    hadolint,
    kube_tools,
    kubernetes_validate,
    or_skip,
    validate_strictly,
)


@pytest.fixture(scope="session")
def tools() -> KubeTools:
    try:
        return kube_tools()
    except ToolMissing as err:
        or_skip(err)
        raise


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    try:
        return hadolint()
    except ToolMissing as err:
        or_skip(err)
        raise


@pytest.fixture(scope="session")
def validate() -> Validate:
    try:
        return partial(validate_strictly, kubernetes_validate())
    except ToolMissing as err:
        or_skip(err)
        raise
