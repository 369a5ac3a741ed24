"""Search efficiency: which search options buy a better held-out program for the same LLM-call budget.

Runs several arms (best-of-n, the RunConfig defaults, the defaults with one option switched off or on)
on one task with one model and the same budget, each with several seeds, one run after another. For
each run it takes the best train candidate, re-evaluates it on the task's held-out split in a fresh
sandbox, and records the best-so-far train score against LLM calls. Prints a table per arm (median
and min-max over seeds), the best score against calls with 95 % intervals over seeds, the share of
calls that became valid candidates, and why the other calls were lost; writes a PNG of the median
best-so-far curves and a JSON of every figure.

    .venv/bin/python bench/search_efficiency.py [--task tasks/bin_packing] [--model local] [--budget 30]
        [--seeds 3] [--arms best-of-n,default,...] [--sandbox auto] [--archive-dir DIR]
        [--stand-in perturb|structural]

--stand-in serves a deterministic stand-in model (bench/stand_in_models.py) on 127.0.0.1 instead
of --model: `perturb` changes one number per reply, `structural` swaps in known layouts.
--openevolve (OpenEvolve-format task folders only) adds an `openevolve` arm: OpenEvolve installed
from the package index into bench/out/openevolve-venv, run on the same folder with the same model
server, temperature, budget of calls and evaluation timeout (bench/openevolve_arm.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from bench import openevolve_arm, stand_in_models  # noqa: E402
from discovery import evaluation  # noqa: E402
from discovery.app.runs import model_endpoints  # noqa: E402
from discovery.archive import Archive  # noqa: E402
from discovery.config import (  # noqa: E402
    LOCAL_MODEL,  # noqa: E402
    ModelConfig,
    RunConfig,
)
from discovery.domain import Status  # noqa: E402
from discovery.errors import UserError  # noqa: E402
from discovery.llm import LLMClient  # noqa: E402
from discovery.sandbox.choose import make_sandbox  # noqa: E402
from discovery.search.loop import Search  # noqa: E402
from discovery.task import Task, load_task  # noqa: E402

# Each arm is the RunConfig defaults plus these overrides; the budget, model and seed are shared.
ARMS: dict[str, dict[str, Any]] = {
    "best-of-n": {"strategy": "best-of-n"},
    "default": {},
    "no-crossover": {"crossover_rate": 0.0},
    "no-novelty": {"novelty_threshold": None},
    "+novelty": {"novelty_threshold": 0.95},
    "no-repair": {"repair": False},
    "no-inspirations": {"inspirations": 0},
    "+islands": {"islands": 3},
    "+reflection": {"reflection": True},
    "+bandit": {"bandit": "ucb"},
}
DEFAULT_OUT = ROOT / "bench" / "out" / "search_efficiency.png"


@dataclasses.dataclass
class RunResult:
    """What one (arm, seed) run produced."""

    arm: str
    seed: int
    run_dir: str
    stop_reason: str
    calls: int
    wall_s: float
    train: float | None  # best train score (task units), None when nothing evaluated ok
    heldout: float | None  # that candidate's held-out score; None when n/a or failed
    heldout_status: str  # "ok", "n/a" (task has no held-out split or no best), or the failure status
    best_id: int | None
    curve: list[float | None]  # best-so-far train score after k LLM calls, k = 0..budget
    valid: int = 0  # calls whose reply became a candidate that evaluated ok (and valid, see is_valid)
    lost: dict[str, int] = dataclasses.field(default_factory=dict)  # status -> children lost to it


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default=str(ROOT / "tasks" / "bin_packing"), help="task folder")
    parser.add_argument(
        "--model", default=LOCAL_MODEL, help="'local' (embedded model) or a litellm model string"
    )
    parser.add_argument("--api-base", default=None, help="API base URL for --model")
    parser.add_argument(
        "--stand-in",
        default=None,
        choices=tuple(stand_in_models.MODELS),
        help="serve this deterministic stand-in model on 127.0.0.1 instead of --model",
    )
    parser.add_argument("--budget", type=int, default=30, help="LLM calls per run")
    parser.add_argument("--seeds", type=int, default=3, help="runs per arm (RunConfig.seed 0..N-1)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma list of: {', '.join(ARMS)}")
    parser.add_argument(
        "--openevolve",
        action="store_true",
        help="also run OpenEvolve (its own venv under bench/out) on the same OpenEvolve-format task",
    )
    parser.add_argument("--sandbox", default="auto", choices=("auto", "docker", "bwrap", "process"))
    parser.add_argument("--llm-concurrency", type=int, default=None, help="default: RunConfig's")
    parser.add_argument("--eval-slots", type=int, default=None, help="default: RunConfig's")
    parser.add_argument(
        "--reply-format", default=None, choices=("diff", "full", "block"), help="default: block for local"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="default: 1024 for local, else 4096")
    parser.add_argument("--max-time", type=float, default=None, help="seconds per run (a safety cap)")
    parser.add_argument("--archive-dir", default=None, help="folder for the runs' archives (default: temp)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="PNG path; a .json of the figures goes beside"
    )
    return parser.parse_args(argv)


def arm_names(text: str) -> list[str]:
    """The arms asked for, in order; UserError names any unknown one."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in names if a not in ARMS]
    if unknown or not names:
        raise UserError(
            f"unknown arm(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ARMS)}"
        )
    return names


