"""Persistence: ``Store`` over SQLite (default) or PostgreSQL, with versioned migrations."""

from bot.store.errors import StoreNotReady, StoreTimeout
from bot.store.migrations import LATEST, MIGRATIONS, Migration
from bot.store.store import Store

__all__ = ["LATEST", "MIGRATIONS", "Migration", "Store", "StoreNotReady", "StoreTimeout"]
