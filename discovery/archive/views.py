"""Read-only views of archives as plain data: run list, run report, candidate report, diffs, summary.

The CLI's tables and the end-of-run summary render these; nothing here prints or writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from discovery.archive.schema import ARCHIVE_FILE, SCHEMA_VERSION
from discovery.archive.store import (
    Archive,
    _row_to_candidate,
    agent_calls_in,
    has_table,
    stored_code,
    usage_by_model_in,
)
from discovery.domain import Candidate
from discovery.errors import UserError
from discovery.program.tree import from_listing, is_listing, tree_diff

log = logging.getLogger(__name__)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def known_cost(archive: Archive) -> float | None:
    """USD spent, or None when calls were made and none had a known price (unknown is not $0)."""
    calls = archive.calls_made()
    if calls and archive.calls_without_price() == calls:
        return None
    return archive.total_cost()


def money(value: float | None) -> str:
    """A cost for a table: 4 decimals, or 'unknown'."""
    return "unknown" if value is None else f"${value:.4f}"


def mean_of(scores: list[float | None]) -> float | None:
    """Mean of the repeats that ran (None marks a failed repeat)."""
    done = [s for s in scores if s is not None]
    return sum(done) / len(done) if done else None


def heldout_of(promotions: list[dict[str, Any]], candidate_id: int) -> tuple[float | None, int, str] | None:
    """A candidate's latest held-out mean from the gate, with the repeat count and split."""
    for g in reversed(promotions):
        for key, who in (("challenger_scores", "challenger_id"), ("champion_scores", "champion_id")):
            if g[who] == candidate_id:
                return mean_of(g[key]), len(g[key]), g["split"]
    return None


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One summary row per run folder under root, newest first."""
    rows = []
    for path in sorted(root.glob(f"*/{ARCHIVE_FILE}")):
        try:
            archive = Archive.open_readonly(path.parent)
        except UserError as exc:
            log.warning("skipping %s: %s", path.parent.name, exc)
            continue
        try:
            meta, best = archive.meta(), archive.best()
            rows.append(
                {
                    "run": path.parent.name,
                    "task": meta.get("task"),
                    "created_at": meta.get("created_at"),
                    "calls": archive.calls_made(),
                    "budget": meta.get("config", {}).get("budget"),
                    "candidates": sum(archive.status_counts().values()),
                    "best_score": best.score if best else None,
                    "cost_usd": known_cost(archive),
                }
            )
        finally:
            archive.close()
    return sorted(rows, key=lambda r: r["created_at"] or 0, reverse=True)


def run_report(run_dir: Path, top: int = 10) -> dict[str, Any]:
    """Everything `archive show` prints: config, status counts, top candidates, usage, stops, replays."""
    archive = Archive.open_readonly(run_dir)
    try:
        meta = archive.meta()
        everyone = archive.candidates()
        ok = sorted((c for c in everyone if c.status == "ok"), key=lambda c: -c.fitness)
        seed = everyone[0] if everyone else None
        failed = [c for c in everyone if c.status not in ("ok", "pending")]
        designs = archive.designs()
        return {
            "run": run_dir.name,
            "task": meta.get("task"),
            "task_path": meta.get("task_path"),
            "config": meta.get("config"),
            "status_counts": archive.status_counts(),
            "calls": archive.calls_made(),
            "cost_usd": known_cost(archive),
            "mutation_cost_usd": archive.mutation_cost(),
            "agent": archive.agent_usage(),
            "seed_score": seed.score if seed else None,
            "top": [
                {
                    "id": c.id,
                    "parent_id": c.parent_id,
                    "score": c.score,
                    "operator": c.operator,
                    "eval_wall_s": c.eval_wall_s,
                    "sandbox": c.sandbox,
                    "node": c.node,
                    "name": designs.get(c.id, {}).get("name"),
                }
                for c in ok[:top]
            ],
            "failures": [
                {
                    "id": c.id,
                    "parent_id": c.parent_id,
                    "operator": c.operator,
                    "status": c.status,
                    "reason": failure_line(c.failure),
                }
                for c in failed[-top:]
            ],
            "nodes": dict(Counter(c.node for c in everyone if c.node)),
            "models": archive.usage_by_model(),
            "makers": archive.children_by_maker(),
            "stops": [{"at": e["at"], **e["data"]} for e in archive.events("run_stopped")],
            "replays": archive.replays(),
            "champion_id": archive.champion_id(),
            "promotions": archive.promotions(),
        }
    finally:
        archive.close()


def failure_line(failure: str | None) -> str:
    """The line of a failure that says most: the last one (a traceback's exception, a rejection's reason)."""
    lines = (failure or "").strip().splitlines()
    return lines[-1][:FAILURE_HEAD] if lines else ""


def candidate_report(run_dir: Path, candidate_id: int) -> dict[str, Any]:
    """One candidate in full: code, metrics, feedback, lineage, prompt and raw reply, failure and output."""
    archive = Archive.open_readonly(run_dir)
    try:
        c = archive.candidate(candidate_id)
        call = archive.call(c.call_id) if c.call_id else {}
        return {
            **dataclasses.asdict(c),
            "lineage": [{"id": a.id, "score": a.score, "status": a.status} for a in archive.lineage(c.id)],
            "model": call.get("model"),
            "prompt": call.get("prompt"),
            "reply": call.get("reply"),
            "cost_usd": call.get("cost_usd"),
            "tokens": (call.get("prompt_tokens"), call.get("completion_tokens")) if call else None,
            "agent_calls": (agent_calls := archive.agent_calls(candidate_id)),
            "agent_totals": agent_totals(agent_calls),
            "design": archive.designs().get(candidate_id),
            "made_by": made_by(archive, c.operator, call),
        }
    finally:
        archive.close()


def made_by(archive: Archive, operator: str, call: dict[str, Any]) -> dict[str, Any] | None:
    """Who made a candidate and at what cost: the coding agent (--mutator) and its calls, or the prompt operator."""
    if not call:
        return None
    if operator != "agent":
        tokens = (call.get("prompt_tokens") or 0) + (call.get("completion_tokens") or 0)
        return {
            "maker": f"{operator} prompt to {call['model']}",
            "calls": 1,
            "tokens": tokens,
            "cost_usd": call.get("cost_usd"),
        }
    calls = archive.agent_calls(None, f"mutation:{call['id']}")
    return {
        "maker": call["model"],
        "calls": len(calls),
        "tokens": sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls),
        "cost_usd": sum(c["cost_usd"] or 0.0 for c in calls),
    }


def diff_candidates(run_dir: Path, a: int, b: int) -> str:
    """Unified diff from candidate a to candidate b."""
    archive = Archive.open_readonly(run_dir)
    try:
        ca, cb = archive.candidate(a), archive.candidate(b)
    finally:
        archive.close()
    return unified_diff(ca.code, cb.code, f"candidate {a}", f"candidate {b}")


def model_speed(usage: dict[str, Any]) -> dict[str, Any]:
    """A model's pace: completion tokens per second of call time, and calls per minute of wall time."""
    busy = usage.get("total_latency_s") or 0.0
    first, last = usage.get("first_started_at"), usage.get("last_finished_at")
    span = (last - first) if first is not None and last is not None else 0.0
    return {
        "model": usage["model"],
        "tokens_per_s": usage["completion_tokens"] / busy if busy > 0 else None,
        "calls_per_min": usage["calls"] / (span / 60) if span > 0 else None,
    }


