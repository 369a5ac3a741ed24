"""tasks/bin_packing scored through the real sandboxes/runner.py in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from discovery.task import find_problems, load_task
from tests.runner_call import rejected, run_source

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tasks" / "bin_packing"

FIRST_FIT = """
import numpy as np
def priority(item, bins):
    return -np.arange(len(bins), dtype=float)
"""

# The heuristic FunSearch found for the OR-Library instances (Romera-Paredes et al., 2024, Fig. 4).
FUNSEARCH_OR = """
import numpy as np
def priority(item, bins):
    score = 1000 * np.ones(bins.shape)
    score -= bins * (bins - item)
    index = np.argmin(bins)
    score[index] *= item
    score[index] -= (bins[index] - item) ** 4
    return score
"""


def load_evaluator() -> ModuleType:
    """The task's evaluate.py as a module (with the sandbox harness importable, as in the sandbox)."""
    if str(ROOT / "sandboxes") not in sys.path:
        sys.path.insert(0, str(ROOT / "sandboxes"))
    spec = importlib.util.spec_from_file_location("bin_packing_evaluate", TASK / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_folder_is_valid() -> None:
    assert find_problems(TASK) == []
    task = load_task(TASK)
    assert not task.maximize
    assert task.spec.evaluation.heldout_split == "heldout"


def test_seed_best_fit_beats_first_fit_and_funsearch_beats_both(tmp_path: Path) -> None:
    scores = {}
    for name, code in [
        ("best_fit", (TASK / "program.py").read_text()),
        ("first_fit", FIRST_FIT),
        ("funsearch", FUNSEARCH_OR),
    ]:
        for split in ("train", "heldout"):
            result = run_source(TASK, code, tmp_path, split=split)
            assert result["status"] == "ok", result
            scores[name, split] = result["score"]
    for split in ("train", "heldout"):
        assert 3.0 < scores["best_fit", split] < 7.0  # FunSearch reports ~4-6% for best fit
        assert scores["funsearch", split] < scores["best_fit", split] < scores["first_fit", split]


def test_seed_result_details_and_determinism(tmp_path: Path) -> None:
    first = run_source(TASK, (TASK / "program.py").read_text(), tmp_path)
    second = run_source(TASK, (TASK / "program.py").read_text(), tmp_path)
    assert first == second
    metrics = first["metrics"]
    assert metrics["instances"] == 10
    assert metrics["bins_used"] > metrics["lower_bound"]
    assert first["score"] == pytest.approx((metrics["or_excess_pct"] + metrics["weibull_excess_pct"]) / 2)
    assert "lower is better" in first["feedback"]


def test_smoke_stage_is_small(tmp_path: Path) -> None:
    result = run_source(TASK, (TASK / "program.py").read_text(), tmp_path, stage="smoke")
    assert result["status"] == "ok", result
    assert result["metrics"]["instances"] == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "return (-(bins - item))[:-1]",
            r"priority\(\) must return \d+ numbers \(one per bin in `bins`\), got shape \(\d+,\)",
        ),
        (
            "return float(bins[0])",
            r"priority\(\) must return an array with one priority per bin \(1\), got float",
        ),
        ("return [[1.0]] * len(bins)", r"must return \d+ numbers .*got shape \(\d+, 1\)"),
        ("return ['high'] * len(bins)", r"must return \d+ numbers .*dtype <U4"),
        (
            "p = -(bins - item); p[-1] = np.nan; return p",
            r"priority\(\) returned a non-finite value nan for bin \d+",
        ),
        ("p = -(bins - item); p[0] = -np.inf; return p", r"non-finite value -inf for bin 0"),
        ("raise KeyError('no bins')", r"priority\(\) raised KeyError: 'no bins'"),
        ("return {'a': 1}", r"got dict"),
    ],
)
def test_invalid_priorities_are_rejected(tmp_path: Path, body: str, expected: str) -> None:
    code = f"import numpy as np\ndef priority(item, bins):\n    {body}\n"
    message = rejected(run_source(TASK, code, tmp_path))
    assert re.search(expected, message), message


def test_missing_priority_function_is_rejected(tmp_path: Path) -> None:
    message = rejected(run_source(TASK, "def heuristic(item, bins):\n    return bins\n", tmp_path))
    assert "the candidate defines no function priority()" in message


def test_infinite_loop_times_out(tmp_path: Path) -> None:
    # A copy of the task with a 2 s timeout, so the evaluator's budget (1 s) runs out quickly.
    task = tmp_path / "task"
    shutil.copytree(TASK, task)
    toml = task / "task.toml"
    toml.write_text(re.sub(r"timeout_s = \d+", "timeout_s = 2", toml.read_text()))
    code = "calls = 0\ndef priority(item, bins):\n    global calls\n    calls += 1\n    while calls > 100:\n        pass\n    return -(bins - item)\n"
    message = rejected(run_source(task, code, tmp_path))
    assert re.search(r"CandidateTimeout: timeout: priority\(\) did not finish within [0-9.]+ s", message), (
        message
    )


def test_packing_is_online(tmp_path: Path) -> None:
    # The candidate logs every call; item t of every instance must arrive at step t, nothing earlier.
    log = tmp_path / "calls.jsonl"
    code = f"""
    import json
    def priority(item, bins):
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps([item, bins.tolist()]) + "\\n")
        return -(bins - item)
    """
    assert run_source(TASK, code, tmp_path)["status"] == "ok"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    instances = load_evaluator().make_instances("train", 0)
    expected_items = np.stack([inst.items for inst in instances], axis=1).ravel()  # step-major order
    assert [item for item, _ in calls] == expected_items.tolist()
    for item, bins in calls:
        assert all(b >= item for b in bins)  # only bins the item fits in
        assert bins[-1] in (100.0, 150.0)  # the last entry is a fresh empty bin


def test_splits_are_disjoint_and_deterministic() -> None:
    evaluator = load_evaluator()
    train, heldout = evaluator.make_instances("train", 0), evaluator.make_instances("heldout", 0)
    assert [i.family for i in train].count("or") == 5
    assert all(i.items.size == 500 for i in train) and all(i.items.size == 2000 for i in heldout)
    train_items = {tuple(i.items[:50]) for i in train}
    assert not train_items & {tuple(i.items[:50]) for i in heldout}
    assert all(
        (a.items == b.items).all() for a, b in zip(train, evaluator.make_instances("train", 0), strict=True)
    )
    for inst in train + heldout:
        low, high = (20, 100) if inst.family == "or" else (1, 100)
        assert inst.items.min() >= low and inst.items.max() <= high
        assert (inst.items == np.round(inst.items)).all()
    with pytest.raises(ValueError, match="splits"):
        evaluator.make_instances("test", 0)


def test_check_packing_rejects_skipped_items_and_overfull_bins() -> None:
    evaluator = load_evaluator()
    from discovery_harness import CandidateError

    instance = evaluator.Instance("or", 150.0, np.array([100.0, 60.0, 50.0, 90.0]))
    assert evaluator.check_packing(instance, np.array([0, 1, 0, 1])) == 2
    with pytest.raises(CandidateError, match=r"item 2 \(size 50\) was never placed; 1 item\(s\) unplaced"):
        evaluator.check_packing(instance, np.array([0, 1, -1, 1]))
    with pytest.raises(CandidateError, match=r"bin 0 holds 160 > capacity 150; 1 bin\(s\) over capacity"):
        evaluator.check_packing(instance, np.array([0, 0, 1, 1]))
    with pytest.raises(CandidateError, match="places 3 items, but the instance has 4"):
        evaluator.check_packing(instance, np.array([0, 1, 2]))
