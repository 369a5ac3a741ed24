"""The kernel and training tasks: seeds run through the real runner; harness pieces checked directly."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandboxes"))

from discovery_harness.errors import CandidateError  # noqa: E402
from discovery_harness.timing import TimingResult, UnreportedTime, check_overheads, check_wall, median  # noqa: E402
from discovery_harness.torch_check import check_plain_tensor, compare, tolerance  # noqa: E402

from discovery.task import load_task  # noqa: E402
from tests.harness.test_harness_compile import small_task  # noqa: E402
from tests.runner_call import run_runner  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"

TASKS = ["rmsnorm_training", "linear_gelu_residual", "tiny_gpt_speedrun", "optimizer_discovery"]


@pytest.mark.parametrize("name", TASKS)
def test_task_folder_is_valid(name: str) -> None:
    task = load_task(ROOT / "tasks" / name)
    assert task.spec.resources.gpus == 0  # CPU sizes run everywhere; GPU sizes when one is present


def test_linear_gelu_residual_seed_scores_about_one() -> None:
    result = run_runner(
        ROOT / "tasks" / "linear_gelu_residual", ROOT / "tasks" / "linear_gelu_residual" / "program.py"
    )
    assert result["status"] == "ok", result
    assert 0.7 < result["score"] < 1.4, result
    assert result["metrics"]["flagged"] == 0.0


def test_speedrun_seed_learns_and_is_deterministic() -> None:
    task = ROOT / "tasks" / "tiny_gpt_speedrun"
    first = run_runner(task, task / "program.py")
    assert first["status"] == "ok", first
    assert first["score"] < 3.0, first  # uniform guessing is ln(256) = 5.55 nats/byte
    assert "val_loss_seed2" in first["metrics"]  # three seeds
    again = run_runner(task, task / "program.py")
    assert abs(again["score"] - first["score"]) < 0.01


def test_optimizer_seed_ties_adamw_and_divergence_scores_worst() -> None:
    task = ROOT / "tasks" / "optimizer_discovery"
    seed = run_runner(task, task / "program.py")
    assert seed["status"] == "ok", seed
    assert abs(seed["score"] - 1.0) < 0.05, seed
    bad = run_runner(task, CHEATS / "diverging_optimizer.py")
    assert bad["status"] == "ok", bad
    assert bad["score"] == 10.0


def test_compare_catches_bf16_computation_at_fp32_tolerance() -> None:
    gen = torch.Generator().manual_seed(1)
    want = torch.randn(37, 129, generator=gen, dtype=torch.float64)
    exact = want.float()
    assert compare(exact, want, tolerance(torch.float32), "y", "test") < 1e-6
    with pytest.raises(CandidateError, match="mismatch"):
        compare(want.bfloat16().float(), want, tolerance(torch.float32), "y", "test")
    compare(want.bfloat16(), want, tolerance(torch.bfloat16), "y", "test")  # fine at bf16 tolerance
    with pytest.raises(CandidateError, match="non-finite"):
        compare(torch.full_like(exact, float("nan")), want, 1e-4, "y", "test")


def test_plain_tensor_check() -> None:
    class Sub(torch.Tensor):
        pass

    check_plain_tensor(torch.zeros(3), "y")
    with pytest.raises(CandidateError, match="Tensor subclass"):
        check_plain_tensor(torch.zeros(3).as_subclass(Sub), "y")
    tagged = torch.zeros(3)
    tagged.note = "x"
    with pytest.raises(CandidateError, match="Python attributes"):
        check_plain_tensor(tagged, "y")
    with pytest.raises(CandidateError, match="is a list"):
        check_plain_tensor([1.0], "y")


def test_timing_result_and_wall_check() -> None:
    result = TimingResult((10, 10, 10), (5, 5, 5), plausible_speedup=1.5)
    assert result.speedup == 2.0 and result.flagged
    assert median([3, 1, 2, 10]) == 2.5
    check_wall([5, 5], [6, 6], 20)
    with pytest.raises(CandidateError, match="timer disagreement"):
        check_wall([5_000_000, 5], [1_000_000, 6], 20_000_000)


def bursty_trials(rng: random.Random, delayed: float, hidden_ns: int = 0) -> list[tuple[int, int]]:
    """200 trials of one side, (timed, wall) ns: 3 ms calls, 0.3 ms overhead, and with probability
    `delayed` a 1-5 ms scheduling delay on top, as on a loaded machine; plus any hidden work."""
    trials = []
    for _ in range(200):
        timed = int(rng.gauss(3e6, 0.1e6))
        delay = int(rng.uniform(1e6, 5e6)) if rng.random() < delayed else 0
        trials.append((timed, timed + 300_000 + delay + hidden_ns))
    return trials


def overhead_trips(delayed: float, hidden_ns: int) -> int:
    """Of 200 simulated evaluations (seeded), how many the untimed-overhead check fails."""
    trips = 0
    for seed in range(200):
        rng = random.Random(seed)
        ref, cand = bursty_trials(rng, delayed), bursty_trials(rng, delayed, hidden_ns)
        try:
            check_overheads(ref, cand)
        except UnreportedTime:
            trips += 1
    return trips


@pytest.mark.parametrize("delayed", [0.0, 0.3, 0.45, 0.5, 0.55, 0.7])
def test_overhead_check_ignores_load_and_catches_hidden_work(delayed: float) -> None:
    # Comparing the two sides' medians tripped on up to 44 of 200 honest evaluations here (at 0.5,
    # each median lands in either mode); the paired differences with a noise-derived allowance never do.
    assert overhead_trips(delayed, 0) == 0
    assert overhead_trips(delayed, 3_000_000) == 200  # 3 ms hidden per call: as long as the call itself


FIRST_ROUND_ONLY = """
import time
import torch

