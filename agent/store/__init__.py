"""Persistence: the SQLite ledger database (store.py, all the SQL), its schema and migrations
(schema.py), and the bookkeeping of what is still to be written (flush.py)."""
from .flush import Flusher
from .schema import DB_NAME, SCHEMA_VERSION
from .store import Store, StoreError

__all__ = ["DB_NAME", "SCHEMA_VERSION", "Flusher", "Store", "StoreError"]
