"""`discovery tasks validate` and `discovery run` on an OpenEvolve folder as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_user_error, cli
from tests.fake_llm import FakeLLMServer
from tests.openevolve_folders import CASCADE_EVALUATOR, INITIAL_PROGRAM, RESULT_EVALUATOR, write_folder


def program(x: float) -> str:
    """A reply holding the whole program with guess() returning x."""
    return "```python\n" + INITIAL_PROGRAM.replace("return 3.0", f"return {x}") + "```"


def test_validate_says_what_it_understood(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "oe_task", evaluator=CASCADE_EVALUATOR, threshold=0.3)
    proc = cli("tasks", "validate", str(folder), archive=tmp_path / "archive")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert "format: OpenEvolve" in out
    assert "metric: combined_score (maximised)" in out
    assert (
        "stages: cascade stage1 -> stage2 (thresholds 0.3); quick stage for --cascade: evaluate_stage1" in out
    )
    assert "brief: You tune one number" in out and "timeout: 20 s" in out


def test_tasks_list_shows_openevolve_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "tasks" / "oe_listed")
    proc = cli("tasks", "list", str(tmp_path / "tasks"), archive=tmp_path / "archive")
    assert proc.returncode == 0 and "oe_listed" in proc.stdout and "You tune one number" in proc.stdout


def test_validate_and_run_refuse_a_bad_folder_in_one_line(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "oe_bad")
    (folder / "evaluator.py").write_text("def score(program_path):\n    return {}\n")
    proc = cli("tasks", "validate", str(folder), archive=tmp_path / "archive")
    assert proc.returncode == 1 and "defines no top-level function evaluate(program_path)" in proc.stdout
    assert_user_error(
        cli("run", str(folder), "--sandbox", "process", archive=tmp_path / "archive"),
        "evaluate(program_path)",
    )


@pytest.mark.slow
def test_run_improves_on_an_openevolve_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "oe_run", evaluator=RESULT_EVALUATOR)
    archive = tmp_path / "archive"
    with FakeLLMServer([program(2.0), program(1.25)], default=program(5.0)) as server:
        cli(
            "run",
            str(folder),
            "--model",
            "openai/fake",
            "--api-base",
            server.api_base,
            "--budget",
            "3",
            "--sandbox",
            "process",
            "--name",
            "oe",
            "--llm-concurrency",
            "1",
            "--eval-slots",
            "1",
            archive=archive,
            check=True,
        )
        prompt = server.requests[0]["messages"]
    report = json.loads(cli("archive", "show", "oe", "--json", archive=archive, check=True).stdout)
    # Mean of closeness 1 / (1 + 0.25^2) and validity 1.
    assert report["top"][0]["score"] == pytest.approx((1 / 1.0625 + 1) / 2)
    text = json.dumps(prompt)
    assert "You tune one number" in text and "x was 3.0" in text  # brief and artifacts reach the model
