"""Starting, resuming and summarising runs: where archives live, which models and sandbox a run uses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from discovery.archive import ARCHIVE_FILE, Archive
from discovery.config import LOCAL_MODEL, ModelConfig, RunConfig
from discovery.errors import UserError
from discovery.evaluation.executors import Executor
from discovery.llm import LLMClient, ModelSpec, ready_specs
from discovery.sandbox.base import Sandbox
from discovery.search.loop import Search, Stats
from discovery.task import Task, load_task

log = logging.getLogger(__name__)


def archive_root() -> Path:
    """Where run folders live: $DISCOVERY_ARCHIVE, else ./archive."""
    return Path(os.environ.get("DISCOVERY_ARCHIVE", "archive"))


def resolve_run(run: str) -> Path:
    """A run folder from a name under the archive root or a path; UserError when there is none."""
    for candidate in (Path(run), archive_root() / run):
        if (candidate / ARCHIVE_FILE).is_file():
            return candidate
    raise UserError(
        f"no run {run!r} (looked for {run}/{ARCHIVE_FILE} and {archive_root() / run}); see `discovery archive list`"
    )


def new_run_dir(task: Task, name: str | None) -> Path:
    """A fresh folder for a new run: the given name, or <task>-<date>-<time>."""
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"run name {name!r} may hold only letters, digits, '.', '_' and '-'")
    name = name or f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = archive_root() / name
    if (run_dir / ARCHIVE_FILE).exists():
        raise UserError(
            f"run {name!r} already exists in {archive_root()}; resume it with `discovery resume {name}` or pick another --name"
        )
    return run_dir


@contextlib.contextmanager
def model_endpoints(models: list[ModelConfig], console: Console) -> Iterator[list[ModelSpec]]:
    """Model specs ready to call; starts the embedded model's server when the run uses `local`."""
    if not any(m.name == LOCAL_MODEL for m in models):
        yield ready_specs([ModelSpec(m.name, m.weight, m.api_base) for m in models])
        return
    from discovery.llm.local.server import LocalModelServer

    console.print(
        "[yellow]No provider given: using the embedded local model SmolLM2-135M on 127.0.0.1. "
        "It is tiny and weak (it writes valid small functions with wrong logic): expect few improvements. "
        "Pass --model (e.g. gpt-4o-mini, anthropic/..., ollama/...) for real results.[/yellow]"
    )
    with LocalModelServer() as server:
        yield [ModelSpec(f"openai/{server.model_name}", 1.0, server.api_base, api_key="local")]


def open_sandbox(config: RunConfig, task: Task, run_id: str, console: Console) -> Sandbox:
    """The sandbox backend the run asked for; warns loudly for the resource-only process backend."""
    from discovery.sandbox.choose import make_sandbox

    sandbox = make_sandbox(config.sandbox, image=task.spec.image, run_id=run_id)
    if sandbox.name == "process":
        console.print(
            "[bold red]Warning:[/bold red] the process sandbox limits resources only: candidates can use the "
            "network and write your files. Every candidate is flagged as evaluated without isolation."
        )
    return sandbox


def open_executor(
    config: RunConfig, task: Task, run_id: str, console: Console
) -> tuple[Executor, Sandbox | None]:
    """Where evaluations run: a local sandbox, or Ray tasks that pick the sandbox on their node."""
    if config.executor == "local":
        from discovery.evaluation.executors.local import LocalExecutor

        sandbox = open_sandbox(config, task, run_id, console)
        return LocalExecutor(sandbox), sandbox
    from discovery.evaluation.executors.ray import RayExecutor

    executor = RayExecutor(config.ray_address, config.sandbox, task, run_id)
    console.print(
        f"Evaluating on the Ray cluster at {config.ray_address} (sandbox {config.sandbox}, chosen on each node)"
    )
    return executor, None


