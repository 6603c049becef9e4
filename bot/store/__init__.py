"""Persistence: ``Store`` over SQLite (default) or PostgreSQL, with versioned migrations."""

from bot.store.core import Store
from bot.store.errors import StoreNotReady, StoreTimeout
from bot.store.migrations import LATEST, MIGRATIONS, Migration

__all__ = ["LATEST", "MIGRATIONS", "Migration", "Store", "StoreNotReady", "StoreTimeout"]
