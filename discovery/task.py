"""A task folder (task.toml, seed program, evaluator): loading and validation with clear errors."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from discovery import openevolve_task
from discovery.errors import UserError
from discovery.program.blocks import BLOCK_START, marker_problem, program_file_problems, split_block
from discovery.program.tree import MAX_FILES, Tree, from_listing, header_problem, path_problem, to_listing

# A function a brief asks for: a backticked plain name followed by "(", as in `build()` or `step(params, ...)`.
_NAMED_FUNCTION = re.compile(r"`([A-Za-z_]\w*)\(")


class Objective(BaseModel):
    """What is optimised: the evaluator's `score`, maximised or minimised."""

    model_config = ConfigDict(extra="forbid")
    direction: Literal["maximize", "minimize"] = "maximize"
    # Replay accepts a re-run whose score is within this of the archived one.
    tolerance: float = Field(default=1e-9, ge=0)


class Resources(BaseModel):
    """What one evaluation may use."""

    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(default=1.0, gt=0, le=256)
    memory_mb: int = Field(default=1024, ge=64)
    gpus: int = Field(default=0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    pids: int = Field(default=64, ge=8)
    output_kb: int = Field(default=1024, ge=16)


class Evaluation(BaseModel):
    """How candidates are evaluated: splits, seeds and repeats."""

    model_config = ConfigDict(extra="forbid")
    train_split: str = "train"
    # Never shown to the LLM; used for promotion and replay checks.
    heldout_split: str | None = None
    seed: int = 0
    repeats: int = Field(default=1, ge=1, le=100)
    # A cheap stage evaluate() accepts (evaluate(..., stage=NAME)), used by --cascade to gate the full one.
    cascade_stage: str | None = None
    # Same program, same score on every seed and repeat: the promotion gate compares once, exactly.
    deterministic: bool = False


class AgentBudget(BaseModel):
    """What one evaluation of an agent may spend through the LLM gateway (the `[agent]` table).

    A task with this table is an agent task: each evaluation gets its own gateway socket, token
    and a fresh copy of this budget; the gateway refuses any call that would go past it.
    """

    model_config = ConfigDict(extra="forbid")
    calls: int = Field(default=200, ge=1, le=100_000, description="chat requests (n=k counts k)")
    tokens: int = Field(default=200_000, ge=1, description="prompt + completion tokens")
    dollars: float = Field(default=0.50, ge=0, description="USD, as litellm prices the agent model")
    concurrent: int = Field(default=4, ge=1, le=64, description="calls in flight at once")
    prompt_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024, description="request body")
    wall_s: float = Field(default=300.0, gt=0, description="seconds from the sandbox's start")
    max_tokens: int = Field(
        default=1024, ge=1, description="completion tokens per call (larger asks are capped)"
    )
    max_n: int = Field(default=8, ge=1, le=64, description="completions per request")


class OpenEvolveScoring(BaseModel):
    """How the runner scores an OpenEvolve folder (see discovery.openevolve_task); set by its adapter."""

    model_config = ConfigDict(extra="forbid")
    # evaluator.cascade_evaluation with an evaluate_stage1: the full evaluation is OpenEvolve's cascade.
    cascade: bool = False
    thresholds: list[float] = [0.5, 0.75, 0.9]
    # Metrics left out of the mean when there is no combined_score (MAP-Elites feature dimensions).
    features: list[str] = []
    # For `tasks validate`: what was understood about the fitness and the stages.
    metric_summary: str = ""
    stage_summary: str = ""


