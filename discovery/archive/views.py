"""Read-only views of archives as plain data: run list, run report, candidate report, diffs, summary.

The CLI's tables and the end-of-run summary render these; nothing here prints or writes.
"""

from __future__ import annotations

from collections import Counter

import dataclasses
import difflib
import time
from pathlib import Path
from typing import Any


from discovery.archive.schema import ARCHIVE_FILE
from discovery.archive.store import Archive
from discovery.errors import UserError


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


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
            archive = Archive.open(path.parent)
        except UserError:
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
                    "cost_usd": archive.total_cost(),
                }
            )
        finally:
            archive.close()
    return sorted(rows, key=lambda r: r["created_at"] or 0, reverse=True)


def run_report(run_dir: Path, top: int = 10) -> dict[str, Any]:
    """Everything `archive show` prints: config, status counts, top candidates, usage, stops, replays."""
    archive = Archive.open(run_dir)
    try:
        meta = archive.meta()
        ok = sorted(archive.candidates("ok"), key=lambda c: -c.fitness)
        seed = archive.candidates()[0] if archive.candidates() else None
        return {
            "run": run_dir.name,
            "task": meta.get("task"),
            "task_path": meta.get("task_path"),
            "config": meta.get("config"),
            "status_counts": archive.status_counts(),
            "calls": archive.calls_made(),
            "cost_usd": archive.total_cost(),
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
                }
                for c in ok[:top]
            ],
            "nodes": dict(Counter(c.node for c in archive.candidates() if c.node)),
            "models": archive.usage_by_model(),
            "stops": [{"at": e["at"], **e["data"]} for e in archive.events("run_stopped")],
            "replays": archive.replays(),
            "champion_id": archive.champion_id(),
            "promotions": archive.promotions(),
        }
    finally:
        archive.close()


def candidate_report(run_dir: Path, candidate_id: int) -> dict[str, Any]:
    """One candidate in full: code, metrics, feedback, lineage, prompt and raw reply, failure and output."""
    archive = Archive.open(run_dir)
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
        }
    finally:
        archive.close()


def diff_candidates(run_dir: Path, a: int, b: int) -> str:
    """Unified diff from candidate a to candidate b."""
    archive = Archive.open(run_dir)
    try:
        ca, cb = archive.candidate(a), archive.candidate(b)
    finally:
        archive.close()
    return "".join(
        difflib.unified_diff(
            ca.code.splitlines(keepends=True),
            cb.code.splitlines(keepends=True),
            f"candidate {a}",
            f"candidate {b}",
        )
    )




def run_summary(run_dir: Path) -> dict[str, Any]:
    """What the end-of-run summary shows: seed, best, champion, counts, calls and spend."""
    archive = Archive.open(run_dir)
    try:
        candidates = archive.candidates()
        champion = archive.candidate(archive.champion_id()) if candidates else None
        return {
            "seed": candidates[0] if candidates else None,
            "best": archive.best(),
            "counts": archive.status_counts(),
            "cost": archive.total_cost(),
            "calls": archive.calls_made(),
            "call_counts": archive.call_status_counts(),
            "last_error": archive.last_call_error(),
            "unknown_cost": archive.calls_without_price(),
            "sandboxes": {c.sandbox for c in candidates if c.sandbox},
            "champion": champion,
            "heldout": heldout_of(archive.promotions(), champion.id) if champion else None,
            "train_split": archive.meta().get("train_split", "train"),
        }
    finally:
        archive.close()
