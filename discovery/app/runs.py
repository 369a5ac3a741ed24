"""Starting, resuming and summarising runs: where archives live, which models and sandbox a run uses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from discovery.app import mutators
from discovery.app.exits import STOP_EXITS, ExitCode
from discovery.app.lock import run_lock
from discovery.archive import ARCHIVE_FILE, Archive
from discovery.config import LOCAL_MODEL, ModelConfig, RunConfig
from discovery.errors import UserError
from discovery.llm import LLMClient, ModelSpec, ready_specs
from discovery.llm.gateway import Gateway
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
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(LocalModelServer())
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken model file or llama.cpp build: the user's to fix
            raise UserError(
                f"the embedded local model failed to start ({str(exc)[:300]}); delete the cache folder "
                "($DISCOVERY_CACHE, default ~/.cache/discovery) to fetch it again, or pass --model"
            ) from None
        yield [ModelSpec(f"openai/{server.model_name}", 1.0, server.api_base, api_key="local")]


def check_reachable(api_base: str) -> None:
    """A UserError naming the URL when nothing accepts connections at an --api-base."""
    url = urllib.parse.urlsplit(api_base)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UserError(f"--api-base {api_base!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        socket.create_connection((url.hostname, port), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise UserError(
            f"nothing answers at {api_base} ({getattr(exc, 'strerror', None) or exc}); "
            "start the server or fix --api-base"
        ) from None


def check_models(models: list[ModelConfig]) -> None:
    """Before a run folder exists: each model is known, has its key, and its --api-base answers."""
    if any(m.name == LOCAL_MODEL for m in models):
        return
    ready_specs([ModelSpec(m.name, m.weight, m.api_base) for m in models])
    for base in sorted({m.api_base for m in models if m.api_base}):
        check_reachable(base)


def agent_model_spec(
    name: str,
    api_base: str | None,
    stack: contextlib.ExitStack,
    console: Console,
    local: ModelSpec | None = None,
) -> ModelSpec:
    """The agent model, ready to call: checked for keys, or the embedded server (`local`, shared if running)."""
    if name != LOCAL_MODEL:
        return ready_specs([ModelSpec(name, 1.0, api_base)])[0]
    if local is not None:
        return local  # the embedded server the mutation calls already use
    from discovery.llm.local.server import LocalModelServer

    console.print("[yellow]Agents call the embedded local model SmolLM2-135M (--agent-model local).[/yellow]")
    server = stack.enter_context(LocalModelServer())
    return ModelSpec(f"openai/{server.model_name}", 1.0, server.api_base, api_key="local")


@contextlib.contextmanager
def agent_gateway(
    config: RunConfig, task: Task, archive: Archive, specs: list[ModelSpec], console: Console
) -> Iterator[Gateway | None]:
    """The run's LLM gateway for agent tasks (None for algorithm tasks), pinned to --agent-model."""
    if not task.is_agent and config.mutator is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        shared = specs[0] if any(m.name == LOCAL_MODEL for m in config.models) else None
        model = agent_model_spec(config.agent_model, config.agent_api_base, stack, console, shared)
        # Agents' sampling settings come with each request; timeouts and retries are the run's.
        client = LLMClient([model], timeout_s=config.llm_timeout_s)
        gateway = Gateway(
            client, model, archive.record_agent_call, run_spent=archive.total_cost, max_cost=config.max_cost
        )
        try:
            yield gateway
        finally:
            gateway.close()


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
class ProgressLog:
    """One line per finished candidate, for output that is not a terminal (a batch job's log)."""

    archive: Archive
    console: Console
    seq: int = 0

    def __post_init__(self) -> None:
        self.seq = self.archive.last_event_seq()  # a resumed run logs only what it evaluates now

    def emit(self) -> None:
        for row in self.archive.evaluated_since(self.seq):
            self.seq = row["seq"]
            score = "-" if row["score"] is None else f"{row['score']:.6g}"
            wall = "-" if row["eval_wall_s"] is None else f"{row['eval_wall_s']:.2f}"
            self.console.print(
                f"candidate {row['id']} parent {row['parent_id'] or '-'} {row['operator']}: "
                f"{row['status']} score {score} in {wall} s",
                highlight=False,
                soft_wrap=True,
            )


@dataclasses.dataclass
class Outcome:
    """How a run invocation ended."""

    run_dir: Path
    stop_reason: str
    stop_kind: str = "done"

    @property
    def exit_code(self) -> ExitCode:
        return STOP_EXITS.get(self.stop_kind, ExitCode.OK)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[str]]:
    """While inside, SIGTERM stops the run the way Ctrl-C does; the list names the signal that came."""
    received: list[str] = []

    def on_term(signum: int, frame: Any) -> None:
        received.append("SIGTERM")
        # The SIGINT path is the clean one: asyncio cancels the search, then KeyboardInterrupt unwinds.
        # Its handler is called directly (not re-raised as a signal), so no second delivery can race.
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(
    run_dir: Path, archive: Archive, task: Task, config: RunConfig, max_time: float | None, console: Console
) -> Outcome:
    """Drive the search with a live progress line; Ctrl-C or SIGTERM stops it cleanly (the run stays resumable)."""
    reason, kind = "crashed", "crashed"
    try:
        with sigterm_as_interrupt() as signals:
            reason, kind = _drive(run_dir, archive, task, config, max_time, console)
        if kind == "interrupted":
            reason = f"interrupted ({signals[0] if signals else 'Ctrl-C'})"
    finally:
        archive.interrupt_unfinished_calls()  # calls cut off by Ctrl-C or a time limit; they still count
        archive.log_event("run_stopped", reason=reason, stop=kind)
    return Outcome(run_dir, reason, kind)


