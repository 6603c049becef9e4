"""The store fixtures of the integration tests: each test a fresh SQLite file and PG database."""

from __future__ import annotations

from tests.integration.conftest import empty_store, postgres_url, store, store_url

__all__ = ["empty_store", "postgres_url", "store", "store_url"]
