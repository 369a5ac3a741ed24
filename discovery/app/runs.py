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
from discovery.config import (
    LOCAL_DEFAULTS,
    LOCAL_MODEL,
    ModelConfig,
    RunConfig,
    is_local_model,
    model_defaults,
)
from discovery.errors import UserError
from discovery.evaluation.executors import Executor
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
def model_endpoints(
    models: list[ModelConfig], console: Console, eval_slots: int | None = None
) -> Iterator[list[ModelSpec]]:
    """Model specs ready to call; fetches and serves the model when the run uses a local one."""
    local = [m for m in models if is_local_model(m.name)]
    if not local:
        yield ready_specs([ModelSpec(m.name, m.weight, m.api_base) for m in models])
        return
    if local[0].name == LOCAL_MODEL:
        console.print(
            "[yellow]Using the embedded local model SmolLM2-135M on 127.0.0.1 (the default with no provider). "
            "It is tiny and weak (it writes valid small functions with wrong logic): expect few improvements. "
            "Try --model local:qwen2.5-coder-0.5b, or pass a provider (e.g. gpt-4o-mini, anthropic/..., "
            "ollama/...) for real results.[/yellow]"
        )
    with local_model_server(local[0].name, console, eval_slots) as spec:
        yield [spec]


@contextlib.contextmanager
def local_model_server(name: str, console: Console, eval_slots: int | None = None) -> Iterator[ModelSpec]:
    """Fetch (when needed) and serve a local model (local, local:NAME, local:PATH) on 127.0.0.1."""
    from discovery.llm.local.fetch import ensure_model
    from discovery.llm.local.models import resolve
    from discovery.llm.local.server import LocalModelServer, server_threads

    ref = resolve(name)
    path = ref.path if ref.path is not None else ensure_model(ref.entry)
    threads = server_threads(eval_slots) if eval_slots else 0
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(
                LocalModelServer(path, n_threads=threads, model_name=ref.served_name)
            )
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken model file or llama.cpp build: the user's to fix
            raise UserError(
                f"the local model {name} failed to start ({str(exc)[:300]}); delete the cache folder "
                "($DISCOVERY_CACHE, default ~/.cache/discovery) to fetch it again, or pass --model"
            ) from None
        console.print(
            f"Local model {ref.title} on {server.api_base} ({server.n_threads} thread(s), "
            f"started in {server.startup_s:.1f} s)"
        )
        yield ModelSpec(f"openai/{server.model_name}", 1.0, server.api_base, api_key="local")


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
    if any(is_local_model(m.name) for m in models):
        return
    ready_specs([ModelSpec(m.name, m.weight, m.api_base) for m in models])
    for base in sorted({m.api_base for m in models if m.api_base}):
        check_reachable(base)


def agent_model_spec(
    name: str,
    api_base: str | None,
    stack: contextlib.ExitStack,
    console: Console,
    shared: ModelSpec | None = None,
    eval_slots: int | None = None,
) -> ModelSpec:
    """The agent model, ready to call: checked for keys, or a local model (shared when the run serves it)."""
    if not is_local_model(name):
        try:
            return ready_specs([ModelSpec(name, 1.0, api_base)])[0]
        except UserError as exc:
            raise UserError(f"--agent-model {name}: {exc}") from None
    if shared is not None:
        return shared  # the local server the mutation calls already use
    console.print(
        f"[yellow]Agents call the local model {name} (--agent-model; the default is the embedded "
        "SmolLM2-135M). Pass --agent-model (and --agent-api-base) to give them a real model.[/yellow]"
    )
    return stack.enter_context(local_model_server(name, console, eval_slots))


def same_local_model(a: str, b: str) -> bool:
    """Whether two model names are one local model (`local` and `local:smollm2-135m` are), served once."""
    from discovery.llm.local.models import resolve

    return is_local_model(a) and is_local_model(b) and resolve(a) == resolve(b)


@contextlib.contextmanager
def agent_gateway(
    config: RunConfig, task: Task, archive: Archive, specs: list[ModelSpec], console: Console
) -> Iterator[Gateway | None]:
    """The run's LLM gateway for agent tasks (None for algorithm tasks), pinned to --agent-model."""
    if not task.is_agent and config.mutator is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        shared = (
            specs[0] if any(same_local_model(m.name, config.agent_model) for m in config.models) else None
        )
        model = agent_model_spec(
            config.agent_model, config.agent_api_base, stack, console, shared, config.eval_slots
        )
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