def make_config(args: argparse.Namespace, task: Task, arm: str, seed: int) -> RunConfig:
    """The RunConfig of one run: shared settings, the run's seed, and the arm's overrides."""
    local = args.model == LOCAL_MODEL
    shared: dict[str, Any] = {
        "task": str(task.path),
        "models": [ModelConfig(name=args.model, api_base=None if local else args.api_base)],
        "budget": args.budget,
        "reply_format": args.reply_format or ("block" if local else "diff"),
        "max_tokens": args.max_tokens or (1024 if local else 4096),
        "sandbox": args.sandbox,
        "max_time": args.max_time,
        "seed": seed,
    }
    if args.llm_concurrency is not None:
        shared["llm_concurrency"] = args.llm_concurrency
    if args.eval_slots is not None:
        shared["eval_slots"] = args.eval_slots
    try:
        return RunConfig(**shared, **ARMS[arm])
    except ValueError as exc:
        raise UserError(f"arm {arm!r} does not make a valid RunConfig: {exc}") from None


def best_so_far(archive: Archive, budget: int) -> list[float | None]:
    """Best train score after k LLM calls (k = 0..budget), candidates taken in call_id order."""
    points: list[tuple[int, float, float]] = []  # (calls spent, fitness, score)
    for c in archive.candidates(Status.OK):
        if c.fitness is None or c.score is None:
            continue
        points.append((c.call_id or 0, c.fitness, c.score))  # the seed has no call: it is there at 0
    points.sort()
    curve: list[float | None] = []
    best: tuple[float, float] | None = None
    i = 0
    for k in range(budget + 1):
        while i < len(points) and points[i][0] <= k:
            if best is None or points[i][1] > best[0]:
                best = (points[i][1], points[i][2])
            i += 1
        curve.append(best[1] if best else None)
    return curve


def is_valid(candidate) -> bool:
    """Evaluated ok, and not an OpenEvolve-style 'scored 0 because invalid' result."""
    if candidate.status != Status.OK:
        return False
    metrics = candidate.metrics or {}
    return not ("error" in metrics or metrics.get("validity") == 0.0)


def call_outcomes(archive: Archive) -> tuple[int, dict[str, int]]:
    """(children from LLM calls that were valid, status -> count of the others)."""
    valid, lost = 0, {}
    for c in archive.candidates():
        if c.call_id is None:
            continue  # the seed
        if is_valid(c):
            valid += 1
        else:
            key = "invalid" if c.status == Status.OK else c.status
            lost[key] = lost.get(key, 0) + 1
    return valid, lost


def heldout_score(task: Task, code: str, sandbox_name: str, run_id: str) -> tuple[float | None, str]:
    """Evaluate a program on the task's held-out split in a fresh sandbox: (score, status)."""
    split = task.spec.evaluation.heldout_split
    if not split:
        return None, "n/a"
    sandbox = make_sandbox(sandbox_name, image=task.spec.image, run_id=run_id)  # type: ignore[arg-type]
    try:
        outcome = asyncio.run(evaluation.evaluate(sandbox, task, code, split=split))
    finally:
        sandbox.close()
    if outcome.status != Status.OK:
        return None, outcome.status
    return outcome.score, Status.OK


