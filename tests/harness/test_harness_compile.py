"""torch.compile and Triton under the Guard, the allowance's limits, and tolerances derived from the reference.

Kernel candidates run through the real runner on small copies of the kernel tasks (few checks and
trials, so each run takes seconds); the allowance's refusals are probed directly on an armed Guard
in a child interpreter (an audit hook cannot be removed from the process that installs it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.runner_call import run_runner

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SANDBOXES = ROOT / "sandboxes"
TASKS = ROOT / "tasks"
CHEATS = ROOT / "tests" / "cheats"
sys.path.insert(0, str(SANDBOXES))

from discovery_harness.torch_check import (  # noqa: E402
    REFERENCE_ERROR_FACTOR,
    check_plain_tensor,
    check_reference,
    compare,
    derived_tolerance,
    relative_error,
    tolerance,
)

HAS_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
HAS_TRITON = importlib.util.find_spec("triton") is not None

CANDIDATES = Path(__file__).resolve().parents[1] / "cheats"  # shared with bench/gpu_check.py


def small_task(
    tmp_path: Path, base: str, checks: str, timing: str, dtype: str = "float32", trials: int = 40
) -> Path:
    """A copy of a kernel task with few checks and trials (its reference and inputs, imported from the real one)."""
    task = tmp_path / f"small_{base}"
    task.mkdir()
    (task / "evaluate.py").write_text(
        textwrap.dedent(
            f"""
            import dataclasses
            import importlib.util

            import torch
            from discovery_harness.kernel_eval import Case, Sizes, evaluate_kernel

            _spec = importlib.util.spec_from_file_location("base_task", {str(TASKS / base / "evaluate.py")!r})
            _base = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(_base)
            TASK = dataclasses.replace(
                _base.TASK,
                cpu=Sizes(checks={checks}, timing={timing}, dtype=torch.{dtype}, trials={trials}, warmup=1,
                          random_checks=0),
            )


            def evaluate(candidate_path, split="train", seed=0):
                return evaluate_kernel(candidate_path, TASK, __file__, split=split)
            """
        )
    )
    return task


def scored_or_timing_noise(result: dict) -> bool:
    """True when the run scored; False when only the untimed-overhead check tripped (else it fails).

    That check (timing.check_overheads) runs after every correctness and Guard check has passed. On
    a loaded 2-core machine it can trip for a candidate whose calls leave the CPU busy after they
    return (OpenMP threads spinning after inductor's C++ kernels) or take far longer than the
    reference's (Triton's interpreter): the main thread then wakes late. Neither is what these tests
    are about.
    """
    if result["status"] == "ok":
        return True
    assert "timer disagreement" in result.get("error", ""), result
    return False


# --- torch.compile and Triton through the runner -------------------------------------------------


@pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler: inductor's CPU backend needs g++ or c++")
def test_torch_compile_candidate_scores_under_the_guard(tmp_path: Path) -> None:
    task = small_task(
        tmp_path, "rmsnorm_training", "(Case((37, 129)), Case((64, 72), 1e-3))", "Case((64, 257))"
    )
    result = run_runner(task, CANDIDATES / "compiled_rmsnorm.py", timeout=600)
    if scored_or_timing_noise(result):
        assert result["score"] > 0 and result["metrics"]["flagged"] == 0.0


@pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler: inductor's CPU backend needs g++ or c++")
def test_compile_candidate_starting_its_own_process_is_refused(tmp_path: Path) -> None:
    task = small_task(tmp_path, "rmsnorm_training", "(Case((37, 129)),)", "Case((64, 257))")
    result = run_runner(task, CANDIDATES / "compile_then_subprocess.py", timeout=600)
    assert result["status"] == "error" and result["kind"] == "candidate", result
    assert "starting a process (subprocess)" in result["error"], result["error"]
    assert "only torch's and Triton's compilers may" in result["error"], result["error"]


@pytest.mark.skipif(
    not HAS_TRITON, reason="triton is not installed (pip install triton: its interpreter runs on CPU)"
)
def test_triton_candidate_scores_under_the_guard_in_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # Triton's interpreter: numpy on the CPU, no compiler
    task = small_task(
        tmp_path, "rmsnorm_training", "(Case((37, 129)), Case((8, 72), 1e-3))", "Case((2, 129))", trials=16
    )  # few rows: the interpreter takes ~7 ms a row, and a long call on a loaded machine wakes the main thread late
    result = run_runner(task, CANDIDATES / "triton_rmsnorm.py", timeout=600)
    if scored_or_timing_noise(result):
        assert result["score"] > 0


# --- what the allowance refuses, on an armed Guard -------------------------------------------------

DRIVER = r"""
import importlib.util, json, os, shutil, subprocess, sys, threading, ctypes
sys.path.insert(0, SANDBOXES)
import torch
import torch._inductor.cpp_builder as cpp_builder
from discovery_harness.guard import Guard