def run_summary(run_dir: Path) -> dict[str, Any]:
    """What the end-of-run summary shows: seed, best, champion, counts, calls and spend."""
    archive = Archive.open_readonly(run_dir)
    try:
        candidates = archive.candidates()
        champion = archive.candidate(archive.champion_id()) if candidates else None
        return {
            "seed": candidates[0] if candidates else None,
            "best": archive.best(),
            "counts": archive.status_counts(),
            "cost": known_cost(archive),
            "calls": archive.calls_made(),
            "call_counts": archive.call_status_counts(),
            "last_error": archive.last_call_error(),
            "unknown_cost": archive.calls_without_price(),
            "sandboxes": {c.sandbox for c in candidates if c.sandbox},
            "champion": champion,
            "heldout": heldout_of(archive.promotions(), champion.id) if champion else None,
            "train_split": archive.meta().get("train_split", "train"),
            "budget": (archive.meta().get("config") or {}).get("budget"),
            "speed": [model_speed(m) for m in archive.usage_by_model()],
        }
    finally:
        archive.close()


# ----- read-only views for the web explorer, the HTML report and plots --------------------------
# These open the archive with a read-only SQLite URI (mode=ro): they never write, never switch the
# journal mode and never migrate, so a browser left open cannot disturb a run in progress.