class TaskSpec(BaseModel):
    """The contents of task.toml."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    brief: str = Field(min_length=1)
    # A file (single-file task) or a folder (multi-file task) inside the task folder.
    candidate: str = "program.py"
    # Multi-file tasks: paths inside the candidate folder that the candidate may not change.
    fixed_files: list[str] = []
    image: str = "discovery-sandbox:py"
    objective: Objective = Objective()
    resources: Resources = Resources()
    evaluation: Evaluation = Evaluation()
    # Present only for agent tasks: candidates that call an LLM through the run's gateway.
    agent: AgentBudget | None = None
    # Set for an OpenEvolve folder read as it is: evaluator.py's evaluate(program_path) scores it.
    openevolve: OpenEvolveScoring | None = None

    @field_validator("candidate")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if "/" in value or value.startswith("."):
            raise ValueError(
                "must be a plain file or folder name inside the task folder, like 'program.py' or 'agent'"
            )
        return value

    @field_validator("fixed_files")
    @classmethod
    def _safe_paths(cls, value: list[str]) -> list[str]:
        problems = [p for p in map(path_problem, value) if p]
        if problems:
            raise ValueError(problems[0] + "; list paths relative to the candidate folder, like 'tools.py'")
        return value

    @model_validator(mode="after")
    def _splits_differ(self) -> TaskSpec:
        if self.evaluation.heldout_split == self.evaluation.train_split:
            raise ValueError("evaluation.heldout_split must differ from evaluation.train_split")
        return self


class Task(BaseModel):
    """A loaded, validated task."""

    model_config = ConfigDict(frozen=True)
    path: Path
    spec: TaskSpec
    seed_code: str
    # Whether the candidate is a folder of files (task.toml's `candidate` names a folder).
    folder: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fixed(self) -> frozenset[str]:
        """Paths of the candidate tree that no child may change (none for a single-file task)."""
        return frozenset(self.spec.fixed_files)

    def tree_of(self, code: str) -> Tree:
        """A candidate's code (Candidate.code) as its tree; a single-file candidate is a one-entry tree."""
        return from_listing(code) if self.folder else {self.spec.candidate: code}

    def code_of(self, tree: Tree) -> str:
        """The text form of a tree, as Candidate.code holds it: the file itself, or the listing."""
        return to_listing(tree) if self.folder else tree[self.spec.candidate]

    @property
    def maximize(self) -> bool:
        return self.spec.objective.direction == "maximize"

    @property
    def is_agent(self) -> bool:
        """Whether candidates call an LLM (the task declares an `[agent]` budget)."""
        return self.spec.agent is not None

    def fitness(self, score: float) -> float:
        """Higher is better, whatever the direction."""
        return score if self.maximize else -score


