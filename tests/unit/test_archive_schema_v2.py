"""Schema 2: a schema-1 archive is upgraded on open for writing, and read as it is by read-only commands."""

from __future__ import annotations

import json
import sqlite3

from discovery.archive import ARCHIVE_FILE, SCHEMA_VERSION, Archive
from discovery.archive.schema import SCHEMA

V1_PROMOTIONS = """
CREATE TABLE promotions (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, champion_id INTEGER NOT NULL, challenger_id INTEGER NOT NULL,
    split TEXT NOT NULL, seeds TEXT NOT NULL, champion_scores TEXT NOT NULL, challenger_scores TEXT NOT NULL,
    p_value REAL NOT NULL, mean_gain REAL, margin REAL NOT NULL, alpha REAL NOT NULL,
    promoted INTEGER NOT NULL, reason TEXT NOT NULL
);
"""


def _v1_archive(run_dir):
    run_dir.mkdir()
    conn = sqlite3.connect(run_dir / ARCHIVE_FILE)
    conn.executescript(V1_PROMOTIONS + SCHEMA)  # SCHEMA's IF NOT EXISTS keeps the v1 promotions table
    conn.execute("ALTER TABLE candidates DROP COLUMN node")  # added by version 4
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO candidates(id, created_at, operator, code, code_hash, status) VALUES (1, 0, 'seed', '', '', 'ok')"
    )
    conn.execute(
        "INSERT INTO promotions VALUES (1, 0, 1, 1, 'train', '[1000]', '[1.0]', '[2.0]', 0.0156, 1, 0, 0.05, 1, 'ok')"
    )
    conn.commit()
    conn.close()


def test_a_schema_1_archive_is_read_as_is_and_upgraded_on_write(tmp_path):
    run_dir = tmp_path / "old"
    _v1_archive(run_dir)
    reader = Archive.open_readonly(run_dir)
    assert reader.promotions()[0]["test"] == "paired permutation"
    reader.close()
    assert (
        json.loads(
            sqlite3.connect(run_dir / ARCHIVE_FILE)
            .execute("SELECT value FROM meta WHERE key='schema_version'")
            .fetchone()[0]
        )
        == 1
    )  # reading wrote nothing
    writer = Archive.open(run_dir)
    assert writer.meta()["schema_version"] == SCHEMA_VERSION
    [old] = writer.promotions()
    assert old["test"] == "paired permutation" and old["p_value"] == 0.0156
    writer.record_promotion(1, 1, "train", [1000], [1.0], [2.0], None, 1.0, 0.0, 0.05, True, "exact", "exact")
    assert writer.promotions()[-1]["p_value"] is None and writer.promotions()[-1]["test"] == "exact"
    writer.close()
