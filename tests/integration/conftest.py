"""Fixtures for the store: each test gets a fresh database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import pytest
from kubernetes.aio.client import ApiClient, BatchV1Api, CoreV1Api
from sqlalchemy.engine import make_url

from bot.store import Store
from integrations.kubernetes.cluster import api_client
from tests.kube import FakeKubelet
from tests.pg import PostgresUnavailable, running_postgres

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One server per session; skipped when it cannot be provisioned, except on CI."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(running_postgres())
        except PostgresUnavailable as err:
            reason = f"PostgreSQL could not be provisioned by scripts/postgres: {err}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        yield url


async def _fresh_database(admin_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        # FILE_COPY (PostgreSQL 15+) halves the time WAL_LOG takes for a tiny template.
        strategy = " STRATEGY FILE_COPY" if conn.get_server_version().major >= 15 else ""
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{strategy}')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def _drop_database(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database; the SQLite file's directory does not exist yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state/bot.db"
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    url = await _fresh_database(admin_url)
    yield url
    await _drop_database(admin_url, url)


@pytest.fixture
async def empty_store(store_url: str) -> AsyncIterator[Store]:
    store = Store.from_url(store_url)
    yield store
    await store.close()


@pytest.fixture
async def store(empty_store: Store) -> Store:
    await empty_store.migrate()
    return empty_store


# The Kubernetes tests' shared pieces (the control plane itself comes from tests/conftest.py).
KUBE_NS = "default"


@pytest.fixture
async def kube_api(kubeconfig: Path) -> AsyncIterator[ApiClient]:
    api = await api_client(kubeconfig)
    yield api
    await api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def labels() -> dict[str, str]:
    """Labels unique to the test, so its selector sees only its own jobs."""
    return {"app.kubernetes.io/managed-by": "mlops-bot", "mlops-bot/test": uuid.uuid4().hex[:10]}


@pytest.fixture
def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


@pytest.fixture
async def kubelet(kube_api: ApiClient, selector: str) -> AsyncIterator[FakeKubelet]:
    kubelet = FakeKubelet(CoreV1Api(kube_api), KUBE_NS)
    yield kubelet
    await kubelet.clean_up(BatchV1Api(kube_api), selector)