def _progress_line(stats: Stats, started: float) -> Text:
    """The live status line: calls, evaluations, failures, best score, cost, elapsed time."""
    best = f"{stats.best:.6g}" if stats.best is not None else "-"
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"calls {stats.calls}/{stats.budget}", style="bold")
    line.append(f" | evaluated {stats.evaluated} (ok {stats.ok}, failed {stats.failed})")
    line.append(f" | rejected {stats.rejected} | pending {stats.pending} | best ")
    line.append(best, style="bold green")
    line.append(f" | ${stats.cost_usd:.4f} | {time.monotonic() - started:.0f} s")
    return line


@dataclasses.dataclass
class Outcome:
    """How a run invocation ended."""

    run_dir: Path
    stop_reason: str


def execute(
    run_dir: Path, archive: Archive, task: Task, config: RunConfig, max_time: float | None, console: Console
) -> Outcome:
    """Drive the search with a live progress line; Ctrl-C stops it cleanly (the run stays resumable)."""
    reason = "crashed"
    try:
        reason = _drive(run_dir, archive, task, config, max_time, console)
    finally:
        archive.interrupt_unfinished_calls()  # calls cut off by Ctrl-C or a time limit; they still count
        archive.log_event("run_stopped", reason=reason)
    return Outcome(run_dir, reason)


def _drive(
    run_dir: Path, archive: Archive, task: Task, config: RunConfig, max_time: float | None, console: Console
) -> str:
    """Start the model endpoints and the sandbox, run the search, and return why it stopped."""
    run_id = run_dir.name
    with model_endpoints(config.models, console) as specs:
        client = LLMClient(specs, config.temperature, config.max_tokens, config.llm_timeout_s)
        executor, sandbox = open_executor(config, task, run_id, console)
        started = time.monotonic()
        try:
            with Live(
                _progress_line(Stats(budget=config.budget), started),
                console=console,
                transient=False,
                refresh_per_second=4,
            ) as live:
                update: Callable[[Stats], None] = lambda s: live.update(_progress_line(s, started))  # noqa: E731
                search = Search(
                    archive,
                    task,
                    config,
                    client,
                    sandbox,
                    run_id,
                    on_change=update,
                    max_time=max_time,
                    executor=executor,
                )
                try:
                    reason = asyncio.run(search.run())
                except KeyboardInterrupt:
                    reason = "interrupted (Ctrl-C)"
        finally:
            executor.close()
            if sandbox is not None:
                sandbox.close()
    return reason


def start_run(task_path: str, config: RunConfig, name: str | None, console: Console) -> Outcome:
    """Create a run's archive and run it."""
    task = load_task(task_path)
    run_dir = new_run_dir(task, name)
    archive = Archive.create(
        run_dir,
        {
            "task_path": str(task.path),
            "task": task.name,
            "config": config.model_dump(),
            "train_split": task.spec.evaluation.train_split,
            "created_at": time.time(),
        },
    )
    archive.log_event("run_started")
    console.print(f"Run [bold]{run_dir.name}[/bold]: task {task.name}, archive {run_dir / ARCHIVE_FILE}")
    try:
        return execute(run_dir, archive, task, config, config.max_time, console)
    finally:
        archive.close()


def resume_run(
    run: str, console: Console, extra_budget: int | None = None, max_time: float | None = None
) -> Outcome:
    """Continue a stopped or killed run exactly where its archive says it was."""
    run_dir = resolve_run(run)
    archive = Archive.open(run_dir)
    try:
        meta = archive.meta()
        config = RunConfig.model_validate(meta["config"])
        if extra_budget:
            config = config.model_copy(update={"budget": config.budget + extra_budget})
            archive.set_meta("config", config.model_dump())
        task = load_task(meta["task_path"])
        archive.log_event("run_resumed", calls_made=archive.calls_made(), budget=config.budget)
        console.print(
            f"Resuming [bold]{run_dir.name}[/bold]: {archive.calls_made()}/{config.budget} calls made"
        )
        return execute(run_dir, archive, task, config, max_time or config.max_time, console)
    finally:
        archive.close()
