"""An OpenEvolve example folder read as it is: initial_program.py, evaluator.py and config.yaml.

The folder keeps OpenEvolve's contract, so the sandbox runner scores it the way OpenEvolve does
(sandboxes/runner.py, `--openevolve`): `evaluate(program_path)` returns a metrics dict or an
`EvaluationResult` (metrics and artifacts); the fitness is `combined_score` when the metrics hold
it, else the mean of the numeric metrics that are not MAP-Elites feature dimensions
(openevolve/utils/metrics_utils.py, get_fitness_score), always maximised. With
`evaluator.cascade_evaluation` (OpenEvolve's default) and an `evaluate_stage1`, the full evaluation
is OpenEvolve's cascade (stage 1, then 2 and 3 while each clears its threshold); `evaluate_stage1`
alone is also the quick stage that `discovery run --cascade` gates on.

This module only reads the folder: it returns the fields of a TaskSpec and the problems it found,
and discovery.task turns them into the same Task as a task.toml folder.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

from discovery.program.blocks import program_file_problems

PROGRAM = "initial_program.py"
EVALUATOR = "evaluator.py"
CONFIG = "config.yaml"
# OpenEvolve's EvaluatorConfig and DatabaseConfig defaults (openevolve/config.py).
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)
DEFAULT_FEATURES = ("complexity", "diversity")
DEFAULT_BRIEF = (
    "Improve the program between the EVOLVE-BLOCK markers so that the evaluator's fitness "
    "(combined_score, or the mean of its numeric metrics) is as high as possible."
)


@dataclasses.dataclass(frozen=True)
class Folder:
    """What an OpenEvolve folder declares: the task fields, and how the runner scores it."""

    name: str
    brief: str
    timeout_s: float
    stages: tuple[str, ...]  # the evaluate_stageN functions evaluator.py defines, in order
    cascade: bool  # evaluator.cascade_evaluation, and a stage 1 to start it
    thresholds: tuple[float, ...]
    features: tuple[str, ...]  # metrics left out of the mean (database.feature_dimensions)
    returns_combined_score: bool  # evaluator.py mentions combined_score: the fitness is that metric

    def metric_summary(self) -> str:
        """One line naming the fitness the search maximises."""
        if self.returns_combined_score:
            return "combined_score (maximised)"
        left_out = f", leaving out {', '.join(self.features)}" if self.features else ""
        return f"mean of the numeric metrics{left_out} (maximised; no combined_score in evaluator.py)"

    def stage_summary(self) -> str:
        """One line naming the evaluation stages."""
        if not self.cascade:
            return "evaluate() only" + (" (cascade_evaluation is off)" if self.stages else "")
        bars = ", ".join(f"{t:g}" for t in self.thresholds[: len(self.stages) - 1])
        return f"cascade {' -> '.join(self.stages)}" + (f" (thresholds {bars})" if bars else "")


def is_openevolve_folder(path: Path) -> bool:
    """Whether a folder is in OpenEvolve's layout (no task.toml; an evaluator.py or initial_program.py)."""
    path = Path(path)
    return (
        path.is_dir()
        and not (path / "task.toml").exists()
        and ((path / EVALUATOR).is_file() or (path / PROGRAM).is_file())
    )


def read_folder(path: Path) -> tuple[Folder | None, list[str]]:
    """The folder's declarations and every problem with it (each names the fix); None when unusable."""
    path = Path(path)
    problems = program_file_problems(
        path / PROGRAM, "the initial program", "an OpenEvolve folder starts from initial_program.py"
    )
    config, config_problems = _read_config(path / CONFIG)
    problems += config_problems
    stages, evaluator_text, evaluator_problems = _evaluator_functions(path / EVALUATOR)
    problems += evaluator_problems
    if problems:
        return None, problems
    evaluator_cfg = config.get("evaluator") or {}
    database_cfg = config.get("database") or {}
    prompt_cfg = config.get("prompt") or {}
    thresholds = evaluator_cfg.get("cascade_thresholds", DEFAULT_THRESHOLDS)
    features = database_cfg.get("feature_dimensions", DEFAULT_FEATURES)
    timeout = evaluator_cfg.get("timeout", DEFAULT_TIMEOUT_S)
    problems += _typed(thresholds, "evaluator.cascade_thresholds", "a list of numbers", _numbers)
    problems += _typed(features, "database.feature_dimensions", "a list of metric names", _names)
    problems += _typed(timeout, "evaluator.timeout", "a positive number of seconds", _positive)
    brief = prompt_cfg.get("system_message") or DEFAULT_BRIEF
    problems += _typed(brief, "prompt.system_message", "text", lambda v: isinstance(v, str))
    if problems:
        return None, [f"{path / CONFIG}: {p}" for p in problems]
    folder = Folder(
        name=_task_name(path),
        brief=brief,
        timeout_s=float(timeout),
        stages=stages,
        cascade=bool(evaluator_cfg.get("cascade_evaluation", True)) and "stage1" in stages,
        thresholds=tuple(float(t) for t in thresholds),
        features=tuple(features),
        returns_combined_score="combined_score" in evaluator_text,
    )
    return folder, []


def _task_name(path: Path) -> str:
    """A task name from the folder's name (letters, digits, '_', '.', '-')."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.resolve().name).strip("_")
    return name or "openevolve_task"


def _evaluator_functions(evaluator: Path) -> tuple[tuple[str, ...], str, list[str]]:
    """The cascade stages evaluator.py defines, its text, and its problems (no evaluate(program_path))."""
    if not evaluator.is_file():
        return (), "", [f"{evaluator}: missing; define evaluate(program_path) returning a dict of metrics"]
    text = evaluator.read_text()
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return (), text, [f"{evaluator}:{exc.lineno}: not valid Python: {exc.msg}"]
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    evaluate = functions.get("evaluate")
    if evaluate is None:
        return (), text, [f"{evaluator}: defines no top-level function evaluate(program_path)"]
    args = evaluate.args
    if not (args.posonlyargs or args.args or args.vararg):
        return (), text, [f"{evaluator}: evaluate() must take the program's path as its first argument"]
    stages = []
    for n in (1, 2, 3):
        if f"evaluate_stage{n}" not in functions:
            break
        stages.append(f"stage{n}")
    return tuple(stages), text, []


def _read_config(config_path: Path) -> tuple[dict[str, Any], list[str]]:
    """config.yaml as a mapping ({} when absent), or the problem with it."""
    if not config_path.is_file():
        return {}, []
    try:
        import yaml
    except ImportError:
        return {}, [f"{config_path}: reading it needs PyYAML; install it with `pip install pyyaml`"]
    try:
        data = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        return {}, [f"{config_path}: not valid YAML: {exc}"]
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [f"{config_path}: must be a YAML mapping (keys like prompt:, evaluator:)"]
    bad = [key for key in ("prompt", "evaluator", "database") if not isinstance(data.get(key) or {}, dict)]
    return data, [f"{config_path}: {key}: must be a mapping" for key in bad]


def _typed(value: Any, where: str, what: str, check) -> list[str]:
    """A problem naming the key and the expected type, when check(value) fails."""
    return [] if check(value) else [f"{where}: must be {what}, got {value!r}"]


def _numbers(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )


def _names(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