def find_problems(path: Path) -> list[str]:
    """Every problem with a task folder, each a sentence that names the fix; empty when valid."""
    path = Path(path)
    if openevolve_task.is_openevolve_folder(path):
        return openevolve_task.read_folder(path)[1]
    if not path.is_dir():
        return [
            f"{path}: no such task folder (a task is a folder holding task.toml, program.py and evaluate.py)"
        ]
    problems: list[str] = []
    spec = None
    toml_path = path / "task.toml"
    if not toml_path.is_file():
        problems.append(
            f"{toml_path}: missing; create it with at least `name` and `brief` (see README, 'Writing a task'), "
            f"or give an OpenEvolve folder ({openevolve_task.PROGRAM} and {openevolve_task.EVALUATOR})"
        )
    else:
        try:
            spec = TaskSpec.model_validate(tomllib.loads(toml_path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{toml_path}: not valid TOML: {exc}")
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(top level)"
                problems.append(f"{toml_path}: {where}: {err['msg']}")
    candidate_name = spec.candidate if spec else "program.py"
    if (path / candidate_name).is_dir():
        problems += _folder_problems(path / candidate_name, spec.fixed_files if spec else [])
    else:
        if spec is not None and spec.fixed_files:
            problems.append(
                f"{toml_path}: fixed_files applies only when `candidate` names a folder; remove it or make "
                f"{candidate_name} a folder"
            )
        program_problems = program_file_problems(
            path / candidate_name, "the seed program", "this is the seed candidate the search starts from"
        )
        problems += program_problems
        if spec is not None and not program_problems:
            problems += _brief_problems(toml_path, spec.brief, path / candidate_name)
    problems += _evaluator_problems(path / "evaluate.py")
    return problems


def _brief_problems(toml_path: Path, brief: str, program: Path) -> list[str]:
    """Functions the brief names (`name()`) that the EVOLVE block does not define: the model cannot write them."""
    block = split_block(program.read_text())
    if block is None:
        return []
    try:
        tree = ast.parse(block.body)
    except SyntaxError:
        return []  # a block that parses only with its context; the program check covers syntax
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    named = dict.fromkeys(_NAMED_FUNCTION.findall(brief))
    return [
        f"{toml_path}: brief names `{name}()`, which the EVOLVE block of {program.name} does not define; "
        "a brief may ask only for what the model can change (define it in the block or name the block's function)"
        for name in named
        if name not in defined
    ]


def read_folder(folder: Path) -> tuple[Tree, list[str]]:
    """The tree of a candidate folder (skipping __pycache__), and every problem found reading it."""
    tree: Tree = {}
    problems: list[str] = []
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if "__pycache__" in rel.split("/") or file.is_dir() and not file.is_symlink():
            continue
        problem = path_problem(rel)
        if problem or file.is_symlink() or not file.is_file():
            problems.append(
                f"{file}: {problem or 'not a plain file'}; a candidate folder holds plain text files"
            )
            continue
        try:
            tree[rel] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(
                f"{file}: not UTF-8 text; keep data files outside the candidate folder (in data/)"
            )
    if len(tree) > MAX_FILES:
        problems.append(f"{folder}: {len(tree)} files; a candidate folder holds at most {MAX_FILES}")
    return tree, problems


def _folder_problems(folder: Path, fixed: list[str]) -> list[str]:
    """Problems with a multi-file seed: unreadable files, bad Python, malformed EVOLVE markers, fixed files."""
    tree, problems = read_folder(folder)
    if not tree and not problems:
        return [f"{folder}: empty; put the seed candidate's files in it"]
    for rel, code in tree.items():
        if rel.endswith(".py"):
            try:
                ast.parse(code)
            except SyntaxError as exc:
                problems.append(f"{folder / rel}:{exc.lineno}: the seed file is not valid Python: {exc.msg}")
        problem = marker_problem(code) if BLOCK_START in code or "EVOLVE-BLOCK-END" in code else None
        if problem:
            problems.append(f"{folder / rel}: {problem}")
    problems += [
        f"{folder}: fixed_files names {p!r}, which is not a file of the candidate folder"
        for p in fixed
        if p not in tree
    ]
    if tree and set(tree) <= set(fixed):
        problems.append(
            f"{folder}: every file is in fixed_files; leave at least one file the model may change"
        )
    problem = header_problem(tree)
    if problem:
        problems.append(f"{folder}/{problem}")
    return problems


def _evaluator_problems(evaluator: Path) -> list[str]:
    """Problems with evaluate.py: missing, not Python, or no evaluate(candidate_path, split, seed)."""
    if not evaluator.is_file():
        return [
            f"{evaluator}: missing; define evaluate(candidate_path, split, seed) -> dict with a numeric 'score'"
        ]
    try:
        tree = ast.parse(evaluator.read_text())
    except SyntaxError as exc:
        return [f"{evaluator}:{exc.lineno}: not valid Python: {exc.msg}"]
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if "evaluate" not in functions:
        return [f"{evaluator}: defines no top-level function evaluate(candidate_path, split, seed)"]
    args = functions["evaluate"].args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    missing = [n for n in ("split", "seed") if n not in names and args.kwarg is None]
    if not names or missing:
        return [
            f"{evaluator}: evaluate() must accept (candidate_path, split, seed); missing {missing or ['candidate_path']}"
        ]
    return []


def bundled_tasks_dir() -> Path | None:
    """The tasks/ folder shipped beside the package (a checkout or an editable install), if any."""
    folder = Path(__file__).resolve().parent.parent / "tasks"
    return folder if folder.is_dir() else None


def load_task(path: Path | str) -> Task:
    """Load a task folder, or raise UserError listing every problem."""
    path = Path(path)
    problems = find_problems(path)
    if len(problems) == 1:
        raise UserError(f"invalid task: {problems[0]}")
    if problems:
        raise UserError("invalid task:\n  " + "\n  ".join(problems))
    if openevolve_task.is_openevolve_folder(path):
        return _openevolve_task(path)
    spec = TaskSpec.model_validate(tomllib.loads((path / "task.toml").read_text()))
    seed = path / spec.candidate
    if seed.is_dir():
        return Task(path=path.resolve(), spec=spec, seed_code=to_listing(read_folder(seed)[0]), folder=True)
    return Task(path=path.resolve(), spec=spec, seed_code=seed.read_text())


def _openevolve_task(path: Path) -> Task:
    """The Task for an OpenEvolve folder: its initial program, system message and evaluator as they are."""
    folder, _ = openevolve_task.read_folder(path)
    assert folder is not None  # load_task checked the folder first
    spec = TaskSpec(
        name=folder.name,
        brief=folder.brief,
        candidate=openevolve_task.PROGRAM,
        resources=Resources(timeout_s=folder.timeout_s),
        evaluation=Evaluation(cascade_stage="stage1" if "stage1" in folder.stages else None),
        openevolve=OpenEvolveScoring(
            cascade=folder.cascade,
            thresholds=list(folder.thresholds),
            features=list(folder.features),
            metric_summary=folder.metric_summary(),
            stage_summary=folder.stage_summary(),
        ),
    )
    return Task(path=path.resolve(), spec=spec, seed_code=(path / spec.candidate).read_text())
