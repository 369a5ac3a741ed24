"""The archive's SQLite schema: the tables a new archive gets, its version, and ordered migrations.

A new archive is created at SCHEMA_VERSION from SCHEMA. An archive written by an older release is
brought up to date on open by applying MIGRATIONS[v] for each v from its version up, each in one
transaction with the version bump, so a crash mid-upgrade leaves the old version intact.
"""

from __future__ import annotations

import json
import sqlite3

SCHEMA_VERSION = 6
ARCHIVE_FILE = "archive.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           REAL NOT NULL,
    kind         TEXT NOT NULL,
    candidate_id INTEGER,
    call_id      INTEGER,
    data         TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS llm_calls (
    id                INTEGER PRIMARY KEY,
    started_at        REAL NOT NULL,
    finished_at       REAL,
    model             TEXT NOT NULL,
    operator          TEXT NOT NULL,
    parent_id         INTEGER,
    seed              INTEGER,
    prompt            TEXT NOT NULL,
    reply             TEXT,
    status            TEXT NOT NULL,
    error             TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL,
    latency_s         REAL
);
CREATE TABLE IF NOT EXISTS candidates (
    id           INTEGER PRIMARY KEY,
    parent_id    INTEGER REFERENCES candidates(id),
    call_id      INTEGER REFERENCES llm_calls(id),
    created_at   REAL NOT NULL,
    operator     TEXT NOT NULL,
    code         TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    status       TEXT NOT NULL,
    score        REAL,
    fitness      REAL,
    metrics      TEXT,
    feedback     TEXT,
    failure      TEXT,
    output_tail  TEXT,
    sandbox      TEXT,
    split        TEXT,
    eval_wall_s  REAL,
    evaluated_at REAL,
    island           INTEGER,
    second_parent_id INTEGER REFERENCES candidates(id),
    arm              TEXT,
    nearest_id       INTEGER,
    similarity       REAL,
    stage_fitness    REAL,
    node             TEXT
);
CREATE INDEX IF NOT EXISTS candidates_hash ON candidates(code_hash);
CREATE INDEX IF NOT EXISTS candidates_status ON candidates(status);
CREATE INDEX IF NOT EXISTS candidates_parent ON candidates(parent_id);
-- Small covering index: the budget's COUNT(*) and the cost SUM read it, not rows holding prompts.
CREATE INDEX IF NOT EXISTS llm_calls_cost ON llm_calls(cost_usd);
-- Covering index for the per-model usage (calls, ok, tokens, cost, latency) of `archive show` and the
-- run page: without it that GROUP BY reads every row holding a prompt and a reply (9 of the run page's
-- ms on 10,000 calls). started_at and finished_at let the usage query add each model's first and last
-- call without leaving the index. Migration 5 -> 6 adds it to older archives.
CREATE INDEX IF NOT EXISTS llm_calls_usage
    ON llm_calls(model, status, prompt_tokens, completion_tokens, cost_usd, latency_s, started_at, finished_at);