POINT_COLUMNS = (
    "id", "parent_id", "second_parent_id", "call_id", "operator", "status", "score", "fitness", "island", "arm",
    "created_at", "evaluated_at", "failure",
)  # fmt: skip
POINT_KEYS = (*POINT_COLUMNS, "x_calls", "x_cost", "x_time")
MMAP_BYTES = 1 << 30
LIVE_WINDOW_S = 600  # a run with no stop recorded and no event for this long is reported as not running
FAILURE_HEAD = 160  # characters of a failure kept for grouping and tooltips


def connect_ro(run_dir: Path) -> sqlite3.Connection:
    """A read-only connection to a run's archive; UserError when there is none or it is too new."""
    path = Path(run_dir) / ARCHIVE_FILE
    if not path.is_file():
        raise UserError(f"no archive at {path}; list runs with `discovery archive list`")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout=5000")
    # Read pages through a memory map: a full scan of a 10,000-candidate archive runs ~2-3x faster.
    db.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    version = json.loads(row[0]) if row else None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        db.close()
        raise UserError(
            f"{path} has archive schema {version}; this viewer reads schema {SCHEMA_VERSION} and older: "
            "upgrade discovery to open it"
        )
    return db  # an older schema is read as it is (no agent_calls before 3: none shown)


@contextlib.contextmanager
def read_only(run_dir: Path) -> Iterator[sqlite3.Connection]:
    """connect_ro as a context manager that always closes."""
    db = connect_ro(run_dir)
    try:
        yield db
    finally:
        db.close()


def _meta(db: sqlite3.Connection) -> dict[str, Any]:
    return {r["key"]: json.loads(r["value"]) for r in db.execute("SELECT key, value FROM meta")}


def version_of(db: sqlite3.Connection) -> int:
    """A number that grows with every change to the archive (its last event), for live refresh."""
    return db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]


