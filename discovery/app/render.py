"""Rich renderings of the archive views for the terminal: run list, run report, candidate, summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from discovery.archive import ARCHIVE_FILE, views
from discovery.archive.views import fmt, mean_of, money


def print_runs(rows: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Runs")
    for column in ("run", "task", "created", "calls", "candidates", "best", "cost"):
        table.add_column(column)
    for r in rows:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])) if r["created_at"] else "-"
        table.add_row(
            r["run"],
            str(r["task"]),
            created,
            f"{r['calls']}/{r['budget']}",
            str(r["candidates"]),
            fmt(r["best_score"]),
            money(r["cost_usd"]),
        )
    console.print(table if rows else "No runs yet. Start one with `discovery run tasks/circle_packing`.")


def agent_cost(agent: dict[str, Any]) -> str:
    """The agents' spend: unknown when no call had a price, and the unpriced calls named apart."""
    unpriced = agent.get("unpriced", 0)
    if unpriced and unpriced == agent["calls"] - agent["not_ok"]:
        return f"unknown ({unpriced} call(s) with no known price)"
    return f"${agent['cost_usd']:.4f}" + (f" + {unpriced} call(s) with no known price" if unpriced else "")


def print_run(report: dict[str, Any], console: Console) -> None:
    config = report["config"] or {}
    console.print(
        f"[bold]{report['run']}[/bold]  task {report['task']}  strategy {config.get('strategy')}  "
        f"calls {report['calls']}/{config.get('budget')}  cost {money(report['cost_usd'])}  "
        f"seed score {fmt(report['seed_score'])}"
    )
    console.print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(report["status_counts"].items())))
    nodes = report.get("nodes") or {}
    if nodes:  # a Ray run: which cluster node evaluated how many candidates
        console.print("evaluated on: " + ", ".join(f"{n} {k}" for n, k in sorted(nodes.items())))
    evaluator_failures = report["status_counts"].get("evaluator_failed", 0)
    if evaluator_failures:
        console.print(
            f"[bold red]evaluator failures: {evaluator_failures}[/bold red] (the task's evaluator raised its own "
            "error, not CandidateError: a bug in the task, not charged to the candidates)"
        )
    top = Table(title="Top candidates")
    named = any(c.get("name") for c in report["top"])  # agent tasks: each agent's name
    extra = (("node",) if nodes else ()) + (("name",) if named else ())
    for column in ("id", "parent", "score", "operator", "eval s", "sandbox") + extra:
        top.add_column(column)
    for c in report["top"]:
        top.add_row(
            str(c["id"]),
            str(c["parent_id"] or "-"),
            fmt(c["score"]),
            c["operator"],
            "-" if c["eval_wall_s"] is None else f"{c['eval_wall_s']:.2f}",
            str(c["sandbox"]),
            *((c["node"] or "-",) if nodes else ()),
            *((c.get("name") or "-",) if named else ()),
        )
    console.print(top)
    if report.get("failures"):
        failures = Table(title=f"Latest failures and rejections ({len(report['failures'])})")
        for column in ("id", "parent", "operator", "status", "reason"):
            failures.add_column(column)
        for f in report["failures"]:
            failures.add_row(
                str(f["id"]), str(f["parent_id"] or "-"), f["operator"], f["status"], Text(f["reason"])
            )
        console.print(failures)
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
            fmt(m["mean_latency_s"]),
        )
    console.print(models)
    if report.get("makers"):
        makers = Table(title="Children made by coding agents (--mutator)")
        for column in ("made by", "children", "ok", "agent calls", "tokens", "cost $"):
            makers.add_column(column)
        for m in report["makers"]:
            makers.add_row(
                m["maker"],
                str(m["children"]),
                str(m["ok"]),
                str(m["agent_calls"]),
                str(m["agent_tokens"]),
                f"{m['agent_cost_usd']:.4f}",
            )
        console.print(makers)
    agent = report.get("agent") or {}
    if agent.get("calls"):
        console.print(
            f"agent calls (candidates' agents, through the gateway): {agent['calls']} "
            f"({agent['not_ok']} refused or failed), tokens {agent['prompt_tokens']}+{agent['completion_tokens']}, "
            f"cost {agent_cost(agent)}; mutation calls cost ${report['mutation_cost_usd']:.4f}"
        )
    if report["promotions"]:
        gates = Table(title="Promotion gate (held-out repeats; champion history)")
        for column in (
            "challenger",
            "vs champion",
            "split",
            "champion mean",
            "challenger mean",
            "test",
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
                fmt(mean_of(g["champion_scores"])),
                fmt(mean_of(g["challenger_scores"])),
                g.get("test") or "-",
                "-" if g["p_value"] is None else f"{g['p_value']:.3g}",
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
            f"replay of {r['candidate_id']}: archived {fmt(r['archived'])} replayed {fmt(r['replayed'])} {verdict}"
        )


