"""GPU check of the kernel tasks: seeds, known-faster and cheat candidates, torch.compile and Triton under the guard.

Runs the real in-sandbox runner (no sandbox: the device machine has none) and prints one line per
check, then per task the seed's speedup mean and CV over 3 runs and the faster, torch.compile and
Triton candidates' speedups (the README's figures), plus a JSON file of every payload.
Usage: python3 bench/gpu_check.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.runner_call import run_runner  # noqa: E402

TASKS = ROOT / "tasks"
CHEATS = ROOT / "tests" / "cheats"
RMSNORM = TASKS / "rmsnorm_training"

CHEAT_REASONS = {
    "patch_event_elapsed.py": "timer patched: torch.cuda.Event.elapsed_time",
    "patch_perf_counter.py": "timer patched: time.perf_counter",
    "cache_by_shape.py": "mismatch on timed call",
    "side_thread.py": "thread started",
    "thread_pool.py": "thread started by the candidate",
    "freed_memory.py": "mismatch",
    "lower_precision.py": "relative to a float64 reference",  # fp8 storage on a bf16 task
    "lazy_subclass.py": "is a Tensor subclass (Lazy)",
    "mutate_inputs.py": "input mutated",
    "constant_output.py": "mismatch on shape",
    "slow_reference.py": "__code__ of a harness function was reassigned",
}


def check(name: str, task: Path, candidate: Path, results: list[dict], timeout: float = 600) -> dict:
    """Run one candidate through the runner, print a line, keep the payload."""
    started = time.monotonic()
    try:
        payload = run_runner(task, candidate, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a check that crashes is reported, the others still run
        payload = {"status": "crash", "error": repr(exc)[:2000]}
    payload["_name"], payload["_wall_s"] = name, round(time.monotonic() - started, 2)
    m = payload.get("metrics", {})
    print(
        f"{name:44} {payload.get('status'):6} score={payload.get('score')} on_gpu={m.get('on_gpu')} "
        f"ref_ms={m.get('ref_ms')} cand_ms={m.get('cand_ms')} wall={payload['_wall_s']}s "
        f"{str(payload.get('error', ''))[:700]}",
        flush=True,
    )
    results.append(payload)
    return payload


# Every process start, ctypes load, /proc read, environment change and native import that a candidate's
# compilation makes, with the innermost caller outside the standard library; no Guard (to list them all).
TRACE = r"""
import importlib.util, json, os, sys, threading
import torch
sys.path.insert(0, SANDBOXES)
STDLIB = os.path.dirname(os.__file__)
events = {}

def caller():
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        if not (name.startswith("<frozen") or (name.startswith(STDLIB) and "-packages" not in name)):
            return name.rsplit("-packages/", 1)[-1] + f":{f.f_lineno}"
        f = f.f_back
    return "?"

def hook(ev, args):
    if not armed:
        return
    if ev in ("subprocess.Popen", "os.posix_spawn"):
        key = f"{ev} {str(args[1])[:400]}"
    elif ev in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function"):
        key = f"{ev} {str(args)[:160]}"
    elif ev == "open" and str(args[0]).startswith("/proc"):
        key = f"open {args[0]}"
    elif ev in ("os.putenv", "os.unsetenv"):
        key = f"{ev} {args[0]!r}"
    elif ev == "import" and len(args) > 2 and args[2] is None and "-packages" not in str(args[1]):
        key = f"native import {args[1]}"
    else:
        return
    key += f" <- {caller()}"
    events[key] = events.get(key, 0) + 1

armed = False
sys.addaudithook(hook)
spec = importlib.util.spec_from_file_location("task_evaluate", TASK_FILE)
task = importlib.util.module_from_spec(spec)
spec.loader.exec_module(task)
T = task.TASK

def run():
    global armed
    armed = True
    spec = importlib.util.spec_from_file_location("candidate", CANDIDATE)
    cand = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cand)
    fn = getattr(cand, T.entry)
    for case in (*T.gpu.checks[:3], T.gpu.timing):
        inputs, dy = T.make_inputs(case, torch.Generator(device="cuda").manual_seed(0), "cuda", T.gpu.dtype)
        args = [t.requires_grad_(i in T.grad_indices) for i, t in enumerate(inputs)]
        y = fn(*args, *T.constants)
        torch.autograd.grad(y, [args[i] for i in T.grad_indices], dy)
    torch.cuda.synchronize()
    armed = False