def run_state(db: sqlite3.Connection, now: float | None = None) -> dict[str, Any]:
    """Whether the run is going: stopped (and why) when its last run event is a stop, else running or gone."""
    row = db.execute(
        "SELECT kind, at, data FROM events WHERE kind IN ('run_started', 'run_resumed', 'run_stopped')"
        " ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    newest = db.execute("SELECT at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    last = newest[0] if newest else None
    if row is not None and row["kind"] == "run_stopped":
        return {"state": "stopped", "reason": json.loads(row["data"]).get("reason"), "running": False}
    if last is not None and (now or time.time()) - last < LIVE_WINDOW_S:
        return {"state": "running", "reason": None, "running": True}
    return {
        "state": "not running",
        "reason": "no stop recorded (killed?): `discovery resume` continues it",
        "running": False,
    }


def _champion(db: sqlite3.Connection, meta: dict[str, Any]) -> int | None:
    if meta.get("champion_id") is not None:
        return meta["champion_id"]
    row = db.execute("SELECT id FROM candidates ORDER BY id LIMIT 1").fetchone()
    return row[0] if row else None


def _promotions(db: sqlite3.Connection) -> list[dict[str, Any]]:
    out = []
    for r in db.execute("SELECT * FROM promotions ORDER BY id"):
        row = dict(r)
        for key in ("seeds", "champion_scores", "challenger_scores"):
            row[key] = json.loads(row[key])
        out.append(row)
    return out


def _score_of(db: sqlite3.Connection, candidate_id: int | None) -> float | None:
    if candidate_id is None:
        return None
    row = db.execute("SELECT score FROM candidates WHERE id=?", (candidate_id,)).fetchone()
    return row[0] if row else None


def run_overview(
    db: sqlite3.Connection, name: str, points: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One run in a line: task, strategy, models, calls, cost, seed, best and champion scores, state.

    Given the run's candidate_points, counts and the best are taken from them instead of queried again.
    """
    meta = _meta(db)
    config = meta.get("config") or {}
    calls, cost, unpriced = _spend(db, "llm_calls")
    agent_calls, agent_cost, agent_unpriced = _spend(db, "agent_calls")
    if points is None:
        counts = dict(db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall())
        best = db.execute(
            "SELECT id, score FROM candidates WHERE status='ok' ORDER BY fitness DESC, id ASC LIMIT 1"
        ).fetchone()
        seed = db.execute("SELECT id, score FROM candidates ORDER BY id LIMIT 1").fetchone()
    else:
        counts = {}
        for p in points:
            counts[p["status"]] = counts.get(p["status"], 0) + 1
        ok = [p for p in points if p["status"] == "ok"]
        best = max(ok, key=lambda p: (p["fitness"], -p["id"])) if ok else None
        seed = points[0] if points else None
    champion = _champion(db, meta)
    promotions = _promotions(db)
    held = heldout_of(promotions, champion) if champion is not None else None
    return {
        "run": name,
        "task": meta.get("task"),
        "created_at": meta.get("created_at"),
        "strategy": config.get("strategy"),
        "models": [m.get("name") for m in config.get("models", [])],
        "seed": config.get("seed"),
        "budget": config.get("budget"),
        "calls": calls,
        "cost_usd": cost,
        "unpriced_calls": unpriced,
        "agent_calls": agent_calls,
        "agent_cost_usd": agent_cost,
        "agent_unpriced_calls": agent_unpriced,
        "candidates": sum(counts.values()),
        "status_counts": counts,
        "seed_score": seed["score"] if seed else None,
        "best_id": best["id"] if best else None,
        "best_score": best["score"] if best else None,
        "champion_id": champion,
        "champion_score": _score_of(db, champion),
        "champion_heldout": held[0] if held else None,
        "champion_gate_split": held[2] if held else None,
        "version": version_of(db),
        **run_state(db),
    }


def _spend(db: sqlite3.Connection, table: str) -> tuple[int, float, int]:
    """Calls, USD of the priced ones and unpriced calls in llm_calls or agent_calls (read from its cost index)."""
    if not has_table(db, table):
        return 0, 0.0, 0
    calls, cost, unpriced = db.execute(
        f"SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(cost_usd IS NULL), 0) FROM {table}"
    ).fetchone()
    return calls, cost, unpriced


def _cumulative_cost(db: sqlite3.Connection) -> dict[int, float]:
    """For each LLM call id: USD spent up to and including it (read from the small cost index)."""
    out, total = {}, 0.0
    rows = sorted(tuple(r) for r in db.execute("SELECT id, cost_usd FROM llm_calls"))
    for call_id, cost in rows:
        total += cost or 0.0
        out[call_id] = total
    return out


def candidate_points(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every candidate as a light record (no code, prompt or reply) with its position on each x axis.

    calls: the id of the LLM call that wrote it (the seed is 0); cost: USD spent up to that call;
    time: seconds from the run's start to its evaluation (or creation, if not evaluated).
    """
    meta = _meta(db)
    first = db.execute("SELECT MIN(created_at) FROM candidates").fetchone()[0]
    start = meta.get("created_at") or first or 0.0
    spent = _cumulative_cost(db)
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: sqlite3.Row -> dict costs more than the query at 10,000 rows
    rows = cursor.execute(
        f"SELECT {', '.join(POINT_COLUMNS[:-1])}, substr(failure, 1, {FAILURE_HEAD}) FROM candidates ORDER BY id"
    )
    call, created, evaluated = (POINT_COLUMNS.index(k) for k in ("call_id", "created_at", "evaluated_at"))
    cost_at = spent.get
    # One comprehension, no per-key stores: this runs once per candidate on every run page.
    return [
        dict(
            zip(
                POINT_KEYS,
                (*row, row[call] or 0, cost_at(row[call], 0.0), (row[evaluated] or row[created]) - start),
            )
        )
        for row in rows
    ]


def best_so_far(points: list[dict[str, Any]], x: str = "calls") -> list[tuple[float, float, int]]:
    """The best-so-far step curve: (x, score, candidate id) at each ok candidate that raised the best."""
    steps: list[tuple[float, float, int]] = []
    best: float | None = None
    for p in sorted((p for p in points if p["status"] == "ok"), key=lambda p: (p[f"x_{x}"], p["id"])):
        if best is None or p["fitness"] > best:
            best = p["fitness"]
            steps.append((p[f"x_{x}"], p["score"], p["id"]))
    return steps


def champion_history(db: sqlite3.Connection, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each champion in turn: who, when (its position on every axis), train score and held-out mean."""
    by_id = {p["id"]: p for p in points}
    history = []
    if points:
        seed = points[0]
        first = db.execute("SELECT champion_scores FROM promotions ORDER BY id LIMIT 1").fetchone()
        held = mean_of(json.loads(first[0])) if first else None
        history.append({"id": seed["id"], "train": seed["score"], "heldout": held, **_axes_of(seed)})
    for g in _promotions(db):
        if g["promoted"] and g["challenger_id"] in by_id:
            p = by_id[g["challenger_id"]]
            history.append(
                {
                    "id": p["id"],
                    "train": p["score"],
                    "heldout": mean_of(g["challenger_scores"]),
                    **_axes_of(p),
                }
            )
    return history


def _axes_of(point: dict[str, Any]) -> dict[str, float]:
    return {k: point[k] for k in ("x_calls", "x_cost", "x_time")}


def failure_groups(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed and rejected candidates grouped by status and the first line of their reason, largest first."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for p in points:
        if p["status"] in ("ok", "pending"):
            continue
        reason = (p["failure"] or "").strip().splitlines()[0][:120] if (p["failure"] or "").strip() else ""
        g = groups.setdefault((p["status"], reason), {"status": p["status"], "reason": reason, "ids": []})
        g["ids"].append(p["id"])
    return sorted(groups.values(), key=lambda g: (-len(g["ids"]), g["status"]))


def operator_stats(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per operator: children, how many evaluated ok, beat their parent, and the best score reached."""
    fitness = {p["id"]: p["fitness"] for p in points}
    stats: dict[str, dict[str, Any]] = {}
    for p in points:
        s = stats.setdefault(
            p["operator"], {"operator": p["operator"], "children": 0, "ok": 0, "improved": 0, "best": None}
        )
        s["children"] += 1
        if p["status"] != "ok":
            continue
        s["ok"] += 1
        parent = fitness.get(p["parent_id"])
        if parent is not None and p["fitness"] > parent:
            s["improved"] += 1
        if s["best"] is None or p["fitness"] > s["best"][0]:
            s["best"] = (p["fitness"], p["score"])
    for s in stats.values():
        s["best"] = s["best"][1] if s["best"] else None
    return sorted(stats.values(), key=lambda s: -s["children"])


def model_stats(db: sqlite3.Connection, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model: calls, ok calls, tokens, cost, latency, and the candidates it wrote that beat their parent."""
    stats = {
        r["model"]: {**r, "candidates": 0, "evaluated_ok": 0, "improved": 0} for r in usage_by_model_in(db)
    }
    if len(stats) == 1:  # the usual case: no second pass over llm_calls to learn each call's model
        model_of: dict[int | None, str] = {}
        only = next(iter(stats))
    else:
        model_of = dict(db.execute("SELECT id, model FROM llm_calls").fetchall())
        only = None
    fitness = {p["id"]: p["fitness"] for p in points}
    for p in points:
        if p["call_id"] is None:
            continue
        s = stats.get(model_of.get(p["call_id"], only))
        if s is None:
            continue
        s["candidates"] += 1
        if p["status"] == "ok":
            s["evaluated_ok"] += 1
            parent = fitness.get(p["parent_id"])
            s["improved"] += parent is not None and p["fitness"] > parent
    return list(stats.values())


def island_stats(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per island (when the run used islands): candidates, ok ones, best score."""
    stats: dict[int, dict[str, Any]] = {}
    for p in points:
        if p["island"] is None:
            continue
        s = stats.setdefault(p["island"], {"island": p["island"], "candidates": 0, "ok": 0, "best": None})
        s["candidates"] += 1
        if p["status"] == "ok":
            s["ok"] += 1
            if s["best"] is None or p["fitness"] > s["best"][0]:
                s["best"] = (p["fitness"], p["score"])
    for s in stats.values():
        s["best"] = s["best"][1] if s["best"] else None
    return [stats[k] for k in sorted(stats)]


def bandit_arms(bandit: dict[str, Any] | None, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per bandit arm (operator|model): the bandit's pulls, mean reward and cost, and the candidates it made."""
    if not bandit or not isinstance(bandit.get("arms"), dict):
        return []
    fitness = {p["id"]: p["fitness"] for p in points}
    made: dict[str, list[int]] = {}  # arm -> [children, evaluated ok, beat their parent]
    for p in points:
        if p["arm"] is None:
            continue
        row = made.setdefault(p["arm"], [0, 0, 0])
        row[0] += 1
        if p["status"] == "ok":
            row[1] += 1
            parent = fitness.get(p["parent_id"])
            row[2] += parent is not None and p["fitness"] > parent
    rows = []
    for arm, s in bandit["arms"].items():
        pulls = s.get("pulls", 0)
        children, ok, improved = made.get(arm, (0, 0, 0))
        rows.append(
            {
                "arm": arm, "pulls": pulls, "mean_reward": s.get("reward", 0.0) / pulls if pulls else None,
                "cost": s.get("cost", 0.0), "children": children, "ok": ok, "improved": improved,
            }
        )  # fmt: skip
    return sorted(rows, key=lambda r: -r["pulls"])


def run_view(db: sqlite3.Connection, name: str) -> dict[str, Any]:
    """Everything a run page shows: overview, every candidate as a point, curves, stats, failures."""
    meta = _meta(db)
    points = candidate_points(db)
    champion = _champion(db, meta)
    path: list[int] = []
    parents = {p["id"]: p["parent_id"] for p in points}
    current = champion
    while current is not None and current not in path:
        path.append(current)
        current = parents.get(current)
    return {
        "overview": run_overview(db, name, points),
        "config": meta.get("config") or {},
        "task_path": meta.get("task_path"),
        "points": points,
        "champion_path": path,
        "champions": champion_history(db, points),
        "failures": failure_groups(points),
        "operators": operator_stats(points),
        "models": model_stats(db, points),
        "islands": island_stats(points),
        "bandit": meta.get("bandit"),
        "arms": bandit_arms(meta.get("bandit"), points),
        "promotions": _promotions(db),
        "replays": [dict(r) for r in db.execute("SELECT * FROM replays ORDER BY id")],
        "stops": [
            {"at": r["at"], **json.loads(r["data"])}
            for r in db.execute("SELECT at, data FROM events WHERE kind='run_stopped' ORDER BY seq")
        ],
    }


def unified_diff(a_code: str, b_code: str, a_label: str, b_label: str) -> str:
    """Unified diff from a_code to b_code; file by file when both are multi-file listings."""
    if is_listing(a_code) and is_listing(b_code):
        return tree_diff(from_listing(a_code), from_listing(b_code), a_label, b_label)
    return "".join(
        difflib.unified_diff(
            a_code.splitlines(keepends=True), b_code.splitlines(keepends=True), a_label, b_label
        )
    )


def _code_of(db: sqlite3.Connection, candidate_id: int) -> str | None:
    row = db.execute("SELECT code FROM candidates WHERE id=?", (candidate_id,)).fetchone()
    return stored_code(db, candidate_id, row[0]) if row else None


def candidate_view(db: sqlite3.Connection, candidate_id: int, against: int | None = None) -> dict[str, Any]:
    """One candidate in full: code, diffs, metrics, feedback, lineage, children, prompt and raw reply."""
    row = db.execute("SELECT * FROM candidates WHERE id=?", (candidate_id,)).fetchone()
    if row is None:
        raise UserError(f"no candidate {candidate_id} in this run")
    c = dict(row)
    c["code"] = stored_code(db, candidate_id, c["code"])
    c["metrics"] = json.loads(c["metrics"]) if c["metrics"] else {}
    call = (
        db.execute("SELECT * FROM llm_calls WHERE id=?", (c["call_id"],)).fetchone() if c["call_id"] else None
    )
    lineage = [
        dict(r)
        for r in db.execute(
            "WITH RECURSIVE up(id, n) AS (SELECT ?, 0 UNION ALL SELECT c.parent_id, up.n + 1 FROM candidates c"
            " JOIN up ON c.id = up.id WHERE c.parent_id IS NOT NULL)"
            " SELECT c.id, c.status, c.score, c.operator FROM up JOIN candidates c ON c.id = up.id ORDER BY up.n DESC",
            (candidate_id,),
        )
    ]
    children = [
        dict(r)
        for r in db.execute(
            # by parent_id only: it is indexed (second_parent_id is not, and an OR would scan the table)
            "SELECT id, status, score, operator FROM candidates WHERE parent_id=? ORDER BY id",
            (candidate_id,),
        )
    ]
    diffs = []
    if c["parent_id"] is not None:
        diffs.append(("parent", c["parent_id"]))
    if c["second_parent_id"] is not None:
        diffs.append(("second parent", c["second_parent_id"]))
    if against is not None and against != candidate_id:
        diffs.append(("chosen", against))
    rendered = []
    for label, other in diffs:
        other_code = _code_of(db, other)
        if other_code is None:
            raise UserError(f"no candidate {other} to diff against in this run")
        rendered.append(
            {
                "label": label,
                "other": other,
                "diff": unified_diff(
                    other_code, c["code"], f"candidate {other}", f"candidate {candidate_id}"
                ),
            }
        )
    ids = db.execute("SELECT MAX(id), MIN(id) FROM candidates").fetchone()
    designed = db.execute(
        "SELECT data FROM events WHERE kind = 'candidate_designed' AND candidate_id = ? ORDER BY seq DESC",
        (candidate_id,),
    ).fetchone()
    agent_calls = agent_calls_in(db, candidate_id)
    maker_calls = (
        dict(
            db.execute(
                "SELECT COUNT(*) AS calls, COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens,"
                " COALESCE(SUM(cost_usd), 0) AS cost_usd FROM agent_calls WHERE evaluation = ?",
                (f"mutation:{call['id']}",),
            ).fetchone()
        )
        if call is not None and c["operator"] == "agent"
        else None
    )
    return {
        **c,
        "agent_calls": agent_calls,
        "agent_totals": agent_totals(agent_calls),
        "design": json.loads(designed[0]) if designed else None,  # agent tasks: name and rationale
        "call": dict(call) if call else None,
        "maker_calls": maker_calls,  # a --mutator agent's calls that made this child
        "lineage": lineage,
        "children": children,
        "diffs": rendered,
        "promotions": [g for g in _promotions(db) if candidate_id in (g["champion_id"], g["challenger_id"])],
        "replays": [
            dict(r)
            for r in db.execute("SELECT * FROM replays WHERE candidate_id=? ORDER BY id", (candidate_id,))
        ],
        "max_id": ids[0],
        "min_id": ids[1],
        "version": version_of(db),
    }


def agent_totals(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agent calls summed per evaluation (in the order they began), then one row "all" over every call.

    cost_usd sums the priced calls; unpriced counts the others (an unknown price is not $0).
    """
    groups: dict[str, dict[str, Any]] = {}
    total = _agent_sum("all", None)
    for call in calls:
        group = groups.setdefault(call["evaluation"], _agent_sum(call["evaluation"], call["split"]))
        for row in (group, total):
            row["calls"] += 1
            row["not_ok"] += call["status"] != "ok"
            row["prompt_tokens"] += call["prompt_tokens"] or 0
            row["completion_tokens"] += call["completion_tokens"] or 0
            row["latency_s"] += call["latency_s"] or 0.0
            if call["cost_usd"] is None:
                row["unpriced"] += 1
            else:
                row["cost_usd"] += call["cost_usd"]
    return [*groups.values(), total] if calls else []


def _agent_sum(evaluation: str, split: str | None) -> dict[str, Any]:
    """An empty row of agent_totals."""
    return {
        "evaluation": evaluation, "split": split, "calls": 0, "not_ok": 0, "prompt_tokens": 0,
        "completion_tokens": 0, "cost_usd": 0.0, "unpriced": 0, "latency_s": 0.0,
    }  # fmt: skip


def candidate_ids(db: sqlite3.Connection) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM candidates ORDER BY id")]


def evaluated_candidates(db: sqlite3.Connection) -> list[Candidate]:
    """Every candidate evaluated ok, in full (code and metrics), oldest first."""
    return [
        _row_to_candidate(r, db) for r in db.execute("SELECT * FROM candidates WHERE status='ok' ORDER BY id")
    ]
