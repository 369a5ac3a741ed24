"""The run archive: one SQLite file (WAL) per run, with an append-only event log.

Every state change is one transaction that appends an event and updates the tables it
describes, so a run killed at any moment (even kill -9) reopens in a consistent state:
an LLM call is either finished with its candidate recorded or marked interrupted, and a
candidate is either evaluated or still pending.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from discovery.archive.schema import ARCHIVE_FILE, SCHEMA, SCHEMA_VERSION, upgrade
from discovery.domain import EVALUATED_FAILURES, Candidate, Status
from discovery.errors import UserError
from discovery.program.tree import Tree, blob_hash, to_listing

CANDIDATE_EXTRAS = ("island", "second_parent_id", "arm", "nearest_id", "similarity")


def stored_code(db: sqlite3.Connection, candidate_id: int, code: str) -> str:
    """A candidate's code: its code column, or for a multi-file candidate the listing of its stored tree."""
    if code:
        return code  # single-file programs and rejected replies keep their text in the column
    try:
        rows = db.execute(
            "SELECT f.path, b.text FROM candidate_files f JOIN blobs b ON b.sha = f.sha"
            " WHERE f.candidate_id = ? ORDER BY f.path",
            (candidate_id,),
        ).fetchall()
    except sqlite3.OperationalError:
        return code  # an archive older than multi-file candidates, opened read-only: no such table
    return to_listing(dict(rows)) if rows else code


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the archive has this table: one older than schema 3, read as it is, has no agent_calls."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return found is not None


def agent_calls_in(
    db: sqlite3.Connection, candidate_id: int | None = None, evaluation: str | None = None
) -> list[dict[str, Any]]:
    """Agent calls on any connection (the store's or a read-only view's), JSON columns decoded, in call order."""
    if not has_table(db, "agent_calls"):
        return []
    sql, args = "SELECT * FROM agent_calls WHERE 1=1", []
    if candidate_id is not None:
        sql, args = sql + " AND candidate_id=?", [*args, candidate_id]
    if evaluation is not None:
        sql, args = sql + " AND evaluation=?", [*args, evaluation]
    out = []
    for r in db.execute(sql + " ORDER BY id", args):
        row = dict(r)
        row["messages"] = json.loads(row["messages"])
        row["params"] = json.loads(row["params"])
        row["reply"] = json.loads(row["reply"]) if row["reply"] is not None else None
        out.append(row)
    return out


USAGE_BY_MODEL = (
    "SELECT model, COUNT(*) AS calls, SUM(status='ok') AS ok, SUM(prompt_tokens) AS prompt_tokens,"
    " SUM(completion_tokens) AS completion_tokens, SUM(cost_usd) AS cost_usd, AVG(latency_s) AS mean_latency_s,"
    " SUM(latency_s) AS total_latency_s, MIN(started_at) AS first_started_at, MAX(finished_at) AS last_finished_at"
    " FROM llm_calls GROUP BY model ORDER BY model"
)


