"""OpenEvolve folders evaluated end to end in real sandboxes (process and bubblewrap), as a run does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from discovery import evaluation
from discovery.sandbox.base import Sandbox, SandboxUnavailable
from discovery.sandbox.process import ProcessSandbox
from discovery.task import load_task
from tests.openevolve_folders import CASCADE_EVALUATOR, DICT_EVALUATOR, RESULT_EVALUATOR, write_folder
from tests.sandbox_fixtures import skip_backend

BETTER = "# EVOLVE-BLOCK-START\ndef guess():\n    return 1.5\n# EVOLVE-BLOCK-END\n\n\ndef run_search():\n    return guess()\n"


@pytest.fixture(params=["process", "bwrap"])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each backend that runs here, or a skip saying why not."""
    if request.param == "process":
        return ProcessSandbox()
    from discovery.sandbox.bwrap import BwrapSandbox

    try:
        return BwrapSandbox()
    except SandboxUnavailable as exc:
        skip_backend(exc)


def score(sandbox: Sandbox, folder: Path, code: str | None = None, stage: str | None = None):
    """The outcome of one evaluation of the seed (or code) in the sandbox."""
    task = load_task(folder)
    code = code if code is not None else task.seed_code
    if stage is None:
        return asyncio.run(evaluation.evaluate(sandbox, task, code))
    return asyncio.run(evaluation.evaluate_once(sandbox, task, code, "train", 0, stage=stage))


def test_dict_evaluator(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "dict", evaluator=DICT_EVALUATOR, cascade=False)
    seed, better = score(sandbox, folder), score(sandbox, folder, BETTER)
    assert seed.status == "ok" and seed.score == pytest.approx(0.2)
    assert better.score == pytest.approx(0.8)  # 1 / (1 + 0.25)


def test_evaluation_result_imports_without_openevolve(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "result", evaluator=RESULT_EVALUATOR)
    outcome = score(sandbox, folder)
    assert outcome.status == "ok", outcome.failure
    assert outcome.score == pytest.approx(0.6)
    assert "x was 3.0" in outcome.feedback


def test_cascade_and_quick_stage(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "cascade", evaluator=CASCADE_EVALUATOR, threshold=0.3)
    full = score(sandbox, folder)
    assert full.status == "ok" and full.score == pytest.approx(2.0)
    quick = score(sandbox, folder, stage="stage1")
    assert quick.status == "ok" and quick.score == pytest.approx(1 / 3)


def test_candidate_that_breaks_is_a_failure_or_zero(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "broken", evaluator=DICT_EVALUATOR, cascade=False)
    broken = BETTER.replace("return 1.5", "return undefined_name")
    outcome = score(sandbox, folder, broken)
    assert outcome.status == "failed" and "NameError" in outcome.failure