CREATE TABLE IF NOT EXISTS promotions (
    id                INTEGER PRIMARY KEY,
    at                REAL NOT NULL,
    champion_id       INTEGER NOT NULL REFERENCES candidates(id),
    challenger_id     INTEGER NOT NULL REFERENCES candidates(id),
    split             TEXT NOT NULL,
    seeds             TEXT NOT NULL,
    champion_scores   TEXT NOT NULL,
    challenger_scores TEXT NOT NULL,
    p_value           REAL,
    mean_gain         REAL,
    margin            REAL NOT NULL,
    alpha             REAL NOT NULL,
    promoted          INTEGER NOT NULL,
    reason            TEXT NOT NULL,
    test              TEXT
);
CREATE TABLE IF NOT EXISTS reflections (
    id        INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    kind      TEXT NOT NULL,
    call_id   INTEGER REFERENCES llm_calls(id),
    better_id INTEGER REFERENCES candidates(id),
    worse_id  INTEGER REFERENCES candidates(id),
    text      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replays (
    id            INTEGER PRIMARY KEY,
    candidate_id  INTEGER NOT NULL REFERENCES candidates(id),
    at            REAL NOT NULL,
    split         TEXT NOT NULL,
    archived      REAL,
    replayed      REAL,
    status        TEXT NOT NULL,
    holds         INTEGER NOT NULL,
    sandbox       TEXT,
    failure       TEXT
);
CREATE TABLE IF NOT EXISTS agent_calls (
    id                INTEGER PRIMARY KEY,
    candidate_id      INTEGER REFERENCES candidates(id),
    evaluation        TEXT NOT NULL,
    session           TEXT NOT NULL,
    split             TEXT NOT NULL,
    seed              INTEGER,
    sample_index      INTEGER,
    started_at        REAL NOT NULL,
    model             TEXT NOT NULL,
    messages          TEXT NOT NULL,
    params            TEXT NOT NULL DEFAULT '{}',
    reply             TEXT,
    status            TEXT NOT NULL,
    error             TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL,
    latency_s         REAL
);
CREATE INDEX IF NOT EXISTS agent_calls_candidate ON agent_calls(candidate_id, evaluation, id);
CREATE INDEX IF NOT EXISTS agent_calls_cost ON agent_calls(cost_usd);
-- Multi-file candidates: each file's text once, by sha256, and each candidate's manifest of paths.
CREATE TABLE IF NOT EXISTS blobs (
    sha  TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidate_files (
    candidate_id INTEGER NOT NULL REFERENCES candidates(id),
    path         TEXT NOT NULL,
    sha          TEXT NOT NULL REFERENCES blobs(sha),
    PRIMARY KEY (candidate_id, path)
) WITHOUT ROWID;
"""

# MIGRATIONS[v] upgrades a version-v archive to v + 1. Append only; never edit a released step.
MIGRATIONS: dict[int, str] = {
    # 1 -> 2: a gate decided by one exact comparison (deterministic evaluator) has no p-value, and
    # `test` says which test decided ("exact", "paired permutation"); SQLite cannot drop NOT NULL in place.
    1: """
CREATE TABLE promotions_v2 (
    id                INTEGER PRIMARY KEY,
    at                REAL NOT NULL,
    champion_id       INTEGER NOT NULL REFERENCES candidates(id),
    challenger_id     INTEGER NOT NULL REFERENCES candidates(id),
    split             TEXT NOT NULL,
    seeds             TEXT NOT NULL,
    champion_scores   TEXT NOT NULL,
    challenger_scores TEXT NOT NULL,
    p_value           REAL,
    mean_gain         REAL,
    margin            REAL NOT NULL,
    alpha             REAL NOT NULL,
    promoted          INTEGER NOT NULL,
    reason            TEXT NOT NULL,
    test              TEXT
);
INSERT INTO promotions_v2 SELECT *, 'paired permutation' FROM promotions;
DROP TABLE promotions;
ALTER TABLE promotions_v2 RENAME TO promotions
""",
    # 2 -> 3: agent tasks; every call a candidate's agent makes through the LLM gateway.
    2: """
CREATE TABLE IF NOT EXISTS agent_calls (
    id                INTEGER PRIMARY KEY,
    candidate_id      INTEGER REFERENCES candidates(id),
    evaluation        TEXT NOT NULL,
    session           TEXT NOT NULL,
    split             TEXT NOT NULL,
    seed              INTEGER,
    sample_index      INTEGER,
    started_at        REAL NOT NULL,
    model             TEXT NOT NULL,
    messages          TEXT NOT NULL,
    params            TEXT NOT NULL DEFAULT '{}',
    reply             TEXT,
    status            TEXT NOT NULL,
    error             TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL,
    latency_s         REAL
);
CREATE INDEX IF NOT EXISTS agent_calls_candidate ON agent_calls(candidate_id, evaluation, id);
CREATE INDEX IF NOT EXISTS agent_calls_cost ON agent_calls(cost_usd)
""",
    # 3 -> 4: the cluster node that evaluated each candidate (Ray executor); NULL for local runs.
    3: "ALTER TABLE candidates ADD COLUMN node TEXT",
    # 4 -> 5: multi-file candidates, stored content-addressed. Single-file rows keep their code column, so old archives need no rewrite.
    4: """
CREATE TABLE IF NOT EXISTS blobs (
    sha  TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidate_files (
    candidate_id INTEGER NOT NULL REFERENCES candidates(id),
    path         TEXT NOT NULL,
    sha          TEXT NOT NULL REFERENCES blobs(sha),
    PRIMARY KEY (candidate_id, path)
) WITHOUT ROWID
""",
    # 5 -> 6: the covering index of the per-model usage query (see llm_calls_usage in SCHEMA).
    5: """
CREATE INDEX IF NOT EXISTS llm_calls_usage
    ON llm_calls(model, status, prompt_tokens, completion_tokens, cost_usd, latency_s, started_at, finished_at)
""",
}


def upgrade(db: sqlite3.Connection, version: int) -> int:
    """Apply every migration from version up to SCHEMA_VERSION; returns the version reached."""
    while version < SCHEMA_VERSION:
        step = MIGRATIONS[version]
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, step.split(";")):
                db.execute(statement)
            version += 1
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(version),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return version
