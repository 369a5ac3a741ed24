"""Trusted evaluator: a coding agent's solve(repo, problem, test_command) on generated buggy repositories.

For each instance (instances.py) the agent gets a fresh copy of a small repository with one
injected bug, the problem statement and the command that runs the visible tests. It runs in a
child process (discovery_harness.CandidateProcess) under Landlock (discovery_harness.confine): it
may read the system and Python, read and write its copy of the repository and a scratch folder,
and nothing else: not this task folder (the references and the hidden-test generator), not the
other instances. It reaches the run's model only through the LLM gateway, under the task's
[agent] budget, with the instance's index sent along with every call.

Hidden tests exist only after the agent has returned: its process group is killed, then the
evaluator reads the edited module back (once, size-limited), builds the hidden tests in its own
memory and calls the function on each input in another confined child that imports only that
frozen copy. Expected answers never leave this process; the child sees one input at a time.

Score: the share of instances whose hidden tests all pass (resolve rate, maximised), with its 95 %
Wilson interval. The `smoke` stage (--cascade) runs the first three instances only.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import tomllib
from pathlib import Path

from discovery_harness import CandidateError, CandidateProcess, CandidateTimeout
from discovery_harness.confine import landlock_abi
from instances import Instance, hidden_tests, make_instances

HERE = Path(__file__).resolve().parent
MAX_MODULE_BYTES = 256 * 1024
CALL_TIMEOUT_S = 5.0
Z95 = 1.959964


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound at 0 and 1 successes, unlike the normal one)."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _time_budget_s() -> float:
    """Seconds the agent may use in all: the task's timeout, less a margin for scoring and reporting."""
    spec = tomllib.loads((HERE / "task.toml").read_text())
    return max(1.0, 0.85 * float(spec.get("resources", {}).get("timeout_s", 60.0)) - 5.0)


def visible_test_command(instance: Instance) -> list[str]:
    """The visible tests' command line (`python` is the sandbox's interpreter)."""
    return ["python", "-B", f"test_{instance.reference.module}.py"]


def run_agent(candidate_path: str, instance: Instance, index: int, work: Path, time_s: float) -> str | None:
    """Let the agent work on its copy of the instance; None, or what went wrong. Its processes end here."""
    repo, scratch = work / "repo", work / "scratch"
    rules = {"write": [str(repo), str(scratch)], "hidden": [str(HERE)]}
    proc = CandidateProcess(
        candidate_path, timeout_s=time_s, import_harness=True, confine=rules, env={"TMPDIR": str(scratch)}
    )
    proc.call_env = {"DISCOVERY_LLM_SAMPLE": str(index)}
    try:
        with proc:
            proc.call("solve", str(repo), instance.problem, visible_test_command(instance), timeout_s=time_s)
    except CandidateTimeout as exc:
        return f"out of time: {exc}"
    except CandidateError as exc:
        return str(exc)
    return None


def frozen_module(work: Path, instance: Instance) -> str | None:
    """The edited module's text, read once after the agent has gone; None if missing, a link or too large."""
    path = work / "repo" / f"{instance.reference.module}.py"
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError:
        return None
    return data.decode(errors="replace") if len(data) <= MAX_MODULE_BYTES else None


def _normal(value: object) -> object:
    """A value as it comes back over JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def failed_hidden_test(source: str, instance: Instance, split: str, seed: int) -> str | None:
    """Run the hidden tests on a frozen module: None if all pass, else the first failure (input only)."""
    ref = instance.reference
    folder = Path(tempfile.mkdtemp(prefix="ca-score-"))
    try:
        module = folder / f"{ref.module}.py"
        module.write_text(source)
        rules = {"write": [], "hidden": [str(HERE)]}
        with CandidateProcess(module, timeout_s=CALL_TIMEOUT_S, confine=rules) as proc:
            for args, (kind, expected) in hidden_tests(instance, split, seed):
                try:
                    got = ("ok", _normal(proc.call(ref.function, *args)))
                except CandidateTimeout:
                    return f"{ref.function}{tuple(args)} timed out"
                except CandidateError as exc:
                    got = ("raises", str(exc))
                want_raise = kind == "raises" and got[0] == "raises" and f"raised {expected}" in got[1]
                if not want_raise and got != (kind, _normal(expected)):
                    return f"a hidden test failed on input {ref.function}{tuple(args)}"
    except CandidateError as exc:
        return f"the module does not import: {str(exc)[:300]}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return None


def attempt(
    candidate_path: str, instance: Instance, index: int, split: str, seed: int, time_s: float
) -> str | None:
    """One instance end to end: None when resolved, else why not."""
    work = Path(tempfile.mkdtemp(prefix="ca-work-"))
    try:
        (work / "repo").mkdir()
        (work / "scratch").mkdir()
        for name, text in instance.files.items():
            (work / "repo" / name).write_text(text)
        error = run_agent(candidate_path, instance, index, work, time_s)
        source = frozen_module(work, instance)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if source is None:
        return error or f"{instance.reference.module}.py is missing, a link or too large"
    failure = failed_hidden_test(source, instance, split, seed)
    return failure if failure is None or error is None else f"{error}; {failure}"


def evaluate(candidate_path, split="train", seed=0, stage=None):
    """The agent's resolve rate on the split's instances (or the stage's first few), with its interval."""
    instances = make_instances(split, seed, stage)
    deadline = time.monotonic() + _time_budget_s()
    results, crashes, notes = [], 0, []
    for index, instance in enumerate(instances):
        left = deadline - time.monotonic()
        if left <= 1:
            why = "no time left"
        else:
            why = attempt(candidate_path, instance, index, split, seed, left / (len(instances) - index))
        results.append(why is None)
        crashes += int(why is not None and "solve() raised" in why)
        if why is not None and len(notes) < 4:
            notes.append(f"{instance.name}: {why[:400]}")
    if crashes == len(instances):
        # A broken agent (not a weak one): a failure with its traceback, so a repair can see it.
        raise CandidateError(f"solve() raised on every instance; the first failure: {notes[0]}")
    resolved = sum(results)
    low, high = wilson_interval(resolved, len(results))
    rate = resolved / len(results)
    confined = landlock_abi() > 0
    feedback = f"resolved {resolved} of {len(results)} instances ({rate:.3f}, 95% CI {low:.3f}-{high:.3f})."
    if not confined:
        feedback += "\nWarning: this kernel has no Landlock; the agent ran unconfined inside its sandbox."
    if notes:
        feedback += "\nUnresolved:\n" + "\n".join(notes)
    return {
        "score": rate,
        "resolve_rate": rate,
        "resolve_rate_ci_low": low,
        "resolve_rate_ci_high": high,
        "resolved": resolved,
        "instances": len(results),
        "confined": float(confined),
        "feedback": feedback,
    }