threads = threading.active_count()
worker = threading.Thread(target=run)
worker.start()
worker.join()
print("@@" + json.dumps({"events": events, "python_threads_left": threading.active_count() - threads}))
"""


def trace(name: str, task: Path, candidate: Path) -> None:
    """Run a candidate on GPU inputs without the Guard, listing what its compilation does."""
    import os
    import subprocess

    caches = Path(tempfile.mkdtemp())
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
        "TRITON_CACHE_DIR": str(caches / "triton"),
        "TORCHINDUCTOR_COMPILE_THREADS": "1",
        "TORCHINDUCTOR_CPP_CACHE_PRECOMPILE_HEADERS": "0",
    }
    prelude = (
        f"SANDBOXES = {str(ROOT / 'sandboxes')!r}\nTASK_FILE = {str(task / 'evaluate.py')!r}\n"
        f"CANDIDATE = {str(candidate)!r}\n"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", prelude + TRACE], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    print(f"trace {name} ({time.monotonic() - started:.1f}s):", flush=True)
    if not lines:
        print(f"  failed: {proc.stderr[-1500:]}", flush=True)
        return
    found = json.loads(lines[-1][2:])
    for key, count in found["events"].items():
        print(f"  {count:4}x {key}", flush=True)
    print(f"  python threads left behind: {found['python_threads_left']}", flush=True)


GROUPS = ("rms_seeds", "lgr_seeds", "candidates", "cheats", "training", "trace")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None)
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {GROUPS}")
    parser.add_argument("--cheats", default="", help="comma-separated cheat files (default: all)")
    args = parser.parse_args()
    groups = set(args.only.split(","))
    import torch

    print(
        f"torch {torch.__version__} cuda={torch.cuda.is_available()} "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''}",
        flush=True,
    )
    results: list[dict] = []
    figures: dict[str, list[str]] = {}

    def speedup(payload: dict) -> str:
        score = payload.get("score")
        return f"{score:.3f}x" if isinstance(score, float) else f"{payload.get('status')}"

    for task, group in (("rmsnorm_training", "rms_seeds"), ("linear_gelu_residual", "lgr_seeds")):
        figures[task] = []
        if group not in groups:
            continue
        scores = [
            check(f"{task} seed #{k}", TASKS / task, TASKS / task / "program.py", results).get("score")
            for k in range(3)
        ]
        ok = [s for s in scores if isinstance(s, float)]
        line = f"seed speedup over 3 runs: {', '.join(f'{s:.3f}' for s in ok) or 'none'}"
        if len(ok) > 1:
            line += f" (mean {statistics.mean(ok):.3f}, CV {statistics.stdev(ok) / statistics.mean(ok):.2%})"
        figures[task].append(line)
        print(f"  {task} {line}", flush=True)
    candidates = (
        ("rmsnorm_training", "faster (fused autograd)", CHEATS / "faster.py"),
        ("rmsnorm_training", "torch.compile", CHEATS / "compiled_rmsnorm.py"),
        ("rmsnorm_training", "triton", CHEATS / "triton_rmsnorm.py"),
        ("linear_gelu_residual", "torch.compile", CHEATS / "compiled_linear_gelu.py"),
    )
    if "candidates" in groups:
        for task, label, path in candidates:
            payload = check(f"{task} {label}", TASKS / task, path, results)
            figures[task].append(f"{label}: {speedup(payload)}")
    if "cheats" in groups:
        caught = 0
        expected = dict(CHEAT_REASONS)
        chosen = [c for c in args.cheats.split(",") if c] or list(CHEAT_REASONS)
        cheats = [(cheat, CHEATS / cheat) for cheat in chosen if cheat in CHEAT_REASONS]
        cheats.append(("own_process (compiles, then subprocess)", CHEATS / "compile_then_subprocess.py"))
        expected["own_process (compiles, then subprocess)"] = "only torch's and Triton's compilers may"
        for cheat, path in cheats:
            payload = check(f"cheat {cheat}", RMSNORM, path, results)
            hit = payload.get("status") == "error" and expected[cheat] in str(payload.get("error", ""))
            caught += hit
            if not hit:
                print(f"  NOT CAUGHT as expected ({expected[cheat]!r})", flush=True)
        print(f"cheats caught for the expected reason: {caught}/{len(cheats)}", flush=True)
    if "training" in groups:
        for task in ("optimizer_discovery", "tiny_gpt_speedrun"):
            payload = check(f"{task} seed", TASKS / task, TASKS / task / "program.py", results)
            figures[task] = [f"seed score {payload.get('score')}"]
    if "trace" in groups and torch.cuda.is_available():
        for task, label, path in candidates[1:]:
            trace(f"{task} {label}", TASKS / task, path)
    print("figures:", flush=True)
    for task, lines in figures.items():
        print(f"  {task}: " + "; ".join(lines), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
