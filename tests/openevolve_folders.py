"""OpenEvolve example folders written as OpenEvolve documents them: initial_program.py, evaluator.py, config.yaml."""

from __future__ import annotations

import textwrap
from pathlib import Path

# The seed: x = 3.0; the evaluators reward x close to 1.
INITIAL_PROGRAM = textwrap.dedent(
    '''
    """A one-number search, in OpenEvolve's layout."""
    # EVOLVE-BLOCK-START
    def guess():
        """The value the evaluator scores."""
        return 3.0
    # EVOLVE-BLOCK-END


    def run_search():
        return guess()
    '''
)

LOAD = textwrap.dedent(
    """
    import importlib.util


    def _run(program_path):
        spec = importlib.util.spec_from_file_location("program", program_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return float(module.run_search())
    """
)

# evaluate() returning a plain dict with combined_score, as most OpenEvolve examples do.
DICT_EVALUATOR = LOAD + textwrap.dedent(
    """

    def evaluate(program_path):
        x = _run(program_path)
        closeness = 1.0 / (1.0 + (x - 1.0) ** 2)
        return {"closeness": closeness, "x": x, "combined_score": closeness}
    """
)

# evaluate() returning OpenEvolve's EvaluationResult, with artifacts; no combined_score, so the
# fitness is the mean of the numeric metrics.
RESULT_EVALUATOR = LOAD + textwrap.dedent(
    """
    from openevolve.evaluation_result import EvaluationResult


    def evaluate(program_path):
        x = _run(program_path)
        return EvaluationResult(
            metrics={"closeness": 1.0 / (1.0 + (x - 1.0) ** 2), "validity": 1.0, "note": "text is ignored"},
            artifacts={"stdout": f"x was {x}", "raw": b"bytes too"},
        )
    """
)

# The cascade: stage 1 is cheap, stage 2 runs only above the stage-1 threshold.
CASCADE_EVALUATOR = LOAD + textwrap.dedent(
    """

    def evaluate_stage1(program_path):
        x = _run(program_path)
        return {"stage1_ok": 1.0 if abs(x) < 10 else 0.0, "combined_score": 1.0 / (1.0 + abs(x - 1.0))}


    def evaluate_stage2(program_path):
        x = _run(program_path)
        return {"combined_score": 10.0 / (1.0 + (x - 1.0) ** 2), "stage2_ran": 1.0}


    def evaluate(program_path):
        return evaluate_stage2(program_path)
    """
)

CONFIG = textwrap.dedent(
    """
    max_iterations: 10
    llm:
      primary_model: "gpt-4o-mini"
      temperature: 0.7
    prompt:
      system_message: "You tune one number. Return the value closest to one."
    database:
      population_size: 50
    evaluator:
      timeout: 20
      cascade_evaluation: {cascade}
      cascade_thresholds: [{threshold}]
    """
)


def write_folder(
    root: Path,
    evaluator: str = DICT_EVALUATOR,
    program: str = INITIAL_PROGRAM,
    config: str | None = None,
    cascade: bool = True,
    threshold: float = 0.5,
) -> Path:
    """An OpenEvolve folder under root, readable by the sandbox's unprivileged user."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "initial_program.py").write_text(program)
    (root / "evaluator.py").write_text(evaluator)
    text = config if config is not None else CONFIG.format(cascade=str(cascade).lower(), threshold=threshold)
    (root / "config.yaml").write_text(text)
    for path in (root, *root.iterdir()):
        path.chmod(path.stat().st_mode | 0o755)
    return root