def usage_by_model_in(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per model on any connection: calls, ok calls, tokens, cost, latency and time span (from llm_calls_usage)."""
    return [dict(r) for r in db.execute(USAGE_BY_MODEL)]


def _row_to_candidate(row: sqlite3.Row, db: sqlite3.Connection) -> Candidate:
    return Candidate(
        id=row["id"],
        parent_id=row["parent_id"],
        call_id=row["call_id"],
        operator=row["operator"],
        code=stored_code(db, row["id"], row["code"]),
        status=row["status"],
        score=row["score"],
        fitness=row["fitness"],
        metrics=json.loads(row["metrics"]) if row["metrics"] else {},
        feedback=row["feedback"],
        failure=row["failure"],
        output_tail=row["output_tail"],
        sandbox=row["sandbox"],
        created_at=row["created_at"],
        eval_wall_s=row["eval_wall_s"],
        island=row["island"],
        second_parent_id=row["second_parent_id"],
        arm=row["arm"],
        similarity=row["similarity"],
        stage_fitness=row["stage_fitness"],
        node=row["node"] if "node" in row.keys() else None,  # schema 4; older archives read as they are
    )


class Archive:
    """A run's archive file: candidates, LLM calls, replays and the event log."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            # mode=ro: nothing is ever written, not even the switch to WAL or an empty file's header.
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=5000")
        if readonly:
            return
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes (kill -9) in WAL mode; only power loss can drop
        # the last commits, and it avoids an fsync per candidate.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")

    # ----- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, run_dir: Path, meta: dict[str, Any]) -> Archive:
        """Create a new run archive in run_dir (which must not hold one yet)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / ARCHIVE_FILE
        if path.exists():
            raise UserError(
                f"{path} already exists; pick another --name or resume it with `discovery resume {run_dir}`"
            )
        archive = cls(path)
        archive.db.executescript(SCHEMA)  # executescript commits on its own
        with archive.transaction():
            for key, value in {"schema_version": SCHEMA_VERSION, **meta}.items():
                archive.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return archive

    @classmethod
    def open(cls, run_dir: Path) -> Archive:
        """Open an existing run archive to write to it (brought up to the current schema)."""
        path = Path(run_dir) / ARCHIVE_FILE
        version = cls._check(path)  # read-only first: a file that is no archive is never written
        archive = cls(path)
        upgrade(archive.db, version)
        return archive

    @classmethod
    def open_readonly(cls, run_dir: Path) -> Archive:
        """Open an existing run archive for reading only: no WAL switch, no migration, no write."""
        path = Path(run_dir) / ARCHIVE_FILE
        cls._check(path)  # an older schema is read as it is (views tolerate missing columns)
        return cls(path, readonly=True)

    @classmethod
    def _check(cls, path: Path) -> int:
        """The schema version of the archive at path; UserError when it is missing or not an archive."""
        if not path.is_file():
            raise UserError(f"no archive at {path}; list runs with `discovery archive list`")
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty: not a discovery archive")
        try:
            probe = cls(path, readonly=True)
        except sqlite3.Error as exc:
            raise UserError(f"{path} is not a discovery archive ({exc})") from None
        try:
            version = probe.meta().get("schema_version")
        except (sqlite3.Error, ValueError, TypeError, AttributeError) as exc:
            raise UserError(f"{path} is not a discovery archive ({exc})") from None
        finally:
            probe.close()
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UserError(
                f"{path} has archive schema {version}; this discovery reads schema {SCHEMA_VERSION} "
                "and older: upgrade discovery to open it"
            )
        return version

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _event(
        self, kind: str, candidate_id: int | None = None, call_id: int | None = None, **data: Any
    ) -> None:
        self.db.execute(
            "INSERT INTO events(at, kind, candidate_id, call_id, data) VALUES (?, ?, ?, ?, ?)",
            (time.time(), kind, candidate_id, call_id, json.dumps(data, default=str)),
        )

    # ----- meta ------------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def log_event(self, kind: str, **data: Any) -> None:
        """Append a run-level event (started, resumed, stopped, ...)."""
        with self.transaction():
            self._event(kind, **data)

    # ----- LLM calls -------------------------------------------------------------------------

    def start_call(self, model: str, operator: str, parent_id: int | None, seed: int, prompt: str) -> int:
        """Record an LLM call before it is sent, so the budget counts it even if the run dies."""
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO llm_calls(started_at, model, operator, parent_id, seed, prompt, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'started')",
                (time.time(), model, operator, parent_id, seed, prompt),
            )
            call_id = cur.lastrowid
            self._event("call_started", call_id=call_id, model=model, operator=operator, parent_id=parent_id)
        return call_id

    def _finish_call(
        self, call_id: int, status: str, reply: str | None, error: str | None, usage: dict
    ) -> None:
        self.db.execute(
            "UPDATE llm_calls SET finished_at=?, status=?, reply=?, error=?, prompt_tokens=?, completion_tokens=?,"
            " cost_usd=?, latency_s=? WHERE id=?",
            (
                time.time(),
                status,
                reply,
                error,
                usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0),
                usage.get("cost_usd"),
                usage.get("latency_s"),
                call_id,
            ),
        )
        self._event(
            "call_finished", call_id=call_id, status=status, error=error, cost_usd=usage.get("cost_usd")
        )

    def fail_call(
        self, call_id: int, status: str, error: str, reply: str | None = None, usage: dict | None = None
    ) -> None:
        """Record a call that produced no candidate (provider error, empty or refused reply)."""
        with self.transaction():
            self._finish_call(call_id, status, reply, error, usage or {})

    def finish_call(self, call_id: int, reply: str, usage: dict) -> None:
        """Record a good reply that yields no candidate (a reflection)."""
        with self.transaction():
            self._finish_call(call_id, "ok", reply, None, usage)

    def finish_call_with_candidate(
        self,
        call_id: int,
        reply: str,
        usage: dict,
        parent_id: int | None,
        operator: str,
        code: str,
        normalised_hash: str,
        status: str = Status.PENDING,
        failure: str | None = None,
        extra: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        files: Tree | None = None,
        design: dict[str, str] | None = None,
    ) -> int:
        """Record a reply and the candidate it yielded (pending, or rejected with its reason), atomically.

        `extra` fills optional candidate columns (CANDIDATE_EXTRAS); `meta` updates search state in
        the same transaction, so a crash can never record one without the other. `files`, for a
        multi-file candidate, is its tree: stored as blobs and a manifest instead of `code`. `design`
        (an agent's name and rationale) goes into a `candidate_designed` event: no column needed.
        """
        with self.transaction():
            self._finish_call(call_id, "ok", reply, None, usage)
            candidate_id = self._insert_candidate(
                parent_id, call_id, operator, code, normalised_hash, status, failure, files
            )
            for column, value in (extra or {}).items():
                if column not in CANDIDATE_EXTRAS:
                    raise ValueError(f"unknown candidate column {column}")
                self.db.execute(f"UPDATE candidates SET {column}=? WHERE id=?", (value, candidate_id))
            if design:
                self._event("candidate_designed", candidate_id=candidate_id, call_id=call_id, **design)
            self.set_meta_items(meta)
            return candidate_id

    def set_meta_items(self, meta: dict[str, Any] | None) -> None:
        for key, value in (meta or {}).items():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def _insert_candidate(
        self,
        parent_id: int | None,
        call_id: int | None,
        operator: str,
        code: str,
        normalised_hash: str,
        status: str,
        failure: str | None,
        files: Tree | None = None,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO candidates(parent_id, call_id, created_at, operator, code, code_hash, status, failure)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                parent_id,
                call_id,
                time.time(),
                operator,
                "" if files else code,
                normalised_hash,
                status,
                failure,
            ),
        )
        candidate_id = cur.lastrowid
        if files:
            self._store_tree(candidate_id, files)
        kind = "candidate_rejected" if status.startswith("rejected") else "candidate_created"
        self._event(kind, candidate_id=candidate_id, call_id=call_id, status=status, failure=failure)
        return candidate_id

    def _store_tree(self, candidate_id: int, files: Tree) -> None:
        """Store a candidate's tree: each file's text once by content hash, then its manifest."""
        shas = {path: blob_hash(text) for path, text in files.items()}
        self.db.executemany(
            "INSERT OR IGNORE INTO blobs(sha, text) VALUES (?, ?)", [(shas[p], t) for p, t in files.items()]
        )
        self.db.executemany(
            "INSERT INTO candidate_files(candidate_id, path, sha) VALUES (?, ?, ?)",
            [(candidate_id, path, sha) for path, sha in sorted(shas.items())],
        )

    def add_seed(self, code: str, normalised_hash: str, files: Tree | None = None) -> int:
        """Record the task's seed program (with its tree, for a multi-file task) as the first candidate."""
        with self.transaction():
            return self._insert_candidate(
                None, None, "seed", code, normalised_hash, Status.PENDING, None, files
            )

    def requeue(self, candidate_id: int, why: str) -> None:
        """Put an evaluated candidate back to pending (its result said nothing about it), with an event."""
        with self.transaction():
            self.db.execute(
                "UPDATE candidates SET status='pending', score=NULL, fitness=NULL, failure=NULL, evaluated_at=NULL"
                " WHERE id=?",
                (candidate_id,),
            )
            self._event("requeued", candidate_id=candidate_id, why=why)

    def interrupt_unfinished_calls(self) -> int:
        """Mark calls that were in flight when the run died; they still count against the budget."""
        with self.transaction():
            rows = self.db.execute("SELECT id FROM llm_calls WHERE status='started'").fetchall()
            for row in rows:
                self.db.execute(
                    "UPDATE llm_calls SET status='interrupted', finished_at=? WHERE id=?",
                    (time.time(), row["id"]),
                )
                self._event("call_interrupted", call_id=row["id"])
        return len(rows)

    # ----- evaluation ------------------------------------------------------------------------

    def record_evaluation(
        self,
        candidate_id: int,
        status: str,
        score: float | None,
        fitness: float | None,
        metrics: dict,
        feedback: str | None,
        failure: str | None,
        output_tail: str | None,
        sandbox: str,
        split: str,
        wall_s: float,
        stage_fitness: float | None = None,
        meta: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] = (),
        node: str | None = None,
    ) -> None:
        """Store an evaluation result; a candidate is evaluated once, so a second result is an error.

        `node` names the cluster node that ran it (Ray executor), None when it ran on this machine.
        `meta` (search state such as islands or bandit statistics) and `events` (migrations, resets)
        commit in the same transaction as the result.
        """
        with self.transaction():
            cur = self.db.execute(
                "UPDATE candidates SET status=?, score=?, fitness=?, metrics=?, feedback=?, failure=?, output_tail=?,"
                " sandbox=?, split=?, eval_wall_s=?, evaluated_at=?, stage_fitness=?, node=?"
                " WHERE id=? AND status='pending'",
                (
                    status,
                    score,
                    fitness,
                    json.dumps(metrics),
                    feedback,
                    failure,
                    output_tail,
                    sandbox,
                    split,
                    wall_s,
                    time.time(),
                    stage_fitness,
                    node,
                    candidate_id,
                ),
            )
            if cur.rowcount != 1:
                raise RuntimeError(
                    f"candidate {candidate_id} is not pending; refusing to record a second evaluation"
                )
            self._event(
                "candidate_evaluated", candidate_id=candidate_id, status=status, score=score, failure=failure
            )
            for kind, data in events:
                self._event(kind, candidate_id=candidate_id, **data)
            self.set_meta_items(meta)

    def record_promotion(
        self,
        champion_id: int,
        challenger_id: int,
        split: str,
        seeds: list[int],
        champion_scores: list[float | None],
        challenger_scores: list[float | None],
        p_value: float | None,
        mean_gain: float | None,
        margin: float,
        alpha: float,
        promoted: bool,
        reason: str,
        test: str | None = None,
    ) -> None:
        """Record one promotion-gate decision; a promotion also makes the challenger the champion."""
        gain = (
            None if mean_gain is None or mean_gain != mean_gain else mean_gain
        )  # NaN is not JSON/SQL friendly
        with self.transaction():
            self.db.execute(
                "INSERT INTO promotions(at, champion_id, challenger_id, split, seeds, champion_scores,"
                " challenger_scores, p_value, mean_gain, margin, alpha, promoted, reason, test)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    champion_id,
                    challenger_id,
                    split,
                    json.dumps(seeds),
                    json.dumps(champion_scores),
                    json.dumps(challenger_scores),
                    p_value,
                    gain,
                    margin,
                    alpha,
                    int(promoted),
                    reason,
                    test,
                ),
            )
            if promoted:
                self.set_meta_items({"champion_id": challenger_id})
            self._event(
                "promotion",
                candidate_id=challenger_id,
                champion_id=champion_id,
                p_value=p_value,
                test=test,
                promoted=promoted,
            )

    def record_reflection(
        self,
        kind: str,
        call_id: int,
        reply: str,
        usage: dict,
        text: str,
        better_id: int | None,
        worse_id: int | None,
    ) -> None:
        """Record a reflection call's reply and the lesson taken from it, atomically."""
        with self.transaction():
            self._finish_call(call_id, "ok", reply, None, usage)
            cur = self.db.execute(
                "INSERT INTO reflections(at, kind, call_id, better_id, worse_id, text) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), kind, call_id, better_id, worse_id, text),
            )
            self._event("reflection", call_id=call_id, reflection=kind, reflection_id=cur.lastrowid)

    def record_replay(
        self,
        candidate_id: int,
        split: str,
        archived: float | None,
        replayed: float | None,
        status: str,
        holds: bool,
        sandbox: str,
        failure: str | None,
    ) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO replays(candidate_id, at, split, archived, replayed, status, holds, sandbox, failure)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (candidate_id, time.time(), split, archived, replayed, status, int(holds), sandbox, failure),
            )
            self._event("replayed", candidate_id=candidate_id, replayed=replayed, holds=holds)

    # ----- queries ---------------------------------------------------------------------------

    def candidate(self, candidate_id: int) -> Candidate:
        row = self.db.execute("SELECT * FROM candidates WHERE id=?", (candidate_id,)).fetchone()
        if row is None:
            raise UserError(f"no candidate {candidate_id} in {self.path}")
        return _row_to_candidate(row, self.db)

    def candidates(self, status: str | None = None) -> list[Candidate]:
        if status is None:
            rows = self.db.execute("SELECT * FROM candidates ORDER BY id")
        else:
            rows = self.db.execute("SELECT * FROM candidates WHERE status=? ORDER BY id", (status,))
        return [_row_to_candidate(r, self.db) for r in rows]

    def seed(self) -> Candidate:
        """The task's seed program: always the first candidate."""
        row = self.db.execute("SELECT * FROM candidates ORDER BY id LIMIT 1").fetchone()
        if row is None:
            raise UserError(f"{self.path} holds no candidates yet")
        return _row_to_candidate(row, self.db)

    def failed_children(self, parent_id: int, limit: int) -> list[Candidate]:
        """The latest children of a parent that failed with a recorded reason, oldest first."""
        rows = self.db.execute(
            "SELECT * FROM candidates WHERE parent_id=? AND status NOT IN ('ok', 'pending')"
            " AND COALESCE(failure, '') != '' ORDER BY id DESC LIMIT ?",
            (parent_id, limit),
        ).fetchall()
        return [_row_to_candidate(r, self.db) for r in reversed(rows)]

    def candidates_with_status(self, status: str) -> list[int]:
        """Ids of the candidates in one status, oldest first."""
        return [r["id"] for r in self.db.execute("SELECT id FROM candidates WHERE status=? ORDER BY id", (status,))]

    def pending_ids(self) -> list[int]:
        return self.candidates_with_status("pending")

    def has_hash(self, normalised_hash: str) -> bool:
        """Whether an equivalent program was already proposed (rejected ones excluded)."""
        row = self.db.execute(
            "SELECT 1 FROM candidates WHERE code_hash=? AND status NOT LIKE 'rejected%' LIMIT 1",
            (normalised_hash,),
        ).fetchone()
        return row is not None

    def best(self) -> Candidate | None:
        row = self.db.execute(
            "SELECT * FROM candidates WHERE status='ok' ORDER BY fitness DESC, id ASC LIMIT 1"
        ).fetchone()
        return _row_to_candidate(row, self.db) if row else None

    def children_counts(self) -> dict[int, int]:
        rows = self.db.execute(
            "SELECT parent_id, COUNT(*) AS n FROM candidates WHERE parent_id IS NOT NULL GROUP BY parent_id"
        )
        return {r["parent_id"]: r["n"] for r in rows}

    def lineage(self, candidate_id: int) -> list[Candidate]:
        """The candidate and its ancestors, newest first."""
        chain = []
        current: int | None = candidate_id
        while current is not None:
            c = self.candidate(current)
            chain.append(c)
            current = c.parent_id
        return chain

    def call(self, call_id: int) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM llm_calls WHERE id=?", (call_id,)).fetchone()
        return dict(row) if row else {}

    def calls_made(self) -> int:
        """LLM calls started so far, including failed and interrupted ones: what the budget counts."""
        return self.db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]

    def total_cost(self) -> float:
        """USD spent by the run: mutation calls and agent calls together (what --max-cost covers)."""
        return self.mutation_cost() + self.agent_cost()

    def mutation_cost(self) -> float:
        """USD spent on the search's own calls (proposals, repairs, reflections)."""
        return self.db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls").fetchone()[0]

    # ----- agent calls -----------------------------------------------------------------------

    def record_agent_call(self, call: dict[str, Any]) -> int:
        """Store one call a candidate's agent made through the gateway (before its reply is sent)."""
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO agent_calls(candidate_id, evaluation, session, split, seed, sample_index, started_at, model,"
                " messages, params, reply, status, error, prompt_tokens, completion_tokens, cost_usd, latency_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.get("candidate_id"),
                    call["evaluation"],
                    call.get("session", ""),
                    call["split"],
                    call.get("seed"),
                    call.get("sample_index"),
                    call["started_at"],
                    call["model"],
                    json.dumps(call["messages"]),
                    json.dumps(call.get("params") or {}),
                    json.dumps(call["reply"]) if call.get("reply") is not None else None,
                    call["status"],
                    call.get("error"),
                    call.get("prompt_tokens", 0),
                    call.get("completion_tokens", 0),
                    call.get("cost_usd"),
                    call.get("latency_s"),
                ),
            )
            return cur.lastrowid

    def agent_calls(
        self, candidate_id: int | None = None, evaluation: str | None = None
    ) -> list[dict[str, Any]]:
        """Agent calls in the order they were made, of one candidate (and one evaluation) if named."""
        return agent_calls_in(self.db, candidate_id, evaluation)

    def agent_cost(self) -> float:
        """USD spent by candidates' agents through the gateway."""
        if not has_table(self.db, "agent_calls"):
            return 0.0
        return self.db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM agent_calls").fetchone()[0]

    def agent_usage(self) -> dict[str, Any]:
        """Agent calls in total: count, refused, tokens and cost (shown apart from the mutation calls)."""
        if not has_table(self.db, "agent_calls"):
            return {"calls": 0, "not_ok": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "unpriced": 0}
        row = self.db.execute(
            "SELECT COUNT(*) AS calls, COALESCE(SUM(status != 'ok'), 0) AS not_ok,"
            " COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens, COALESCE(SUM(completion_tokens), 0)"
            " AS completion_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd,"
            " COALESCE(SUM(cost_usd IS NULL AND status = 'ok'), 0) AS unpriced FROM agent_calls"
        ).fetchone()
        return dict(row)

    def children_by_maker(self) -> list[dict[str, Any]]:
        """Children a coding agent made (--mutator), per agent: how many, how many scored, and their agent calls."""
        if not has_table(self.db, "agent_calls"):
            return []  # an archive older than agent calls, read as it is: no coding agents either
        rows = self.db.execute(
            "SELECT l.model AS maker, COUNT(c.id) AS children, COALESCE(SUM(c.status = 'ok'), 0) AS ok,"
            " COALESCE(SUM(a.calls), 0) AS agent_calls, COALESCE(SUM(a.tokens), 0) AS agent_tokens,"
            " COALESCE(SUM(a.cost), 0) AS agent_cost_usd"
            " FROM candidates c JOIN llm_calls l ON l.id = c.call_id"
            " LEFT JOIN (SELECT evaluation, COUNT(*) AS calls, SUM(prompt_tokens + completion_tokens) AS tokens,"
            " SUM(cost_usd) AS cost FROM agent_calls WHERE evaluation LIKE 'mutation:%' GROUP BY evaluation) a"
            " ON a.evaluation = 'mutation:' || l.id"
            " WHERE l.operator = 'agent' GROUP BY l.model ORDER BY l.model"
        )
        return [dict(r) for r in rows]

    def status_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) AS n FROM candidates GROUP BY status")
        return {r["status"]: r["n"] for r in rows}

    def usage_by_model(self) -> list[dict[str, Any]]:
        """Per model: calls, ok calls, tokens, cost and mean latency of the search's own LLM calls."""
        return usage_by_model_in(self.db)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events" + (" WHERE kind=?" if kind else "") + " ORDER BY seq"
        rows = self.db.execute(sql, (kind,) if kind else ())
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    def designs(self) -> dict[int, dict[str, str]]:
        """Agents' names and rationales by candidate id (agent tasks; from `candidate_designed` events)."""
        rows = self.db.execute(
            "SELECT candidate_id, data FROM events WHERE kind = 'candidate_designed' ORDER BY seq"
        )
        return {r["candidate_id"]: json.loads(r["data"]) for r in rows}

    def champion_id(self) -> int | None:
        """The promoted champion, or the seed before any promotion."""
        champion = self.meta().get("champion_id")
        if champion is not None:
            return champion
        first = self.db.execute("SELECT id FROM candidates ORDER BY id LIMIT 1").fetchone()
        return first["id"] if first else None

    def promotions(self) -> list[dict[str, Any]]:
        out = []
        for r in self.db.execute("SELECT * FROM promotions ORDER BY id"):
            row = dict(r)
            for key in ("seeds", "champion_scores", "challenger_scores"):
                row[key] = json.loads(row[key])
            row.setdefault("test", "paired permutation")  # a schema-1 archive read as it is
            out.append(row)
        return out

    def gated(self, candidate_id: int) -> bool:
        """Whether a candidate already went through the promotion gate."""
        row = self.db.execute(
            "SELECT 1 FROM promotions WHERE challenger_id=? LIMIT 1", (candidate_id,)
        ).fetchone()
        return row is not None

    def reflections(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM reflections" + (" WHERE kind=?" if kind else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(sql, (kind,) if kind else ())]

    def replays(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM replays ORDER BY id")]

    def call_status_counts(self) -> dict[str, int]:
        """LLM calls per status (ok, error, interrupted, ...)."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM llm_calls GROUP BY status").fetchall())

    def last_call_error(self) -> str | None:
        """The error text of the latest failed LLM call."""
        row = self.db.execute(
            "SELECT error FROM llm_calls WHERE status = 'error' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def last_event_seq(self) -> int:
        """The sequence number of the latest event (0 when none)."""
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]

    def evaluated_since(self, seq: int) -> list[dict[str, Any]]:
        """Candidates evaluated after event `seq`, in the order their results were written."""
        rows = self.db.execute(
            "SELECT e.seq, c.id, c.parent_id, c.operator, c.status, c.score, c.eval_wall_s FROM events e"
            " JOIN candidates c ON c.id = e.candidate_id WHERE e.kind = 'candidate_evaluated' AND e.seq > ?"
            " ORDER BY e.seq",
            (seq,),
        )
        return [dict(r) for r in rows]

    def calls_without_price(self) -> int:
        """LLM calls whose cost is unknown (no price for the model)."""
        return self.db.execute("SELECT COUNT(*) FROM llm_calls WHERE cost_usd IS NULL").fetchone()[0]
