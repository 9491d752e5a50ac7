"""The ledger database's schema, its migrations and the transaction helper."""
from __future__ import annotations

import sqlite3
from typing import Any

SCHEMA_VERSION = 1
DB_NAME = "ledger.db"

# Each entry brings the schema from version i to i+1. Never edit a released step; append a new one.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, service TEXT NOT NULL)",
        "CREATE TABLE minutes (target_id INTEGER NOT NULL, hour INTEGER NOT NULL, counts BLOB NOT NULL,"
        " errors TEXT NOT NULL DEFAULT '', PRIMARY KEY (target_id, hour)) WITHOUT ROWID",
        "CREATE TABLE digests (target_id INTEGER NOT NULL, start INTEGER NOT NULL, span INTEGER NOT NULL,"
        " data BLOB NOT NULL, PRIMARY KEY (target_id, start, span)) WITHOUT ROWID",
        "CREATE TABLE windows (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,"
        " reason TEXT NOT NULL, created_at REAL NOT NULL)",
        "CREATE TABLE tickets (id TEXT PRIMARY KEY, priority TEXT NOT NULL, opened_at REAL NOT NULL,"
        " responded_at REAL, workaround_at REAL, resolved_at REAL, closed_at REAL, imported_at REAL NOT NULL)",
    ],
]


class tx:
    """BEGIN IMMEDIATE ... COMMIT / ROLLBACK (the connection runs in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
