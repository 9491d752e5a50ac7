"""The ledger database's schema, its migrations and the transaction helper."""
from __future__ import annotations

import sqlite3
from typing import Any

SCHEMA_VERSION = 9
DB_NAME = "ledger.db"
SIMULATED_KEY = "simulated_months"  # meta: the months `sla-agent demo` wrote; their reports say so

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
    [  # 2: the failure journal and the hash chain (store/chain.py); `link` names a row's last seal
        "ALTER TABLE minutes ADD COLUMN link INTEGER",
        "ALTER TABLE digests ADD COLUMN link INTEGER",
        "ALTER TABLE tickets ADD COLUMN link INTEGER",
        "ALTER TABLE windows ADD COLUMN link INTEGER",
        "CREATE INDEX minutes_unsealed ON minutes (hour) WHERE link IS NULL",
        "CREATE INDEX digests_unsealed ON digests (start) WHERE link IS NULL AND span = 86400",
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, data BLOB NOT NULL)",
        # times in integer microseconds and JSON in one canonical text: a record goes to JSON and back exactly
        "CREATE TABLE journal (id INTEGER PRIMARY KEY AUTOINCREMENT, target_id INTEGER NOT NULL, at_us INTEGER NOT NULL,"
        " outcome TEXT NOT NULL, error_kind TEXT NOT NULL, status INTEGER, error TEXT NOT NULL,"
        " duration_us INTEGER NOT NULL, phases TEXT NOT NULL, address TEXT NOT NULL, headers TEXT NOT NULL,"
        " body_id INTEGER, cert_sha256 TEXT NOT NULL, location TEXT NOT NULL, masked INTEGER NOT NULL,"
        " hash TEXT NOT NULL, link INTEGER)",
        "CREATE INDEX journal_at ON journal (at_us)",
        "CREATE INDEX journal_target_at ON journal (target_id, at_us)",
        "CREATE INDEX journal_unsealed ON journal (id) WHERE link IS NULL",
        "CREATE TABLE chain (seq INTEGER PRIMARY KEY, at REAL NOT NULL, prev TEXT NOT NULL, manifest TEXT NOT NULL,"
        " rows INTEGER NOT NULL, link TEXT NOT NULL)",
        "CREATE TABLE seals (seq INTEGER NOT NULL, key TEXT NOT NULL, t REAL, hash TEXT NOT NULL,"
        " PRIMARY KEY (key, seq)) WITHOUT ROWID",
        "CREATE INDEX seals_seq ON seals (seq)",
        "CREATE INDEX seals_t ON seals (t)",
    ],
    [  # 3: files kept with a journal record (a browser check's screenshot and HAR): [[name, sha256], ...]
        "ALTER TABLE journal ADD COLUMN artifacts TEXT NOT NULL DEFAULT '[]'",
    ],
    [  # 4: the failures alone, in time order: what a report over several locations reads and hashes
        "CREATE INDEX journal_failed ON journal (at_us) WHERE outcome != 'up'",
    ],
    [  # 5: the tickets sealed as one (store/chain.py: TICKETS), each keeping its own hash as a journal record
        # does; a ticket sealed alone before keeps the hash it was sealed with, not one made from its row now
        "ALTER TABLE tickets ADD COLUMN hash TEXT",
        "UPDATE tickets SET hash = (SELECT s.hash FROM seals s WHERE s.key = 't:' || tickets.id "
        "ORDER BY s.seq DESC LIMIT 1)",
    ],
    [  # 6: the signing key's successions (report/rotation.py): each names the new key, signed by the old one,
        # and is sealed in the chain (`k:<id>`); keys as the base64 of their 32 raw bytes
        "CREATE TABLE key_rotations (id INTEGER PRIMARY KEY, at REAL NOT NULL, old_key TEXT NOT NULL,"
        " new_key TEXT NOT NULL, after_seq INTEGER NOT NULL, after_link TEXT NOT NULL, signature TEXT NOT NULL,"
        " link INTEGER)",
    ],
    [  # 7: RFC 3161 time-stamps of the chain's head (store/timestamps.py): the answer as received, the link it
        # stamps (seq), the link sealing it (link), when it was stored (at: its seal's time, for retention)
        "CREATE TABLE timestamps (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, tsa TEXT NOT NULL,"
        " token BLOB NOT NULL, at REAL NOT NULL, link INTEGER)",
        "CREATE INDEX timestamps_seq ON timestamps (seq)",
    ],
    [  # 8: rows sealed at a clean stop before they were final (store/chain.py: PROVISIONAL), sealed final later;
        # hour digests are sealed too (one index over every unsealed digest)
        "ALTER TABLE minutes ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE digests ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX minutes_provisional ON minutes (hour) WHERE provisional = 1",
        "CREATE INDEX digests_provisional ON digests (start) WHERE provisional = 1",
        "DROP INDEX digests_unsealed",
        "CREATE INDEX digests_open ON digests (start) WHERE link IS NULL",
    ],
    [  # 9: sealed journal records packed (store/blocks.py): what repeats from record to record kept once as a
        # profile, a block a run of consecutive ids; the records already written are packed by later flushes
        "CREATE TABLE journal_profiles (id INTEGER PRIMARY KEY, target_id INTEGER NOT NULL, outcome TEXT NOT NULL,"
        " error_kind TEXT NOT NULL, status INTEGER, error TEXT NOT NULL, address TEXT NOT NULL, body_id INTEGER,"
        " cert_sha256 TEXT NOT NULL, location TEXT NOT NULL, masked INTEGER NOT NULL, artifacts TEXT NOT NULL)",
        "CREATE TABLE journal_blocks (first_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, n INTEGER NOT NULL,"
        " at0_us INTEGER NOT NULL, at1_us INTEGER NOT NULL, up INTEGER NOT NULL, down INTEGER NOT NULL,"
        " inconclusive INTEGER NOT NULL, link0 INTEGER NOT NULL, targets TEXT NOT NULL, data BLOB NOT NULL,"
        " hashes BLOB NOT NULL)",
        "CREATE INDEX journal_blocks_at ON journal_blocks (at1_us, at0_us)",
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