def run_one(
    args: argparse.Namespace, task: Task, client: LLMClient, arm: str, seed: int, root: Path
) -> RunResult:
    """One search with its own archive folder, then the held-out check of its best candidate."""
    config = make_config(args, task, arm, seed)
    name = f"{arm.replace('+', 'with-')}-seed{seed}"
    run_dir = root / name
    archive = Archive.create(
        run_dir,
        {
            "task_path": str(task.path),
            "task": task.name,
            "config": config.model_dump(),
            "created_at": time.time(),
        },
    )
    try:
        # The same events `discovery run` logs, so `discovery archive show` reads these runs as usual.
        archive.log_event("run_started")
        sandbox = make_sandbox(config.sandbox, image=task.spec.image, run_id=name)
        started = time.monotonic()
        reason = "crashed"
        try:
            search = Search(archive, task, config, client, sandbox, name, max_time=config.max_time)
            reason = asyncio.run(search.run())
        finally:
            sandbox.close()
            archive.log_event("run_stopped", reason=reason)
        wall_s = time.monotonic() - started
        best = archive.best()
        curve = best_so_far(archive, config.budget)
        calls = archive.calls_made()
        valid, lost = call_outcomes(archive)
    finally:
        archive.close()
    heldout, status = (None, "n/a")
    if best is not None:
        heldout, status = heldout_score(task, best.code, config.sandbox, f"{name}-heldout")
    return RunResult(
        arm=arm,
        seed=seed,
        run_dir=str(run_dir),
        stop_reason=reason,
        calls=calls,
        wall_s=wall_s,
        train=best.score if best else None,
        heldout=heldout,
        heldout_status=status,
        best_id=best.id if best else None,
        curve=curve,
        valid=valid,
        lost=lost,
    )


def fmt(value: float | None) -> str:
    """A score for the table, or n/a."""
    return "n/a" if value is None else f"{value:.4g}"


def spread(values: list[float | None], failures: int = 0) -> str:
    """'median [min, max]' of the known values, or n/a; notes how many runs had no value."""
    known = [v for v in values if v is not None]
    if not known:
        return "n/a" if not failures else f"n/a ({failures} failed)"
    text = f"{statistics.median(known):.4g} [{min(known):.4g}, {max(known):.4g}]"
    return text + (f" ({failures} failed)" if failures else "")


def table(results: list[RunResult], arms: list[str]) -> str:
    """The per-arm summary as aligned plain text."""
    header = ("arm", "runs", "held-out median [min, max]", "train median [min, max]", "calls", "wall s/run")
    rows = [header]
    for arm in arms:
        runs = [r for r in results if r.arm == arm]
        if not runs:
            continue
        failed = sum(r.heldout_status not in (Status.OK, "n/a") for r in runs)
        calls = [r.calls for r in runs]
        rows.append(
            (
                arm,
                str(len(runs)),
                spread([r.heldout for r in runs], failed),
                spread([r.train for r in runs]),
                f"{statistics.median(calls):g}"
                + (f" [{min(calls)}, {max(calls)}]" if min(calls) != max(calls) else ""),
                f"{statistics.median(r.wall_s for r in runs):.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Two-sided 95 % Student t quantiles by degrees of freedom (1..10); the normal 1.96 beyond.
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def interval(values: list[float]) -> str:
    """'mean ± half-width' of a 95 % t interval over runs (just the value for one run)."""
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.4g}"
    t = T95[len(values) - 2] if len(values) - 2 < len(T95) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.4g} ± {half:.2g}"