def check_executor(config: RunConfig, task: Task) -> None:
    """Before a run folder exists: what needs this machine's LLM gateway cannot run on a Ray cluster."""
    if config.executor != "ray":
        return
    if task.is_agent:
        raise UserError(
            "agent tasks run with --executor local: their LLM gateway is a Unix socket on this machine"
        )
    if config.mutator is not None:
        raise UserError(
            "--mutator runs with --executor local: the coding agent calls this machine's LLM gateway"
        )


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


def duration(seconds: float) -> str:
    """A duration as 1h02m, 3m05s or 42s."""
    whole = max(0, round(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


@dataclasses.dataclass(frozen=True)
class Pace:
    """Where this invocation started (a resumed run's earlier calls do not tell its pace)."""

    started: float  # time.monotonic()
    calls_at_start: int
    max_time: float | None = None

    def left(self, stats: Stats, now: float) -> str:
        """Time to the end of the budget at this invocation's pace so far, or to --max-time if sooner."""
        elapsed = now - self.started
        limit = None if self.max_time is None else max(0.0, self.max_time - elapsed)
        made = stats.calls - self.calls_at_start
        if stats.calls >= stats.budget:
            estimate: float | None = 0.0
        elif made > 0:
            estimate = elapsed / made * (stats.budget - stats.calls)
        else:
            estimate = None  # no call finished yet: nothing to go by
        if limit is not None and (estimate is None or limit < estimate):
            return f"{duration(limit)} left (--max-time)"
        return "? left" if estimate is None else f"~{duration(estimate)} left"


def _progress_line(stats: Stats, pace: Pace) -> Text:
    """The live status line: calls, evaluations, failures, best score, cost, elapsed and remaining time."""
    now = time.monotonic()
    best = f"{stats.best:.6g}" if stats.best is not None else "-"
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"calls {stats.calls}/{stats.budget}", style="bold")
    line.append(f" | evaluated {stats.evaluated} (ok {stats.ok}, failed {stats.failed})")
    line.append(f" | rejected {stats.rejected} | pending {stats.pending} | best ")
    line.append(best, style="bold green")
    line.append(f" | ${stats.cost_usd:.4f} | {duration(now - pace.started)}, {pace.left(stats, now)}")
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
        model_endpoints(config.models, console, config.eval_slots) as specs,
        agent_gateway(config, task, archive, specs, console) as gateway,
    ):
        client = LLMClient(specs, config.temperature, config.max_tokens, config.llm_timeout_s)
        executor, sandbox = open_executor(config, task, run_id, console)
        pace = Pace(time.monotonic(), archive.calls_made(), max_time)
        try:
            with Live(
                _progress_line(Stats(calls=pace.calls_at_start, budget=config.budget), pace),
                console=console,
                transient=False,
                refresh_per_second=4,
            ) as live:
                log_lines = None if console.is_terminal else ProgressLog(archive, console)

                def update(stats: Stats) -> None:
                    live.update(_progress_line(stats, pace))
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
                    executor=executor,
                    gateway=gateway,
                    maker=mutators.maker_source(config.mutator, archive, run_id),
                )
                try:
                    reason, kind = asyncio.run(search.run()), search.stop_kind
                except KeyboardInterrupt:
                    reason, kind = "interrupted", "interrupted"
        finally:
            executor.close()
            if sandbox is not None:
                sandbox.close()
    return reason, kind


def start_run(task_path: str, config: RunConfig, name: str | None, console: Console) -> Outcome:
    """Create a run's archive and run it; a start that fails before any work leaves no folder behind."""
    task = load_task(task_path)
    run_dir = new_run_dir(task, name)
    check_executor(config, task)
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
        data.update(switched_model_defaults(config, [m.name for m in models]))
    return RunConfig.model_validate(data)


def switched_model_defaults(config: RunConfig, new_models: list[str]) -> dict[str, object]:
    """Options that follow the models (config.LOCAL_DEFAULTS) and were left at the old models' default.

    Switching from a provider to a local model on resume brings block replies and the other small-model
    settings (and back); a value the user chose stays as it is.
    """

    def default_for(names: list[str], key: str) -> object:
        return model_defaults(names).get(key, RunConfig.model_fields[key].default)

    old_models = [m.name for m in config.models]
    return {
        key: default_for(new_models, key)
        for key in LOCAL_DEFAULTS
        if getattr(config, key) == default_for(old_models, key)
    }


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
            check_executor(config, task)
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
