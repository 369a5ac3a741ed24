"""The `discovery` command line: run, resume, archive, replay, export, tasks, sandbox."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from discovery.app import options, render, runs
from discovery.app.exits import ExitCode
from discovery.archive import views
from discovery.config import LOCAL_MODEL, ModelConfig, RunConfig, is_local_model
from discovery.errors import UserError
from discovery.evaluation import SandboxError
from discovery.llm import ModelSpec
from discovery.llm.local.models import resolve as resolve_local_model
from discovery.sandbox.base import SandboxUnavailable

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _validation_message(exc: ValidationError) -> str:
    """Pydantic's errors as one line; a run option is named as its flag (budget -> --budget)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if exc.title == "RunConfig" and len(err["loc"]) == 1 and where not in ("task", "models"):
            where = "--" + where.replace("_", "-")
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def main() -> None:
    """Entry point: user mistakes print one line on stderr and exit 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(ExitCode.USER_ERROR)
    except (SandboxUnavailable, SandboxError) as exc:
        err_console.print(f"[bold red]sandbox error:[/bold red] {exc}", highlight=False)
        sys.exit(ExitCode.SANDBOX)
    except ValidationError as exc:
        err_console.print(f"[bold red]error:[/bold red] {_validation_message(exc)}", highlight=False)
        sys.exit(ExitCode.USER_ERROR)
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


def _model_specs(names: tuple[str, ...], api_base: str | None) -> list[ModelSpec]:
    """ModelSpecs from --model NAME[=WEIGHT] values; a bad one (or an unknown local model) is a UserError."""
    try:
        specs = [ModelSpec.parse(m, api_base) for m in names]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for spec in specs:
        if is_local_model(spec.name):
            resolve_local_model(spec.name)  # an unknown name or a missing file fails before any run folder
    return specs


def _build_config(task: str, models: tuple[str, ...], api_base: str | None, **options) -> RunConfig:
    names = models or (os.environ.get("DISCOVERY_MODEL") or LOCAL_MODEL,)
    specs = _model_specs(names, api_base)
    # Options left out get RunConfig's defaults, some of which depend on the models (config.model_defaults).
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
    help="litellm model string (repeat for an ensemble, with weights), or local, local:NAME, local:PATH.gguf. "
    "Default: $DISCOVERY_MODEL or 'local'.",
)
@click.option("--api-base", help="Base URL of an OpenAI-compatible server (use with --model openai/<name>).")
@click.option("--name", help="Run name (default <task>-<date>-<time>).")
@click.option("--no-novelty", is_flag=True, help="Turn the novelty check off (the default).")
@options.config_options
def run(
    task: str, models: tuple[str, ...], api_base: str | None, name: str | None, no_novelty: bool, **settings
) -> None:
    """Start a discovery run on TASK (a task folder)."""
    config = _build_config(task, models, api_base, **settings)
    if no_novelty:
        config = RunConfig.model_validate({**config.model_dump(), "novelty_threshold": None})
    outcome = runs.start_run(task, config, name, console)
    render.print_summary(outcome.run_dir, outcome.stop_reason, console)
    sys.exit(outcome.exit_code)


@cli.command()
@click.argument("run")
@click.option(
    "--add-budget",
    type=click.IntRange(min=1),
    help="Allow this many more LLM calls than the run's budget.",
)
@click.option("--max-time", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME[=WEIGHT]",
    help="Continue with these models instead of the stored ones (each call records its model).",
)
@click.option("--api-base", help="Base URL of an OpenAI-compatible server for the (new) models.")
def resume(
    run: str, add_budget: int | None, max_time: float | None, models: tuple[str, ...], api_base: str | None
) -> None:
    """Continue RUN exactly where it stopped (also after a crash or kill -9)."""
    from discovery.config import ModelConfig, RunConfig

    new_models = None
    if models or api_base:
        if models:
            specs = _model_specs(models, api_base)
            new_models = [ModelConfig(name=s.name, weight=s.weight, api_base=s.api_base) for s in specs]
        else:
            from discovery.archive import Archive

            stored = Archive.open_readonly(runs.resolve_run(run))
            try:
                config = RunConfig.model_validate(stored.meta()["config"])
            finally:
                stored.close()
            new_models = [m.model_copy(update={"api_base": api_base}) for m in config.models]
    outcome = runs.resume_run(run, console, add_budget, max_time, new_models)
    render.print_summary(outcome.run_dir, outcome.stop_reason, console)
    sys.exit(outcome.exit_code)


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


@archive.command("report")
@click.argument("run")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="HTML file to write.")
@click.option(
    "--top",
    type=click.IntRange(1),
    default=500,
    show_default=True,
    help="Full sections for at most this many candidates (the best, plus the champion's ancestors).",
)
@click.option("--all", "every", is_flag=True, help="A full section for every candidate, however many.")
def archive_report(run: str, output: str, top: int, every: bool) -> None:
    """Write RUN and its candidates as one self-contained HTML file (no network needed to view it)."""
    from discovery.app.web.report import write_report

    size, shown, total = write_report(runs.resolve_run(run), Path(output), None if every else top)
    console.print(
        f"wrote {output} ({size / 1e6:.2f} MB, {shown} of {total} candidates in full); open it in any browser, offline"
    )


@archive.command("plot")
@click.argument("run_names", metavar="RUN...", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="Image to write (.png, .svg, .pdf).",
)
@click.option(
    "--x",
    "x",
    type=click.Choice(["calls", "cost", "time"]),
    default="calls",
    show_default=True,
    help="x axis.",
)
def archive_plot(run_names: tuple[str, ...], output: str, x: str) -> None:
    """Plot the best score so far of one or more runs on one figure (needs matplotlib)."""
    from discovery.app.web.plot import plot_runs

    if Path(output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"-o {output}: give a .png, .svg or .pdf file name")
    plot_runs([runs.resolve_run(r) for r in run_names], Path(output), x)
    console.print(f"wrote {output}")


# ----- ui ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("run_names", metavar="[RUN]...", nargs=-1)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless you mean it).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free one)."
)
def ui(run_names: tuple[str, ...], host: str, port: int) -> None:
    """Browse runs in a local web page (read-only): curves, lineage tree, candidates, diffs, prompts."""
    from discovery.app.web.server import Catalogue, serve

    catalogue = Catalogue(runs.archive_root(), tuple(runs.resolve_run(r) for r in run_names))

    def announce(text: str) -> None:
        console.print(text, highlight=False)
        sys.stdout.flush()

    try:
        serve(catalogue, host, port, announce)
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port (0: any free)"
        ) from None


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
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    help="Allowed |archived - replayed| (default: the task's).",
)
@click.option("--live", is_flag=True, help="Agents: call a model now instead of the recorded replies.")
@click.option("--agent-model", help="With --live: the model to call (default: the run's agent model).")
@click.option("--agent-api-base", help="With --live: base URL of that model's server.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay(
    run: str,
    champion: bool,
    candidate_id: int | None,
    best: bool,
    sandbox: str | None,
    tolerance: float | None,
    live: bool,
    agent_model: str | None,
    agent_api_base: str | None,
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
    archived = Archive.open_readonly(run_dir)
    try:
        meta = archived.meta()
        if champion:
            candidate_id = archived.champion_id()
    finally:
        archived.close()
    if (agent_model or agent_api_base) and not live:
        raise UserError("--agent-model and --agent-api-base go with --live")
    config = RunConfig.model_validate(meta["config"])
    task = load_task(meta["task_path"])
    if live and not task.is_agent:
        raise UserError(f"--live replays agents; task {task.name} has no [agent] table")
    box = make_sandbox(sandbox or config.sandbox, image=task.spec.image, run_id=run_dir.name)
    try:
        with contextlib.ExitStack() as stack:
            model = None
            if live:
                name = agent_model or config.agent_model
                base = agent_api_base if agent_model else (agent_api_base or config.agent_api_base)
                model = runs.agent_model_spec(name, base, stack, console)
            result = do_replay(run_dir, candidate_id, box, tolerance, live=model)
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
        mode = {"recorded": ", on the recorded agent replies", "live": ", agent calling a model now"}.get(
            result.mode, ""
        )
        if result.interval is not None:
            replayed += f" (95% interval {result.interval[0]:.4g}-{result.interval[1]:.4g})"
        console.print(
            f"candidate {result.candidate_id}: archived {result.archived:.10g}, replayed {replayed} "
            f"(tolerance {result.tolerance:g}, sandbox {box.name}{mode}): {verdict}"
        )
        for divergence in result.divergences[:20]:
            console.print(Text(f"  divergence: {divergence}"))
    sys.exit(ExitCode.OK if result.holds else ExitCode.FAILED_CHECK)


@cli.command()
@click.argument("run")
@click.option("--best", is_flag=True, help="Export the best candidate (the default).")
@click.option("--candidate", "candidate_id", type=int, help="Candidate id.")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    required=True,
    help="File to write (a new or empty folder for a multi-file candidate).",
)
def export(run: str, best: bool, candidate_id: int | None, output: str) -> None:
    """Write a candidate's program to a file, or a multi-file candidate's tree to a folder."""
    from discovery.app.replay import pick_candidate
    from discovery.archive import Archive
    from discovery.program.tree import is_listing

    if best and candidate_id is not None:
        raise UserError("give either --best or --candidate ID, not both")
    target = Path(output)
    archived = Archive.open_readonly(runs.resolve_run(run))
    try:
        candidate = pick_candidate(archived, candidate_id)
    finally:
        archived.close()
    if candidate.status.startswith("rejected"):
        raise UserError(
            f"candidate {candidate.id} was {candidate.status.replace('_', ' ')} before evaluation: its text is "
            "the model's reply, not a program (`discovery archive candidate` shows it); export another candidate"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    if is_listing(candidate.code):
        _export_tree(candidate.code, target)
        console.print(f"wrote candidate {candidate.id} (score {candidate.score}) as a folder to {output}")
        if "discovery_harness import llm" in candidate.code:
            _export_agent_client(target.resolve())
        return
    if target.is_dir():
        raise UserError(f"cannot write {output}: it is a folder; give a file name, like {output}/program.py")
    try:
        target.write_text(candidate.code)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror or exc}") from None
    console.print(f"wrote candidate {candidate.id} (score {candidate.score}) to {output}")
    if "discovery_harness import llm" in candidate.code:
        _export_agent_client(Path(output).resolve().parent)


def _export_tree(listing: str, folder: Path) -> None:
    """Write a multi-file candidate's files into a new or empty folder (never over the user's files)."""
    from discovery.program.tree import from_listing, write_tree

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"cannot write {folder}: it exists and is not an empty folder; name a new folder")
    try:
        folder.mkdir(exist_ok=True)
        write_tree(folder, from_listing(listing))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {folder}: {getattr(exc, 'strerror', None) or exc}") from None


# What an exported agent may import from the harness: the LLM client, and (ARC agents) running
# model-written code in a bounded child process, which needs the candidate process and its error.
EXPORTED_HARNESS = ("llm.py", "programs.py", "candidate.py", "errors.py")
EXPORTED_INIT = (
    '"""The agent client of discovery, for agents run on their own."""\n\n'
    "from discovery_harness.candidate import CandidateProcess, CandidateTimeout\n"
    "from discovery_harness.errors import CandidateError\n"
)


def _export_agent_client(folder: Path) -> None:
    """Write the agent's part of discovery_harness beside an exported agent, so it runs without discovery."""
    from discovery.sandbox.hostpaths import sandboxes_dir

    package = folder / "discovery_harness"
    init = package / "__init__.py"
    if init.exists() and not init.read_text().startswith(EXPORTED_INIT.splitlines()[0]):
        raise UserError(f"{package} holds another harness already; export the agent to another folder")
    package.mkdir(exist_ok=True)
    init.write_text(EXPORTED_INIT)
    for name in EXPORTED_HARNESS:
        (package / name).write_text((sandboxes_dir() / "discovery_harness" / name).read_text())
    console.print(
        f"wrote the agent client to {package}/; run the agent against any OpenAI-compatible endpoint with "
        "DISCOVERY_LLM_BASE_URL (e.g. https://api.openai.com/v1), DISCOVERY_LLM_MODEL and DISCOVERY_LLM_API_KEY",
        markup=False,
    )


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
@click.argument("root", required=False, type=click.Path())
def tasks_list(root: str | None) -> None:
    """List the task folders under ROOT (default ./tasks, else the bundled tasks)."""
    from discovery.task import bundled_tasks_dir, find_problems, load_task

    if root is None:
        folder = Path("tasks") if any(Path("tasks").glob("*/task.toml")) else bundled_tasks_dir()
    else:
        folder = Path(root)
    if folder is None or not folder.is_dir():
        raise UserError(f"no task folder {root or './tasks'}; give one: `discovery tasks list PATH`")
    # task.toml folders and OpenEvolve folders (initial_program.py beside evaluator.py).
    found = {p.parent for p in folder.glob("*/task.toml")}
    found |= {p.parent for p in folder.glob("*/evaluator.py") if (p.parent / "initial_program.py").is_file()}
    paths = sorted(found)
    if not paths:
        raise UserError(f"{folder} holds no tasks (folders with a task.toml)")
    for path in paths:
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
    """Try each backend for real and report which work on this machine; exit 1 when no isolating one does."""
    from discovery.sandbox.choose import HOW_TO_GET_ONE, auto_choice, check_backends, render_check_table

    rows = check_backends()
    console.print(render_check_table(rows=rows))
    if auto_choice(rows) is None:
        err_console.print(f"[bold red]error:[/bold red] {HOW_TO_GET_ONE}", highlight=False)
        sys.exit(ExitCode.FAILED_CHECK)


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
