"""The cheat suite: real malicious candidates run through the real runner, each caught for the right reason."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

import pytest

from tests.runner_call import run_runner

pytestmark = pytest.mark.slow

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
CHEATS = ROOT / "tests" / "cheats"
RMSNORM = ROOT / "tasks" / "rmsnorm_training"

CAUGHT = [
    ("slow_reference.py", "__code__ of a harness function was reassigned"),
    ("patch_perf_counter.py", "timer patched: time.perf_counter"),
    ("patch_event_elapsed.py", "timer patched: torch.cuda.Event.elapsed_time"),
    ("cache_by_shape.py", "mismatch on timed call"),
    ("frame_reach.py", "frame access: sys._getframe reached the harness frame"),
    ("frame_walk_back.py", "mismatch"),
    ("gc_reach.py", "gc.get_objects()"),
    ("mutate_inputs.py", "input mutated"),
    ("constant_output.py", "mismatch on shape"),
    ("lower_precision.py", "relative to a float64 reference"),
    ("lazy_subclass.py", "is a Tensor subclass (Lazy)"),
    ("side_thread.py", "thread started"),
    ("thread_pool.py", "thread started by the candidate"),
    ("freed_memory.py", "mismatch"),
    ("patch_harness.py", "harness patched: discovery_harness."),
    ("forge_reply.py", "forged or out of order"),
    ("proc_mem_double_slash.py", "opened //proc/self/mem: /proc"),
    ("work_after_return.py", "more untimed wall time than the reference's"),
    ("patch_task_setattr.py", "harness patched: task.reference"),
    ("patch_task_dict.py", "harness patched: task.reference"),
]


@pytest.mark.parametrize(("cheat", "reason"), CAUGHT, ids=[c for c, _ in CAUGHT])
def test_cheat_is_caught(cheat: str, reason: str) -> None:
    result = run_runner(RMSNORM, CHEATS / cheat)
    assert result["status"] == "error", result
    assert result["kind"] == "candidate", result
    assert reason in result["error"], result["error"]


def test_seed_scores_about_one() -> None:
    result = run_runner(RMSNORM, RMSNORM / "program.py")
    assert result["status"] == "ok", result
    # A ratio sanity band, not a timed assertion: the seed is the reference itself.
    assert 0.7 < result["score"] < 1.4, result
    assert result["metrics"]["flagged"] == 0.0
    assert result["metrics"]["max_abs_err"] < 1e-2


def test_slower_candidate_scores_below_one() -> None:
    result = run_runner(RMSNORM, CHEATS / "slower.py")
    assert result["status"] == "ok", result
    assert result["score"] < 1.0, result


def test_faster_candidate_scores_above_one() -> None:
    result = run_runner(RMSNORM, CHEATS / "faster.py")
    assert result["status"] == "ok", result
    assert result["score"] > 1.0, result


def test_speedrun_data_edit_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "tiny_gpt_speedrun"
    shutil.copytree(ROOT / "tasks" / "tiny_gpt_speedrun", task)
    result = run_runner(task, CHEATS / "edit_speedrun_data.py")
    assert result["status"] == "error", result
    assert result["kind"] == "candidate", result
    assert "the task folder is read-only" in result["error"], result["error"]


def test_speedrun_edited_data_fails_the_hash_check(tmp_path: Path) -> None:
    task = tmp_path / "tiny_gpt_speedrun"
    shutil.copytree(ROOT / "tasks" / "tiny_gpt_speedrun", task)
    corpus = task / "data" / "corpus.txt"
    corpus.write_text("aaaa " * 40000)  # what a cheat with a writable mount would leave behind
    result = run_runner(task, task / "program.py")
    assert result["status"] == "error", result
    assert "sha256" in result["error"], result["error"]


def test_speedrun_reading_the_data_is_refused(tmp_path: Path) -> None:
    result = run_runner(ROOT / "tasks" / "tiny_gpt_speedrun", CHEATS / "read_speedrun_data.py")
    assert result["status"] == "error", result
    assert "reaches the candidate only through the harness" in result["error"], result["error"]


def test_speedrun_future_peeking_model_is_caught() -> None:
    result = run_runner(ROOT / "tasks" / "tiny_gpt_speedrun", CHEATS / "peek_future_tokens.py")
    assert result["status"] == "error", result
    assert "causal" in result["error"], result["error"]


DATA_BYPASSES = [
    ("read_data_double_slash.py", "the task's data reaches the candidate only through the harness"),
    ("read_data_proc_root.py", "/proc (process memory, other roots, fds) is off limits"),
    ("read_data_subprocess.py", "starting a process (subprocess)"),
    ("read_data_dir_fd.py", "a folder holding the task's data may not be opened as an fd"),
]


@pytest.mark.parametrize(("cheat", "reason"), DATA_BYPASSES, ids=[c for c, _ in DATA_BYPASSES])
def test_speedrun_data_bypass_is_refused(cheat: str, reason: str) -> None:
    result = run_runner(ROOT / "tasks" / "tiny_gpt_speedrun", CHEATS / cheat)
    assert result["status"] == "error", result
    assert result["kind"] == "candidate", result
    assert reason in result["error"], result["error"]


def _landlock_works(folder: Path) -> str:
    """Why Landlock cannot deny reads here ("" when it can), probed on a throwaway thread."""
    sys.path.insert(0, str(ROOT / "sandboxes"))
    try:
        from discovery_harness.guard import deny_reads
    finally:
        sys.path.remove(str(ROOT / "sandboxes"))
    box: list[str] = []
    probe = threading.Thread(target=lambda: box.append(deny_reads((str(folder),))))
    probe.start()
    probe.join()
    return box[0]


def test_speedrun_native_read_is_denied_by_the_kernel(tmp_path: Path) -> None:
    why = _landlock_works(tmp_path)
    if why:
        pytest.skip(why)
    result = run_runner(ROOT / "tasks" / "tiny_gpt_speedrun", CHEATS / "read_data_from_file.py")
    assert result["status"] == "error", result
    assert "from_file outcome" in result["error"], result["error"]
    assert "LEAKED" not in result["error"], result["error"]
    assert "Permission denied" in result["error"], result["error"]


def test_forging_through_the_runner_module_fails() -> None:
    # The runner binds its result writer before any task code runs, and exits right after writing.
    result = run_runner(RMSNORM, CHEATS / "patch_runner.py")
    assert result["status"] == "error", result
    assert result.get("score") != 3.5, result
