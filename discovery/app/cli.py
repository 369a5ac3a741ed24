"""The `discovery` command line: run, resume, archive, replay, export, tasks, sandbox."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console

from discovery.app import render, runs
from discovery.archive import views
from discovery.errors import UserError
from discovery.sandbox.base import SandboxUnavailable

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def main() -> None:
    """Entry point: user mistakes print one line on stderr and exit 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (UserError, SandboxUnavailable) as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(2)
    except ValidationError as exc:
        err_console.print(f"[bold red]error:[/bold red] {_validation_message(exc)}", highlight=False)
        sys.exit(2)
    except SystemExit:
        raise


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
@click.version_option(package_name="discovery-lab")
def cli(verbose: bool) -> None:
    """Discover better programs with LLMs: evolutionary search over sandboxed candidates."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("LiteLLM", "litellm", "httpx", "httpcore", "openai", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ----- run / resume -----------------------------------------------------------------------------


def _build_config(task: str, models: tuple[str, ...], api_base: str | None, **options) -> runs.RunConfig:
    from discovery.config import ModelConfig, RunConfig
    from discovery.llm import ModelSpec

    names = models or (os.environ.get("DISCOVERY_MODEL") or runs.LOCAL_MODEL,)
    try:
        specs = [ModelSpec.parse(m, api_base) for m in names]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if options.get("reply_format") is None:
        # Weak local models cannot write reliable diffs; let them rewrite only the block.
        options["reply_format"] = "block" if any(s.name == runs.LOCAL_MODEL for s in specs) else "diff"
    if options.get("max_tokens") is None and any(s.name == runs.LOCAL_MODEL for s in specs):
        # ~110 tokens/s on 2 cores: a cap keeps one rambling reply from taking minutes.
        options["max_tokens"] = 1024
    model_configs = [ModelConfig(name=s.name, weight=s.weight, api_base=s.api_base) for s in specs]
    config = RunConfig(task=task, models=model_configs, **{k: v for k, v in options.items() if v is not None})
    if config.map_elites:
        from discovery.search.strategies.map_elites import parse_specs

        parse_specs(config.map_elites)  # a bad grid is a UserError now, not at the first proposal
    return config


@cli.command()
@click.argument("task", type=click.Path())
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[=WEIGHT]",
    help="litellm model string (repeat for an ensemble, with weights). Default: $DISCOVERY_MODEL or 'local'.",
)
@click.option("--api-base", help="Base URL of an OpenAI-compatible server (use with --model openai/<name>).")
@click.option("--budget", type=int, help="Number of LLM calls (default 20).")
@click.option("--max-cost", type=float, help="Stop proposing once this many USD are spent.")
@click.option("--max-time", type=float, help="Stop after this many seconds (the run stays resumable).")
@click.option("--strategy", type=click.Choice(["dgm", "best-of-n"]), help="Parent selection (default dgm).")
@click.option(
    "--reply-format",
    type=click.Choice(["diff", "full", "block"]),
    help="What the LLM replies with (default: diff; block for the local model).",
)
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "docker", "bwrap", "process"]),
    help="Isolation backend (default auto: docker, else bubblewrap).",
)
@click.option("--llm-concurrency", type=int, help="Concurrent LLM calls (default 2).")
@click.option("--eval-slots", type=int, help="Concurrent evaluations (default 2).")
@click.option("--temperature", type=float, help="Sampling temperature (default 0.8).")
@click.option("--max-tokens", type=int, help="Reply length cap (default 4096; 1024 for the local model).")
@click.option("--seed", type=int, help="Seed of the run's own random choices (default 0).")
@click.option("--name", help="Run name (default <task>-<date>-<time>).")
@click.option("--islands", type=int, help="Number of islands (default 1: none).")
@click.option("--migration-every", type=int, help="Evaluated children between migrations (default 20).")
@click.option(
    "--island-patience",
    type=int,
    help="Children without improvement before a weak island resets (default 30).",
)
@click.option("--map-elites", help="MAP-Elites grid, e.g. 'length:8' or 'length:8,metric:NAME:8:LO:HI'.")
@click.option(
    "--crossover-rate", type=float, help="Share of proposals that combine two parents (default 0.1)."
)
@click.option(
    "--reflection/--no-reflection", default=None, help="ReEvo short- and long-term reflection (default off)."
)
@click.option(
    "--novelty-threshold",
    type=float,
    help="Reject proposals at least this similar to an archived one, e.g. 0.95 (default off).",
)
@click.option("--no-novelty", is_flag=True, help="Turn the novelty check off (the default).")
@click.option(
    "--bandit", type=click.Choice(["off", "ucb", "thompson"]), help="Choose operator and model by a bandit."
)
@click.option("--repair/--no-repair", default=None, help="Feed a failure back once to fix it (default on).")
@click.option(
    "--cascade", type=float, help="Run the task's quick stage first; pass when above this quantile."
)
@click.option("--promotion-repeats", type=int, help="Held-out repeats in the promotion gate (default 6).")
@click.option(
    "--promotion-alpha", type=float, help="Significance level of the promotion gate (default 0.05)."
)
def run(
    task: str, models: tuple[str, ...], api_base: str | None, name: str | None, no_novelty: bool, **options
) -> None:
    """Start a discovery run on TASK (a task folder)."""
    config = _build_config(task, models, api_base, **options)
    if no_novelty:
        config = config.model_copy(update={"novelty_threshold": None})
    outcome = runs.start_run(task, config, name, console)
    render.print_summary(outcome.run_dir, outcome.stop_reason, console)


@cli.command()
@click.argument("run")
@click.option("--add-budget", type=int, help="Allow this many more LLM calls than the run's budget.")
@click.option("--max-time", type=float, help="Stop after this many seconds.")
def resume(run: str, add_budget: int | None, max_time: float | None) -> None:
    """Continue RUN exactly where it stopped (also after a crash or kill -9)."""
    outcome = runs.resume_run(run, console, add_budget, max_time)
    render.print_summary(outcome.run_dir, outcome.stop_reason, console)


# ----- archive ----------------------------------------------------------------------------------


@cli.group()
def archive() -> None:
    """Inspect run archives: runs, candidates, lineage, diffs, costs, failures."""


def _print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@archive.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def archive_list(as_json: bool) -> None:
    """List the runs under the archive folder ($DISCOVERY_ARCHIVE or ./archive)."""
    rows = views.list_runs(runs.archive_root())
    _print_json(rows) if as_json else render.print_runs(rows, console)


@archive.command("show")
@click.argument("run")
@click.option("--top", type=int, default=10, show_default=True, help="How many top candidates to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def archive_show(run: str, top: int, as_json: bool) -> None:
    """Show a run: top candidates, status counts, usage and cost per model, stops, replays."""
    report = views.run_report(runs.resolve_run(run), top)
    _print_json(report) if as_json else render.print_run(report, console)


@archive.command("candidate")
@click.argument("run")
@click.argument("candidate_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def archive_candidate(run: str, candidate_id: int, as_json: bool) -> None:
    """Show one candidate: code, metrics, feedback, lineage, prompt, raw reply, failure, output."""
    report = views.candidate_report(runs.resolve_run(run), candidate_id)
    _print_json(report) if as_json else render.print_candidate(report, console)


@archive.command("diff")
@click.argument("run")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def archive_diff(run: str, a: int, b: int, as_json: bool) -> None:
    """Unified diff between candidates A and B."""
    text = views.diff_candidates(runs.resolve_run(run), a, b)
    _print_json({"a": a, "b": b, "diff": text}) if as_json else click.echo(text or "(identical)")


# ----- replay / export --------------------------------------------------------------------------


@cli.command()
@click.argument("run")
@click.option("--candidate", "candidate_id", type=int, help="Candidate id (default: the best).")
@click.option("--best", is_flag=True, help="Replay the best train candidate (the default).")
@click.option(
    "--champion", is_flag=True, help="Replay the champion (the last candidate promoted by the gate)."
)
@click.option(
    "--sandbox",
    type=click.Choice(["auto", "docker", "bwrap", "process"]),
    help="Backend (default: the run's).",
)
@click.option("--tolerance", type=float, help="Allowed |archived - replayed| (default: the task's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay(
    run: str,
    champion: bool,
    candidate_id: int | None,
    best: bool,
    sandbox: str | None,
    tolerance: float | None,
    as_json: bool,
) -> None:
    """Re-evaluate a candidate fresh in a sandbox; exit 1 when its score does not hold."""
    import dataclasses

    from discovery.app.replay import replay as do_replay
    from discovery.archive import Archive
    from discovery.config import RunConfig
    from discovery.sandbox.choose import make_sandbox
    from discovery.task import load_task

    if sum([best, champion, candidate_id is not None]) > 1:
        raise UserError("give one of --best, --champion or --candidate ID")
    run_dir = runs.resolve_run(run)
    archived = Archive.open(run_dir)
    meta = archived.meta()
    if champion:
        candidate_id = archived.champion_id()
    archived.close()
    backend = sandbox or RunConfig.model_validate(meta["config"]).sandbox
    box = make_sandbox(backend, image=load_task(meta["task_path"]).spec.image, run_id=run_dir.name)
    try:
        result = do_replay(run_dir, candidate_id, box, tolerance)
    finally:
        box.close()
    if as_json:
        _print_json(dataclasses.asdict(result))
    else:
        verdict = "[bold green]holds[/bold green]" if result.holds else "[bold red]does NOT hold[/bold red]"
        replayed = (
            f"{result.replayed:.10g}"
            if result.replayed is not None
            else f"{result.status} ({result.failure})"
        )
        console.print(
            f"candidate {result.candidate_id}: archived {result.archived:.10g}, replayed {replayed} "
            f"(tolerance {result.tolerance:g}, sandbox {box.name}): {verdict}"
        )
    sys.exit(0 if result.holds else 1)


@cli.command()
@click.argument("run")
@click.option("--best", is_flag=True, help="Export the best candidate (the default).")
@click.option("--candidate", "candidate_id", type=int, help="Candidate id.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="File to write.")
def export(run: str, best: bool, candidate_id: int | None, output: str) -> None:
    """Write a candidate's program to a file."""
    from discovery.app.replay import pick_candidate
    from discovery.archive import Archive

    if best and candidate_id is not None:
        raise UserError("give either --best or --candidate ID, not both")
    archived = Archive.open(runs.resolve_run(run))
    try:
        candidate = pick_candidate(archived, candidate_id)
    finally:
        archived.close()
    Path(output).write_text(candidate.code)
    console.print(f"wrote candidate {candidate.id} (score {candidate.score}) to {output}")