def _drive(
    run_dir: Path, archive: Archive, task: Task, config: RunConfig, max_time: float | None, console: Console
) -> tuple[str, str]:
    """Start the model endpoints and the sandbox, run the search; return why it stopped and the kind of stop."""
    run_id = run_dir.name
    with (
        model_endpoints(config.models, console) as specs,
        agent_gateway(config, task, archive, specs, console) as gateway,
    ):
        client = LLMClient(specs, config.temperature, config.max_tokens, config.llm_timeout_s)
        sandbox = open_sandbox(config, task, run_id, console)
        started = time.monotonic()
        try:
            with Live(
                _progress_line(Stats(budget=config.budget), started),
                console=console,
                transient=False,
                refresh_per_second=4,
            ) as live:
                log_lines = None if console.is_terminal else ProgressLog(archive, console)

                def update(stats: Stats) -> None:
                    live.update(_progress_line(stats, started))
                    if log_lines is not None:
                        log_lines.emit()

                search = Search(
                    archive,
                    task,
                    config,
                    client,
                    sandbox,
                    run_id,
                    on_change=update,
                    max_time=max_time,
                    gateway=gateway,
                    maker=mutators.maker_source(config.mutator, archive, run_id),
                )
                try:
                    reason, kind = asyncio.run(search.run()), search.stop_kind
                except KeyboardInterrupt:
                    reason, kind = "interrupted", "interrupted"
        finally:
            sandbox.close()
    return reason, kind


def start_run(task_path: str, config: RunConfig, name: str | None, console: Console) -> Outcome:
    """Create a run's archive and run it; a start that fails before any work leaves no folder behind."""
    task = load_task(task_path)
    run_dir = new_run_dir(task, name)
    check_models(config.models)
    mutator_meta = mutators.start_meta(config.mutator, task, resolve_run)
    existed = run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        archive = Archive.create(
            run_dir,
            {
                "task_path": str(task.path),
                "task": task.name,
                "config": config.model_dump(),
                "train_split": task.spec.evaluation.train_split,
                "created_at": time.time(),
                **mutator_meta,
            },
        )
        archive.log_event("run_started")
        console.print(f"Run [bold]{run_dir.name}[/bold]: task {task.name}, archive {run_dir / ARCHIVE_FILE}")
        try:
            return execute(run_dir, archive, task, config, config.max_time, console)
        except BaseException:
            if not existed and _nothing_done(archive):
                archive.close()
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        finally:
            archive.close()


def _nothing_done(archive: Archive) -> bool:
    """Whether a run made no LLM call and evaluated nothing: a failed start, not worth keeping."""
    counts = archive.status_counts()
    return archive.calls_made() == 0 and sum(n for s, n in counts.items() if s != "pending") == 0


def resumed_config(
    config: RunConfig, extra_budget: int | None, models: list[ModelConfig] | None
) -> RunConfig:
    """The stored configuration with resume's changes, validated as a whole (bounds included)."""
    data = config.model_dump()
    if extra_budget is not None:
        if extra_budget < 1:
            raise UserError(f"--add-budget must be at least 1, got {extra_budget}")
        data["budget"] = config.budget + extra_budget
    if models:
        data["models"] = [m.model_dump() for m in models]
    return RunConfig.model_validate(data)


def resume_run(
    run: str,
    console: Console,
    extra_budget: int | None = None,
    max_time: float | None = None,
    models: list[ModelConfig] | None = None,
) -> Outcome:
    """Continue a stopped or killed run exactly where its archive says it was (one driver at a time)."""
    run_dir = resolve_run(run)
    if max_time is not None and not max_time > 0:
        raise UserError(f"--max-time must be more than 0 seconds, got {max_time:g}")
    with run_lock(run_dir):
        archive = Archive.open(run_dir)
        try:
            meta = archive.meta()
            config = resumed_config(RunConfig.model_validate(meta["config"]), extra_budget, models)
            task = load_task(meta["task_path"])
            if models:
                check_models(config.models)
            if config != RunConfig.model_validate(meta["config"]):
                with archive.transaction():
                    archive.set_meta("config", config.model_dump())
            archive.log_event(
                "run_resumed",
                calls_made=archive.calls_made(),
                budget=config.budget,
                models=[m.name for m in config.models],
            )
            console.print(
                f"Resuming [bold]{run_dir.name}[/bold]: {archive.calls_made()}/{config.budget} calls made"
            )
            return execute(run_dir, archive, task, config, max_time or config.max_time, console)
        finally:
            archive.close()
