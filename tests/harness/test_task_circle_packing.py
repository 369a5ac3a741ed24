"""tasks/circle_packing scored through the real sandboxes/runner.py in a subprocess."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from discovery.task import find_problems, load_task
from tests.runner_call import rejected, run_source

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tasks" / "circle_packing"
SEED_SCORE = 20 * 0.1 + 5 * 0.1 + (2**0.5 - 1) * 0.1  # 25 circles of radius 0.1 plus one in a gap

# A 5x5 grid plus one gap circle, as arrays; the invalid candidates below start from it.
GRID = """
import numpy as np
def grid():
    g = (np.arange(5) + 0.5) / 5
    centers = np.array([(x, y) for x in g for y in g] + [(0.2, 0.2)])
    radii = np.array([0.1] * 25 + [(2 ** 0.5 - 1) * 0.1])
    return centers, radii
"""

# Penalty-method gradient ascent from a jittered grid, then a repair that shrinks overlaps: ~0.5 s.
IMPROVED = """
import numpy as np

def run_packing():
    rng = np.random.default_rng(1)
    g = (np.arange(5) + 0.5) / 5
    c = np.array([(x, y) for x in g for y in g] + [(0.2, 0.2)]) + rng.normal(0, 0.01, (26, 2))
    r = np.full(26, 0.09)
    for step in range(3000):
        mu = 10 * 1.0015 ** step
        lr = min(2e-3, 0.2 / mu)
        d = c[:, None, :] - c[None, :, :]
        dist = np.sqrt((d ** 2).sum(-1)) + np.eye(26)
        ov = np.maximum(r[:, None] + r[None, :] - dist, 0)
        np.fill_diagonal(ov, 0)
        lo = np.maximum(r[:, None] - c, 0)
        hi = np.maximum(c + r[:, None] - 1, 0)
        gr = 1 - mu * 2 * (ov.sum(1) + lo.sum(1) + hi.sum(1))
        gc = mu * 2 * ((ov[:, :, None] * d / dist[:, :, None]).sum(1) + lo - hi)
        r = np.maximum(r + lr * gr, 0)
        c = np.clip(c + lr * gc, 0, 1)
    r = np.minimum(r, np.minimum(c, 1 - c).min(1))
    for _ in range(2000):
        dist = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(26) * 9
        ov = r[:, None] + r[None, :] - dist
        if ov.max() <= 0:
            break
        r = r - np.maximum(ov, 0).max(1) / 2 - 1e-12
    return c, np.maximum(r, 0)
"""


def test_task_folder_is_valid() -> None:
    assert find_problems(TASK) == []
    task = load_task(TASK)
    assert task.maximize
    assert task.spec.evaluation.heldout_split is None
    assert task.spec.objective.tolerance == 1e-9


def test_seed_scores_the_grid_plus_one(tmp_path: Path) -> None:
    result = run_source(TASK, (TASK / "program.py").read_text(), tmp_path)
    assert result["status"] == "ok", result
    assert result["score"] == pytest.approx(SEED_SCORE, abs=1e-12)
    assert result["metrics"]["min_radius"] == pytest.approx((2**0.5 - 1) * 0.1)
    assert "sum of radii = 2.541421" in result["feedback"]
    assert "contacts" in result["feedback"]


def test_improved_candidate_scores_better(tmp_path: Path) -> None:
    result = run_source(TASK, IMPROVED, tmp_path)
    assert result["status"] == "ok", result
    assert result["score"] > SEED_SCORE + 0.02


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("c, r = grid(); r[25] = 0.06; return c, r", r"circles \d+ and 25 overlap by 0\.0186"),
        (
            "c, r = grid(); c[0] = (0.05, 0.1); return c, r",
            r"circle 0 \(center \(0\.05, 0\.1\).*past the wall x = 0 by 0\.05",
        ),
        ("c, r = grid(); c[24, 1] = 0.95; return c, r", r"circle 24 .*past the wall y = 1 by 0\.05"),
        ("c, r = grid(); r[3] = float('nan'); return c, r", r"circle 3 is not finite"),
        ("c, r = grid(); c[7, 0] = float('inf'); return c, r", r"circle 7 is not finite"),
        ("c, r = grid(); r[4] = -0.01; return c, r", r"circle 4 has a negative radius -0\.01"),
        ("c, r = grid(); return c[:25], r[:25]", r"centers must have shape \(26, 2\), got shape \(25, 2\)"),
        ("c, r = grid(); return c, r.reshape(26, 1)", r"radii must have shape \(26,\), got shape \(26, 1\)"),
        ("c, r = grid(); return c.tolist(), ['0.1'] * 26", r"radii must hold real numbers"),
        ("c, r = grid(); return [[0.5, 0.5], [0.1]], r", r"centers must .*(ragged|shape)"),
        ("return 2.6", r"must return \(centers, radii\).*got float"),
        (
            "c, r = grid(); return c, r, 3.0",
            r"reported sum_radii = 3, but the returned radii sum to 2\.54142",
        ),
        ("raise RuntimeError('solver diverged')", r"run_packing\(\) raised RuntimeError: solver diverged"),
    ],
)
def test_invalid_packings_are_rejected(tmp_path: Path, body: str, expected: str) -> None:
    code = GRID + f"\ndef run_packing():\n    {body}\n"
    message = rejected(run_source(TASK, code, tmp_path))
    assert re.search(expected, message), message


def test_tolerance_is_1e_9(tmp_path: Path) -> None:
    # The gap circle touches four grid circles; grow it by slightly less / more than the tolerance.
    ok = run_source(
        TASK, GRID + "\ndef run_packing():\n    c, r = grid(); r[25] += 5e-10; return c, r\n", tmp_path
    )
    assert ok["status"] == "ok", ok
    bad = run_source(
        TASK, GRID + "\ndef run_packing():\n    c, r = grid(); r[25] += 3e-9; return c, r\n", tmp_path
    )
    assert re.search(r"circles \d+ and 25 overlap by 3e-09", rejected(bad))


def test_correct_reported_sum_is_accepted(tmp_path: Path) -> None:
    code = GRID + "\ndef run_packing():\n    c, r = grid(); return c, r, float(r.sum())\n"
    assert run_source(TASK, code, tmp_path)["score"] == pytest.approx(SEED_SCORE, abs=1e-12)


def test_infinite_loop_times_out(tmp_path: Path) -> None:
    # A copy of the task with a 2 s timeout, so the evaluator's budget (1 s) runs out quickly.
    task = tmp_path / "task"
    shutil.copytree(TASK, task)
    toml = task / "task.toml"
    toml.write_text(re.sub(r"timeout_s = \d+", "timeout_s = 2", toml.read_text()))
    message = rejected(run_source(task, "def run_packing():\n    while True:\n        pass\n", tmp_path))
    assert re.search(r"CandidateTimeout: timeout: run_packing\(\) did not finish within 0\.\d+ s", message), (
        message
    )


def test_only_the_train_split_exists(tmp_path: Path) -> None:
    result = run_source(TASK, (TASK / "program.py").read_text(), tmp_path, split="heldout")
    assert result["status"] == "error" and result["kind"] == "evaluator"
    assert "only the 'train' split" in result["error"]