# ----- tasks / sandbox --------------------------------------------------------------------------


@cli.group()
def tasks() -> None:
    """Check and list task folders."""


@tasks.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def tasks_validate(paths: tuple[str, ...]) -> None:
    """Report every problem in the task folders at PATHS; exit 1 if any."""
    from discovery.task import find_problems

    bad = 0
    for path in paths:
        problems = find_problems(Path(path))
        if problems:
            bad += 1
            console.print(f"[red]✗[/red] {path}")
            for problem in problems:
                console.print(f"    {problem}", highlight=False)
        else:
            console.print(f"[green]✓[/green] {path}")
            for line in _understood(Path(path)):
                console.print(f"    {line}", highlight=False)
    sys.exit(1 if bad else 0)


def _understood(path: Path) -> list[str]:
    """What a valid task folder was read as: its format, the metric optimised, and the stages."""
    from discovery.task import load_task

    spec = load_task(path).spec
    brief = spec.brief.strip().splitlines()[0][:90]
    if spec.openevolve is not None:
        return [
            "format: OpenEvolve (initial_program.py, evaluator.py, config.yaml)",
            f"metric: {spec.openevolve.metric_summary}",
            f"stages: {spec.openevolve.stage_summary}"
            + ("; quick stage for --cascade: evaluate_stage1" if spec.evaluation.cascade_stage else ""),
            f"brief: {brief}",
            f"timeout: {spec.resources.timeout_s:g} s per evaluation",
        ]
    stage = spec.evaluation.cascade_stage
    return [
        "format: discovery (task.toml, evaluate.py)",
        f"metric: score ({spec.objective.direction})",
        "stages: evaluate()" + (f"; quick stage for --cascade: {stage!r}" if stage else ""),
        f"brief: {brief}",
    ]