def curve_table(results: list[RunResult], arms: list[str], budget: int) -> str:
    """Best score after k calls (mean ± 95 % interval over seeds) at five points, the valid share, and losses."""
    points = sorted({0, budget // 4, budget // 2, (3 * budget) // 4, budget})
    header = ("arm", *[f"@{k} calls" for k in points], "valid calls", "lost (children)")
    rows = [header]
    for arm in arms:
        runs = [r for r in results if r.arm == arm]
        if not runs:
            continue
        cells = []
        for k in points:
            known = [r.curve[min(k, len(r.curve) - 1)] for r in runs]
            cells.append(interval([v for v in known if v is not None]))
        calls = sum(r.calls for r in runs)
        share = f"{100 * sum(r.valid for r in runs) / calls:.0f} %" if calls else "n/a"
        lost: dict[str, int] = {}
        for r in runs:
            for key, n in r.lost.items():
                lost[key] = lost.get(key, 0) + n
        lost_text = ", ".join(f"{k} {v}" for k, v in sorted(lost.items(), key=lambda kv: -kv[1])) or "-"
        rows.append((arm, *cells, share, lost_text))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median_curve(curves: list[list[float | None]]) -> list[float | None]:
    """Pointwise median over runs, skipping runs with no value yet at that call."""
    out: list[float | None] = []
    for k in range(max(len(c) for c in curves)):
        known = [c[k] for c in curves if k < len(c) and c[k] is not None]
        out.append(statistics.median(known) if known else None)
    return out


def plot(results: list[RunResult], arms: list[str], task: Task, model: str, path: Path) -> None:
    """Median best-so-far train score against LLM calls, one line per arm, min-max band shaded."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on benchmark machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for arm in arms:
        curves = [r.curve for r in results if r.arm == arm]
        if not curves:
            continue
        med = median_curve(curves)
        xs = [k for k, v in enumerate(med) if v is not None]
        (line,) = ax.step(xs, [med[k] for k in xs], where="post", label=f"{arm} (n={len(curves)})")
        lo = [min(c[k] for c in curves if c[k] is not None) for k in xs]
        hi = [max(c[k] for c in curves if c[k] is not None) for k in xs]
        ax.fill_between(xs, lo, hi, step="post", alpha=0.12, color=line.get_color())
    better = "higher" if task.maximize else "lower"
    ax.set_xlabel("LLM calls")
    ax.set_ylabel(f"best-so-far train score ({better} is better)")
    ax.set_title(f"{task.name}, model {model}\nmedian over seeds (band: min-max)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (arm, seed), print the table, write the plot and the JSON; returns an exit code."""
    args = parse_args(argv)
    console = Console(stderr=True)
    try:
        arms = arm_names(args.arms)
        task = load_task(args.task)
        if args.budget < 1 or args.seeds < 1:
            raise UserError("--budget and --seeds must be at least 1")
        for arm in arms:  # fail fast on an arm the current RunConfig rejects, before any run
            make_config(args, task, arm, 0)
        if args.openevolve and task.spec.openevolve is None:
            raise UserError(
                "--openevolve needs an OpenEvolve-format task folder (initial_program.py, evaluator.py)"
            )
        if args.openevolve and args.model == LOCAL_MODEL and not args.stand_in:
            raise UserError(
                "--openevolve needs a model server: give --stand-in NAME or --model with --api-base"
            )
        root = Path(args.archive_dir or tempfile.mkdtemp(prefix="discovery-search-eff-"))
        out = Path(args.out)
        console.print(f"archives under {root}")
        # The seed's held-out score is the baseline every arm's best is compared with.
        seed_heldout, seed_heldout_status = heldout_score(task, task.seed_code, args.sandbox, "seed-heldout")
        with contextlib.ExitStack() as stack:
            if args.stand_in:
                args.api_base = stack.enter_context(stand_in_models.serve(args.stand_in))
                args.model = f"openai/stand-in-{args.stand_in}"
            results = run_all(args, task, arms, root, console)
        if args.openevolve:
            arms.append("openevolve")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(args, task, arms, results, seed_heldout, seed_heldout_status, root, out)
    return 0


def run_all(
    args: argparse.Namespace, task: Task, arms: list[str], root: Path, console: Console
) -> list[RunResult]:
    """Every (arm, seed) run, seeds outermost."""
    results: list[RunResult] = []
    template = make_config(args, task, arms[0], 0)
    python = (
        openevolve_arm.ensure_venv(ROOT / "bench" / "out" / "openevolve-venv") if args.openevolve else None
    )
    seed_score = seed_train_score(task, args.sandbox) if args.openevolve else None
    with model_endpoints(template.models, console) as specs:
        client = LLMClient(specs, template.temperature, template.max_tokens, template.llm_timeout_s)
        total = (len(arms) + (python is not None)) * args.seeds
        for seed in range(args.seeds):  # seeds outermost: a cut-short session still covers every arm
            for arm in arms:
                console.print(f"[{len(results) + 1}/{total}] {arm} seed {seed} ...")
                result = run_one(args, task, client, arm, seed, root)
                results.append(result)
                console.print(
                    f"    {result.stop_reason}; {result.calls} calls in {result.wall_s:.1f} s; "
                    f"train {fmt(result.train)}, held-out {fmt(result.heldout)} ({result.heldout_status})",
                    soft_wrap=True,
                    highlight=False,
                )
            if python is not None:
                console.print(f"[{len(results) + 1}/{total}] openevolve seed {seed} ...")
                result = run_openevolve(args, task, template, python, seed, seed_score, root)
                results.append(result)
                console.print(f"    {result.calls} calls in {result.wall_s:.1f} s; best {fmt(result.train)}")
    return results


def seed_train_score(task: Task, sandbox_name: str) -> float | None:
    """The seed program's train score, evaluated once in a fresh sandbox."""
    sandbox = make_sandbox(sandbox_name, image=task.spec.image, run_id="seed-train")  # type: ignore[arg-type]
    try:
        outcome = asyncio.run(evaluation.evaluate(sandbox, task, task.seed_code))
    finally:
        sandbox.close()
    return outcome.score if outcome.status == Status.OK else None


def run_openevolve(
    args: argparse.Namespace,
    task: Task,
    template: RunConfig,
    python: Path,
    seed: int,
    seed_score: float | None,
    root: Path,
) -> RunResult:
    """One OpenEvolve run with the discovery arms' model server, temperature, budget and timeout."""
    out = root / f"openevolve-seed{seed}"
    raw = openevolve_arm.run(
        python,
        task.path,
        out,
        args.api_base,
        args.budget,
        seed,
        template.temperature,
        task.spec.resources.timeout_s,
    )
    if raw["returncode"] != 0:
        raise UserError(f"OpenEvolve failed (exit {raw['returncode']}); see {out / 'openevolve.log'}")
    curve = openevolve_arm.curve(raw, seed_score, args.budget)
    valid, lost = openevolve_arm.outcomes(raw)
    return RunResult(
        arm="openevolve",
        seed=seed,
        run_dir=str(out),
        stop_reason="iterations done",
        calls=len(raw["children"]) + len(raw["failures"]),
        wall_s=raw["wall_s"],
        train=curve[-1],
        heldout=None,
        heldout_status="n/a",
        best_id=None,
        curve=curve,
        valid=valid,
        lost=lost,
    )


def report(
    args: argparse.Namespace,
    task: Task,
    arms: list[str],
    results: list[RunResult],
    seed_heldout: float | None,
    seed_heldout_status: str,
    root: Path,
    out: Path,
) -> None:
    """Print the tables, write the plot and the JSON."""
    heldout_note = "" if task.spec.evaluation.heldout_split else " (task has no held-out split: held-out n/a)"
    print(
        f"task {task.name} ({'maximize' if task.maximize else 'minimize'}), model {args.model}, "
        f"budget {args.budget} calls, {args.seeds} seed(s), sandbox {args.sandbox}{heldout_note}"
    )
    seed_train = results[0].curve[0] if results else None
    seed_heldout_text = fmt(seed_heldout) if seed_heldout is not None else seed_heldout_status
    print(f"seed program: train {fmt(seed_train)}, held-out {seed_heldout_text}")
    print(table(results, arms))
    print(f"\nbest train score against LLM calls (mean ± 95 % t interval over {args.seeds} seed(s))")
    print(curve_table(results, arms, args.budget))
    plot(results, arms, task, args.model, out)
    data = {
        "task": task.name,
        "model": args.model,
        "budget": args.budget,
        "seeds": args.seeds,
        "seed_heldout": seed_heldout,
        "runs": [dataclasses.asdict(r) for r in results],
    }
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    print(f"plot: {out}\nfigures: {out.with_suffix('.json')}\narchives: {root}")


if __name__ == "__main__":
    sys.exit(main())
