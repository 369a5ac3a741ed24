"""Read-only views of archives (runs, candidates, diffs) as plain data, and their rich renderings."""

from __future__ import annotations

import dataclasses
import difflib
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from discovery.archive import ARCHIVE_FILE, Archive
from discovery.errors import UserError


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _mean(scores: list[float | None]) -> float | None:
    """Mean of the repeats that ran (None marks a failed repeat)."""
    done = [s for s in scores if s is not None]
    return sum(done) / len(done) if done else None


def heldout_of(promotions: list[dict[str, Any]], candidate_id: int) -> tuple[float | None, int, str] | None:
    """A candidate's latest held-out mean from the gate, with the repeat count and split."""
    for g in reversed(promotions):
        for key, who in (("challenger_scores", "challenger_id"), ("champion_scores", "champion_id")):
            if g[who] == candidate_id:
                return _mean(g[key]), len(g[key]), g["split"]
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
                }
                for c in ok[:top]
            ],
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


# ----- rich renderings ----------------------------------------------------------------------


def print_runs(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Runs")
    for column in ("run", "task", "created", "calls", "candidates", "best", "cost $"):
        table.add_column(column)
    for r in rows:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r["created_at"] else "-"
        table.add_row(
            r["run"],
            str(r["task"]),
            created,
            f"{r['calls']}/{r['budget']}",
            str(r["candidates"]),
            _fmt(r["best_score"]),
            f"{r['cost_usd']:.4f}",
        )
    console.print(table if rows else "No runs yet. Start one with `discovery run tasks/circle_packing`.")


def print_run(report: dict[str, Any], console: Console) -> None:
    config = report["config"] or {}
    console.print(
        f"[bold]{report['run']}[/bold]  task {report['task']}  strategy {config.get('strategy')}  "
        f"calls {report['calls']}/{config.get('budget')}  cost ${report['cost_usd']:.4f}  "
        f"seed score {_fmt(report['seed_score'])}"
    )
    console.print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(report["status_counts"].items())))
    top = Table(title="Top candidates")
    for column in ("id", "parent", "score", "operator", "eval s", "sandbox"):
        top.add_column(column)
    for c in report["top"]:
        top.add_row(
            str(c["id"]),
            str(c["parent_id"] or "-"),
            _fmt(c["score"]),
            c["operator"],
            _fmt(c["eval_wall_s"]),
            str(c["sandbox"]),
        )
    console.print(top)
    models = Table(title="LLM usage by model")
    for column in ("model", "calls", "ok", "prompt tok", "completion tok", "cost $", "mean latency s"):
        models.add_column(column)
    for m in report["models"]:
        models.add_row(
            m["model"],
            str(m["calls"]),
            str(m["ok"]),
            str(m["prompt_tokens"]),
            str(m["completion_tokens"]),
            "-" if m["cost_usd"] is None else f"{m['cost_usd']:.4f}",
            _fmt(m["mean_latency_s"]),
        )
    console.print(models)
    if report["promotions"]:
        gates = Table(title="Promotion gate (held-out repeats; champion history)")
        for column in (
            "challenger",
            "vs champion",
            "split",
            "champion mean",
            "challenger mean",
            "p",
            "verdict",
        ):
            gates.add_column(column)
        for g in report["promotions"]:
            verdict = "[green]promoted[/green]" if g["promoted"] else f"kept champion: {g['reason']}"
            gates.add_row(
                str(g["challenger_id"]),
                str(g["champion_id"]),
                g["split"],
                _fmt(_mean(g["champion_scores"])),
                _fmt(_mean(g["challenger_scores"])),
                f"{g['p_value']:.3g}",
                verdict,
            )
        console.print(gates)
    console.print(f"champion: candidate {report['champion_id']}")
    for stop in report["stops"]:
        console.print(
            f"stopped {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stop['at']))}: {stop.get('reason')}"
        )
    for r in report["replays"]:
        verdict = "[green]holds[/green]" if r["holds"] else "[red]differs[/red]"
        console.print(
            f"replay of {r['candidate_id']}: archived {_fmt(r['archived'])} replayed {_fmt(r['replayed'])} {verdict}"
        )


def print_candidate(report: dict[str, Any], console: Console) -> None:
    lineage = " <- ".join(f"{a['id']} ({_fmt(a['score'])})" for a in report["lineage"])
    console.print(
        f"[bold]candidate {report['id']}[/bold]  status {report['status']}  score {_fmt(report['score'])}  "
        f"operator {report['operator']}  model {report['model'] or '-'}"
    )
    console.print(f"lineage: {lineage}")
    if report["metrics"]:
        console.print("metrics: " + ", ".join(f"{k}={v}" for k, v in report["metrics"].items()))
    if report["failure"]:
        console.print(Panel(Text(report["failure"]), title="failure", border_style="red"))
    if report["feedback"]:
        console.print(Panel(Text(report["feedback"]), title="evaluator feedback"))
    parts = [Syntax(report["code"], "python", line_numbers=True)]
    console.print(Panel(Group(*parts), title="code"))
    if report["prompt"]:
        console.print(Panel(Text(report["prompt"]), title="prompt"))
    if report["reply"]:
        console.print(Panel(Text(report["reply"]), title="raw reply"))
    if report["output_tail"]:
        console.print(Panel(Text(report["output_tail"]), title="evaluator output (tail)"))