calls = [0]


class Later:
    def __del__(self):
        start = time.perf_counter()
        while time.perf_counter() - start < 0.02:
            pass


def rmsnorm(x, weight, eps):
    calls[0] += 1
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    if 2 <= calls[0] <= 42:  # the timed calls of the first round (1 check, 1 warm-up, 40 trials)
        y.grad_fn.metadata["later"] = Later()
    return y
"""


def test_a_tripped_overhead_check_is_measured_again_before_it_fails(tmp_path: Path) -> None:
    # Untimed work in the first round only (as a burst of load locked to the trial rhythm would
    # add): the check trips once, the timing is repeated with the order flipped, and it scores.
    task = small_task(tmp_path, "rmsnorm_training", "(Case((37, 129)),)", "Case((64, 257))", trials=40)
    candidate = tmp_path / "first_round.py"
    candidate.write_text(textwrap.dedent(FIRST_ROUND_ONLY))
    result = run_runner(task, candidate)
    assert result["status"] == "ok", result


@pytest.mark.gpu
def test_gpu_sizes_run_on_gpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: GPU sizes (CUDA events, L2 flush, bf16) are not exercised")
    result = run_runner(
        ROOT / "tasks" / "rmsnorm_training", ROOT / "tasks" / "rmsnorm_training" / "program.py"
    )
    assert result["status"] == "ok", result
    assert result["metrics"]["on_gpu"] == 1.0
    assert 0.7 < result["score"] < 1.4


@pytest.mark.gpu
def test_bias_folded_into_linear_passes_on_gpu(tmp_path: Path) -> None:
    # On an H100 with torch's default reduced-precision bf16 reductions, addmm at K=267 was 10-30x
    # less accurate than the reference's mm + add, so this correct rewrite was refused at scale 1e2.
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: cuBLAS reductions are not exercised")
    candidate = tmp_path / "folded.py"
    candidate.write_text(
        "import torch.nn.functional as F\n\n"
        "def linear_gelu_residual(x, weight, bias, residual):\n"
        "    return F.gelu(F.linear(x, weight, bias)) + residual\n"
    )
    result = run_runner(ROOT / "tasks" / "linear_gelu_residual", candidate)
    assert result["status"] == "ok", result
    assert result["metrics"]["on_gpu"] == 1.0
