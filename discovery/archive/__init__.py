"""The run archive: the SQLite schema, the store the search writes, and read-only views over it."""

from discovery.archive.schema import ARCHIVE_FILE, SCHEMA_VERSION
from discovery.archive.store import Archive

__all__ = ["ARCHIVE_FILE", "SCHEMA_VERSION", "Archive"]