results = {}

def attempt(name, fn):
    # The Guard's record, not the exception: torch may wrap the PermissionError in its own.
    before = len(guard.violations())
    try:
        fn()
    except Exception:
        pass
    new = guard.violations()[before:]
    results[name] = new[0] if new else "allowed"

def forged(source):
    # Code compiled under torch's own file name: its frame passes for torch's.
    exec(compile(source, cpp_builder.__file__, "exec"), {})

def run():
    attempt("own_subprocess", lambda: subprocess.run(["true"]))
    attempt("own_os_system", lambda: os.system("true"))
    attempt("own_ctypes", lambda: ctypes.CDLL(None))
    attempt("torch_helper_shell", lambda: cpp_builder.run_compile_cmd("sh -c true", TMP))
    attempt("torch_helper_wrapper", lambda: cpp_builder.run_compile_cmd("g++ -wrapper /bin/true --version", TMP))
    attempt("torch_helper_ldconfig", lambda: cpp_builder.run_compile_cmd("ldconfig -X", TMP))
    attempt("forged_shell", lambda: forged("import subprocess; subprocess.run(['sh', '-c', 'true'])"))
    attempt("forged_python", lambda: forged("import subprocess, sys; subprocess.run([sys.executable, '-c', '1'])"))
    attempt("forged_env", lambda: forged(
        "import os, subprocess; subprocess.run(['g++', '--version'], capture_output=True,"
        " env={**os.environ, 'COMPILER_PATH': '/tmp'})"))
    attempt("forged_compiler", lambda: forged(
        "import subprocess; subprocess.run(['g++', '--version'], capture_output=True)"))
    attempt("set_path", lambda: os.environ.__setitem__("PATH", "/tmp:" + os.environ["PATH"]))
    attempt("set_cc", lambda: os.environ.__setitem__("CC", "/bin/sh"))
    attempt("set_harmless", lambda: os.environ.__setitem__("TRITON_PRINT_AUTOTUNING", "0"))
    attempt("load_library", lambda: torch.ops.load_library(os.path.join(TMP, "evil.so")))
    def native_import():
        spec = importlib.util.spec_from_file_location("_bisect", EXTENSION)
        spec.loader.create_module(spec)
    attempt("native_import", native_import)
    attempt("proc_cpuinfo", lambda: open("/proc/cpuinfo").read(1))
    attempt("proc_environ", lambda: open("/proc/self/environ").read(1))

guard = Guard([], TASK_DIR)
guard.arm()
worker = threading.Thread(target=run)
worker.start()
worker.join()
guard.disarm()
print("@@" + json.dumps(results))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("allowance")
    (tmp / "task").mkdir()
    import _bisect

    extension = shutil.copy(_bisect.__file__, tmp / Path(_bisect.__file__).name)
    prelude = (
        f"SANDBOXES = {str(SANDBOXES)!r}\nTASK_DIR = {str(tmp / 'task')!r}\nTMP = {str(tmp)!r}\n"
        f"EXTENSION = {str(extension)!r}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + DRIVER], capture_output=True, text=True, timeout=300, cwd=tmp
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[-1][2:])