def print_candidate(report: dict[str, Any], console: Console) -> None:
    lineage = " <- ".join(f"{a['id']} ({fmt(a['score'])})" for a in report["lineage"])
    console.print(
        f"[bold]candidate {report['id']}[/bold]  status {report['status']}  score {fmt(report['score'])}  "
        f"operator {report['operator']}  model {report['model'] or '-'}"
    )
    console.print(f"lineage: {lineage}")
    design = report.get("design")
    if design:
        console.print(f"agent: {design.get('name')}", highlight=False)
        if design.get("rationale"):
            console.print(f"rationale: {design['rationale']}", highlight=False)
    maker = report.get("made_by")
    if maker:
        cost = "-" if maker["cost_usd"] is None else f"${maker['cost_usd']:.4f}"
        console.print(f"made by {maker['maker']}: {maker['calls']} call(s), {maker['tokens']} tokens, {cost}")
    if report["metrics"]:
        console.print("metrics: " + ", ".join(f"{k}={v}" for k, v in report["metrics"].items()))
    sections = [
        ("failure", report["failure"]),
        ("evaluator feedback", report["feedback"]),
        ("code", report["code"]),
        ("prompt", report["prompt"]),
        ("raw reply", report["reply"]),
        ("evaluator output (tail)", report["output_tail"]),
    ]
    for title, text in sections:
        if not text:
            continue
        if not console.is_terminal:
            # Piped or redirected: the stored text exactly, never cut or wrapped at a guessed width.
            console.print(f"----- {title} -----", highlight=False)
            console.out(text, highlight=False)
        elif title == "code":
            console.print(Panel(Syntax(text, "python", line_numbers=True, word_wrap=True), title=title))
        else:
            style = "red" if title == "failure" else "none"
            console.print(Panel(Text(text), title=title, border_style=style))
    if report.get("agent_calls"):
        print_agent_calls(report["agent_calls"], report["agent_totals"], console)


def print_agent_calls(
    calls: list[dict[str, Any]], totals: list[dict[str, Any]], console: Console, text_chars: int = 300
) -> None:
    """The calls a candidate's agent made: totals per evaluation, then one header line each with its last message and reply."""
    console.print(f"[bold]Agent calls ({len(calls)})[/bold]")
    for t in totals:
        priced = t["unpriced"] < t["calls"]
        cost = money(t["cost_usd"] if priced else None) + (
            f" ({t['unpriced']} unpriced)" if t["unpriced"] and priced else ""
        )
        console.print(
            f"  {t['evaluation']}: {t['calls']} calls ({t['not_ok']} refused or failed), "
            f"tokens {t['prompt_tokens']}+{t['completion_tokens']}, cost {cost}, {fmt(t['latency_s'])} s",
            highlight=False,
            markup=False,
            emoji=False,  # an evaluation named search:train:0 is not the :train: emoji
            soft_wrap=True,  # one line per evaluation, never cut at the console's width
        )
    for call in calls:
        sample = "" if call["sample_index"] is None else f" sample {call['sample_index']}"
        cost = "-" if call["cost_usd"] is None else f"${call['cost_usd']:.5f}"
        console.print(
            Text(
                f"#{call['id']} {call['evaluation']}{sample} {call['status']} "
                f"{call['prompt_tokens']}+{call['completion_tokens']} tok {cost} {fmt(call['latency_s'])} s",
                style="bold" if call["status"] == "ok" else "bold red",
            )
        )
        last = call["messages"][-1]["content"] if call["messages"] else ""
        console.print(Text("  > " + " ".join(last[-text_chars:].split())))
        for reply in call["reply"] or []:
            console.print(Text("  < " + " ".join(reply[:text_chars].split())))
        if call["error"]:
            console.print(Text("  ! " + call["error"][:text_chars], style="red"))


def _one_decimal(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_summary(run_dir: Path, stop_reason: str, console: Console) -> None:
    """The end-of-run summary: best against seed, spend, and the commands to inspect and replay."""
    s = views.run_summary(run_dir)
    seed, best, champion, counts = s["seed"], s["best"], s["champion"], s["counts"]
    cost, calls, call_counts, unknown_cost = s["cost"], s["calls"], s["call_counts"], s["unknown_cost"]
    last_error, sandboxes, train_split = s["last_error"], s["sandboxes"], s["train_split"]
    name = run_dir.name
    console.print(f"\n[bold]Run {name} stopped:[/bold] {stop_reason}")
    if seed is not None and seed.score is not None:
        console.print(f"  seed score   {seed.score:.6g}")
    if best is not None:
        console.print(f"  best score   [bold green]{best.score:.6g}[/bold green] (candidate {best.id})")
    if champion is not None and champion.score is not None:
        held = s["heldout"]
        held_text = ""
        if held and held[0] is not None:
            label = "gate re-runs" if held[2] == train_split else "held-out"
            held_text = f", {label} {held[0]:.6g} (mean of {held[1]} repeats on split {held[2]!r})"
        who = "the seed" if champion.operator == "seed" else f"candidate {champion.id}"
        console.print(f"  champion     {who}: train {champion.score:.6g}{held_text}")
        if best is not None and best.id != champion.id:
            console.print(f"               (best train candidate {best.id} did not pass the promotion gate)")
    console.print("  candidates   " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
    cost_note = f" ({unknown_cost} call(s) with no known price)" if unknown_cost else ""
    failed_calls = ", ".join(f"{n} {s}" for s, n in sorted(call_counts.items()) if s != "ok")
    console.print(
        f"  LLM calls    {calls}"
        + (f" ({failed_calls})" if failed_calls else "")
        + f", spent {money(cost)}{cost_note}"
    )
    for speed in s["speed"]:
        if speed["tokens_per_s"] is not None or speed["calls_per_min"] is not None:
            console.print(
                f"  LLM speed    {speed['model']}: {_one_decimal(speed['tokens_per_s'])} tokens/s per call, "
                f"{_one_decimal(speed['calls_per_min'])} calls/min",
                highlight=False,
            )
    if last_error:
        console.print(f"  last LLM error: {last_error[:300]}", highlight=False)
    console.print(f"  archive      {run_dir / ARCHIVE_FILE}")
    if "process" in sandboxes:
        console.print(
            "  [bold red]warning[/bold red]     evaluated with the process sandbox: no network or file isolation"
        )
    spent = s["budget"] is not None and calls >= s["budget"]
    resume = f"discovery resume {name}" + (" --add-budget N   (the budget is spent)" if spent else "")
    console.print(
        f"\n  inspect:  discovery archive show {name}\n"
        f"  replay:   discovery replay {name} --champion\n"
        f"  resume:   {resume}"
    )
