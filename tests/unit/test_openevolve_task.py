"""OpenEvolve folders read as they are: what the adapter understands, its errors, and the runner's scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.errors import UserError
from discovery.task import find_problems, load_task
from tests.openevolve_folders import (
    CASCADE_EVALUATOR,
    DICT_EVALUATOR,
    INITIAL_PROGRAM,
    RESULT_EVALUATOR,
    write_folder,
)
from tests.runner_call import run_runner


def options(folder: Path) -> dict:
    """The --openevolve options the host sends for this folder."""
    scoring = load_task(folder).spec.openevolve
    return {"cascade": scoring.cascade, "thresholds": scoring.thresholds, "features": scoring.features}


def test_a_folder_loads_as_the_same_task(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "minimise-one", evaluator=CASCADE_EVALUATOR, threshold=0.3)
    task = load_task(folder)
    assert find_problems(folder) == []
    assert task.name == "minimise-one"
    assert task.spec.candidate == "initial_program.py"
    assert task.seed_code == INITIAL_PROGRAM
    assert task.spec.brief == "You tune one number. Return the value closest to one."
    assert task.maximize
    assert task.spec.resources.timeout_s == 20
    assert task.spec.evaluation.cascade_stage == "stage1"
    assert task.spec.openevolve.cascade and task.spec.openevolve.thresholds == [0.3]
    assert task.spec.openevolve.stage_summary == "cascade stage1 -> stage2 (thresholds 0.3)"
    assert task.spec.openevolve.metric_summary == "combined_score (maximised)"


def test_defaults_without_config_follow_openevolve(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "bare", evaluator=RESULT_EVALUATOR)
    (folder / "config.yaml").unlink()
    spec = load_task(folder).spec
    assert spec.resources.timeout_s == 300  # OpenEvolve's evaluator.timeout
    assert spec.openevolve.features == ["complexity", "diversity"]
    assert spec.openevolve.thresholds == [0.5, 0.75, 0.9]
    assert not spec.openevolve.cascade  # no evaluate_stage1
    assert spec.openevolve.metric_summary.startswith("mean of the numeric metrics")
    assert "EVOLVE-BLOCK" in spec.brief


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: (f / "evaluator.py").write_text("def score(path):\n    return {}\n"),
            "evaluate(program_path)",
        ),
        (lambda f: (f / "evaluator.py").write_text("def evaluate():\n    return {}\n"), "program's path"),
        (lambda f: (f / "evaluator.py").unlink(), "evaluator.py: missing"),
        (lambda f: (f / "initial_program.py").write_text("x = 1\n"), "EVOLVE-BLOCK-START"),
        (lambda f: (f / "config.yaml").write_text("prompt: [unclosed\n"), "not valid YAML"),
        (lambda f: (f / "config.yaml").write_text("- a list\n"), "must be a YAML mapping"),
        (
            lambda f: (f / "config.yaml").write_text("evaluator:\n  cascade_thresholds: high\n"),
            "evaluator.cascade_thresholds: must be a list of numbers",
        ),
    ],
)
def test_a_bad_folder_names_the_problem(tmp_path: Path, change, expected: str) -> None:
    folder = write_folder(tmp_path / "bad")
    change(folder)
    problems = find_problems(folder)
    assert len(problems) == 1 and expected in problems[0], problems
    with pytest.raises(UserError, match="invalid task"):
        load_task(folder)


def test_a_folder_with_neither_layout_mentions_both(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    problems = find_problems(tmp_path / "empty")
    assert any("task.toml: missing" in p and "initial_program.py" in p for p in problems), problems


def test_runner_scores_a_dict_by_combined_score(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dict", evaluator=DICT_EVALUATOR, cascade=False)
    payload = run_runner(folder, folder / "initial_program.py", openevolve=options(folder))
    assert payload["status"] == "ok"
    assert payload["score"] == pytest.approx(0.2)  # 1 / (1 + (3 - 1)^2)
    assert payload["metrics"]["x"] == 3.0


def test_runner_scores_an_evaluation_result_by_the_mean_and_feeds_back_artifacts(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "result", evaluator=RESULT_EVALUATOR)
    payload = run_runner(folder, folder / "initial_program.py", openevolve=options(folder))
    assert payload["status"] == "ok", payload
    assert payload["score"] == pytest.approx((0.2 + 1.0) / 2)  # closeness and validity; text left out
    assert "x was 3.0" in payload["feedback"] and "bytes too" in payload["feedback"]


def test_runner_runs_the_cascade_and_stops_below_a_threshold(tmp_path: Path) -> None:
    # Stage 1 gives 1 / (1 + |3 - 1|) = 1/3: above 0.3 stage 2 runs, above 0.5 it does not.
    low = write_folder(tmp_path / "low", evaluator=CASCADE_EVALUATOR, threshold=0.3)
    payload = run_runner(low, low / "initial_program.py", openevolve=options(low))
    assert payload["score"] == pytest.approx(2.0) and payload["metrics"]["stage2_ran"] == 1.0
    high = write_folder(tmp_path / "high", evaluator=CASCADE_EVALUATOR, threshold=0.5)
    payload = run_runner(high, high / "initial_program.py", openevolve=options(high))
    assert payload["score"] == pytest.approx(1 / 3) and "stage2_ran" not in payload["metrics"]
    quick = run_runner(high, high / "initial_program.py", stage="stage1", openevolve=options(high))
    assert quick["score"] == pytest.approx(1 / 3)


def test_runner_reports_a_broken_evaluator_and_a_missing_score(tmp_path: Path) -> None:
    raises = write_folder(
        tmp_path / "raises", evaluator="def evaluate(program_path):\n    raise OSError('no data')\n"
    )
    payload = run_runner(raises, raises / "initial_program.py", openevolve=options(raises))
    assert payload["status"] == "error" and "OSError: no data" in payload["error"]
    empty = write_folder(
        tmp_path / "empty", evaluator="def evaluate(program_path):\n    return {'why': 'text'}\n"
    )
    payload = run_runner(empty, empty / "initial_program.py", openevolve=options(empty))
    assert payload["status"] == "error" and "no numeric metric" in payload["error"]
    wrong = write_folder(tmp_path / "wrong", evaluator="def evaluate(program_path):\n    return 0.5\n")
    payload = run_runner(wrong, wrong / "initial_program.py", openevolve=options(wrong))
    assert payload["status"] == "error" and "EvaluationResult" in payload["error"]