@pytest.mark.parametrize(
    ("attempt", "reason"),
    [
        ("own_subprocess", "only torch's and Triton's compilers may"),
        ("own_os_system", "starting a process (os.system)"),
        ("own_ctypes", "ctypes.dlopen: native code is off limits (called from"),
        ("torch_helper_shell", "is not a compiler torch or Triton uses"),
        ("torch_helper_wrapper", "compiler argument '-wrapper' is refused"),
        ("torch_helper_ldconfig", "ldconfig may only list the cache"),
        ("forged_shell", "is not a compiler torch or Triton uses"),
        ("forged_python", "Python may only run inductor's library probe"),
        ("forged_env", "COMPILER_PATH differs from the evaluator's"),
        ("set_path", "setting the environment variable PATH is off limits"),
        ("set_cc", "setting the environment variable CC is off limits"),
        ("load_library", "lies outside the installation"),
        ("native_import", "importing native code is off limits"),
        ("proc_environ", "/proc (process memory, other roots, fds) is off limits"),
    ],
)
def test_allowance_refuses(refusals: dict[str, str], attempt: str, reason: str) -> None:
    assert reason in refusals[attempt], refusals[attempt]


def test_allowance_lets_harmless_things_through(refusals: dict[str, str]) -> None:
    assert refusals["proc_cpuinfo"] == "allowed"
    assert refusals["set_harmless"] == "allowed"
    # Documented residual (toolchain.py): a frame forged under torch's file name passes the caller
    # check; what it may start is still bounded to a compiler with checked arguments and environment.
    if HAS_CXX:
        assert refusals["forged_compiler"] == "allowed"


# --- tolerances derived from the reference's own error ---------------------------------------------


def test_derived_tolerance_is_floored_and_scaled() -> None:
    assert derived_tolerance(torch.float32, 1e-7) == tolerance(torch.float32)
    assert derived_tolerance(torch.bfloat16, 0.012) == pytest.approx(REFERENCE_ERROR_FACTOR * 0.012)
    want = torch.randn(37, 129, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert relative_error(want, want) == 0.0
    assert relative_error(torch.full_like(want, float("nan")), want) == float("inf")
    assert check_reference(want.bfloat16(), want, "y", "test") < tolerance(torch.bfloat16)
    with pytest.raises(RuntimeError, match="the task's own reference fails its tolerance"):
        check_reference((want * 1.5).bfloat16(), want, "y", "test")


def test_bf16_reference_error_sets_the_bound_and_fp8_fails_it() -> None:
    spec = importlib.util.spec_from_file_location("lgr", TASKS / "linear_gelu_residual" / "evaluate.py")
    lgr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lgr)
    from discovery_harness.kernel_eval import Case, _reference

    for seed in range(4):
        inputs, dy = lgr.make_inputs(
            Case((37, 19, 71)), torch.Generator().manual_seed(seed), "cpu", torch.bfloat16
        )
        want = _reference(lgr.TASK, inputs, dy)
        want64 = _reference(lgr.TASK, [t.double() for t in inputs], dy.double())
        for got, exact, name in zip(want, want64, lgr.TASK.output_names, strict=False):
            bound = derived_tolerance(torch.bfloat16, check_reference(got, exact, name, "test"))
            compare(got, exact, bound, name, "test")  # the reference always meets its own bound
        y8 = want[0].to(torch.float8_e4m3fn).to(torch.bfloat16)  # fp8 storage of the output
        bound = derived_tolerance(torch.bfloat16, relative_error(want[0], want64[0]))
        with pytest.raises(Exception, match="relative to a float64 reference"):
            compare(y8, want64[0], bound, "y", "test")


def test_bf16_task_seed_scores_and_cheats_are_caught(tmp_path: Path) -> None:
    lgr = small_task(
        tmp_path,
        "linear_gelu_residual",
        "(Case((37, 19, 71)), Case((37, 19, 71)), Case((129, 65, 97), 1e2), Case((64, 72, 40), 1e-3))",
        "Case((65, 33, 67))",
        dtype="bfloat16",
    )
    seed = run_runner(lgr, TASKS / "linear_gelu_residual" / "program.py")
    assert seed["status"] == "ok", seed
    rms = small_task(
        tmp_path, "rmsnorm_training", "(Case((37, 129)), Case((64, 72), 1e-3))", "Case((64, 257))", "bfloat16"
    )
    assert run_runner(rms, TASKS / "rmsnorm_training" / "program.py")["status"] == "ok"
    for cheat, reason in (
        ("lower_precision.py", "relative to a float64 reference"),
        ("constant_output.py", "mismatch on shape"),
    ):
        result = run_runner(rms, CHEATS / cheat)
        assert result["status"] == "error" and result["kind"] == "candidate", result
        assert reason in result["error"], result["error"]