@tasks.command("list")
@click.argument("root", default="tasks", type=click.Path())
def tasks_list(root: str) -> None:
    """List the task folders under ROOT (default ./tasks)."""
    from discovery.task import find_problems, load_task

    # task.toml folders and OpenEvolve folders (initial_program.py beside evaluator.py).
    folders = {p.parent for p in Path(root).glob("*/task.toml")}
    folders |= {
        p.parent for p in Path(root).glob("*/evaluator.py") if (p.parent / "initial_program.py").is_file()
    }
    for path in sorted(folders):
        if find_problems(path):
            console.print(f"{path.name:26} [red]invalid[/red] (run `discovery tasks validate {path}`)")
        else:
            task = load_task(path)
            first = task.spec.brief.strip().splitlines()[0][:70]
            console.print(f"{path.name:26} {task.spec.objective.direction:9} {first}")


@cli.group()
def sandbox() -> None:
    """Check which sandbox backends work here, and build images."""


@sandbox.command("check")
def sandbox_check() -> None:
    """Try each backend for real and report which work on this machine, and why not."""
    from discovery.sandbox.choose import render_check_table

    console.print(render_check_table())


@sandbox.command("build")
@click.option(
    "--kind",
    type=click.Choice(["skeleton", "debootstrap", "dockerfile"]),
    default="skeleton",
    show_default=True,
    help="skeleton: offline, under 1 s; debootstrap: offline, self-contained; dockerfile: needs a registry.",
)
@click.option("--image", default="discovery-sandbox:py", show_default=True, help="Image name.")
def sandbox_build(kind: str, image: str) -> None:
    """Build the sandbox image the tasks use."""
    from discovery.sandbox.images import build_image

    build_image(kind, image)
    console.print(f"built {image} ({kind})")