def test_dynamo_dimension_marks_are_not_decorations() -> None:
    marked = torch.zeros(3)
    marked._dynamo_propagated_dynamic_indices = {0}
    check_plain_tensor(marked, "y")
    for value in ({object()}, [0], {0: 1}):
        odd = torch.zeros(3)
        odd._dynamo_dynamic_indices = value
        with pytest.raises(Exception, match="Python attributes"):
            check_plain_tensor(odd, "y")
    other = torch.zeros(3)
    other.__dict__[os.sep] = {0}
    with pytest.raises(Exception, match="Python attributes"):
        check_plain_tensor(other, "y")


# --- the command lines torch.compile and Triton ran on an H100 (bench/gpu_check.py's trace) --------


def test_h100_compile_commands_pass_the_rules_and_variants_do_not(tmp_path: Path) -> None:
    from discovery_harness.toolchain import Toolchain

    task = tmp_path / "task"
    task.mkdir()
    tc = Toolchain((str(task),), ())
    torch_bin = Path(torch.__file__).parent / "bin"
    # Where the H100 machine had them (absent here): pin them as the Guard would have found them.
    nvsmi, file_cmd = "/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/file"
    tc.nvidia_smi, tc.file = frozenset({nvsmi}), frozenset({os.path.realpath(file_cmd)})
    ptxas = str(torch_bin / "ptxas")
    cc = shutil.which("gcc") or shutil.which("cc")
    allowed = [
        (nvsmi, ["nvidia-smi", "-i", "0", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"]),
        ("/sbin/ldconfig", ["/sbin/ldconfig", "-p"]),
        (file_cmd, ["file", "-b", sys.executable]),
        (ptxas, [ptxas, "--version"]),
        (ptxas, [ptxas, "-lineinfo", "-v", "--gpu-name=sm_90a", "/tmp/k.ptx", "-o", "/tmp/k.ptx.o"]),
    ]
    if cc:
        allowed.append(
            (
                cc,
                [
                    cc,
                    "/tmp/b/__triton_launcher.c",
                    "-O3",
                    "-shared",
                    "-fPIC",
                    "-Wno-psabi",
                    "-o",
                    "/tmp/b/l.so",
                ]
                + ["-l:libcuda.so.1", "-L/usr/local/nvidia/lib64", "-L/lib", "-I/tmp/b"],
            )
        )
    for exe, argv in allowed:
        assert tc._process(exe, argv, "/tmp", None) is None, argv
    refused = [
        (nvsmi, ["nvidia-smi", "-i", "0", "-pm", "1"], "nvidia-smi may only query"),
        (file_cmd, ["file", "-m", "/tmp/magic", "/tmp/x"], "file may only describe one file"),
        (ptxas, [ptxas, "--options-file", "/tmp/o", "/tmp/k.ptx"], "is refused"),
        (ptxas, [ptxas, "/tmp/k.ptx", "-o", str(task / "k.o")], "reaches into the task folder"),
        ("/sbin/ldconfig", ["/sbin/ldconfig"], "ldconfig may only list"),
    ]
    for exe, argv, reason in refused:
        assert reason in (tc._process(exe, argv, "/tmp", None) or ""), argv
    # A steering variable in an explicit environment is refused; a harmless one is not.
    if cc:
        env = {**os.environ, "LC_ALL": "C"}
        assert tc._process(cc, [cc, "--version"], "/tmp", env) is None
        env["LD_PRELOAD"] = "/tmp/evil.so"
        assert "LD_PRELOAD differs" in (tc._process(cc, [cc, "--version"], "/tmp", env) or "")
