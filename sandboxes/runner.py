"""The trusted entry point inside a sandbox: load the task's evaluator, score the candidate, report JSON.

Run as: python3 -I -B runner.py --task DIR --candidate FILE --split NAME --seed N [--stage NAME]
                                 [--openevolve JSON]

With --openevolve the task folder is an OpenEvolve example: evaluator.py's evaluate(program_path)
(or evaluate_stageN for --stage stageN) returns a metrics dict or an EvaluationResult, and the
score is OpenEvolve's fitness (see _openevolve_fitness). A stand-in `openevolve.evaluation_result`
comes last on sys.path, so such evaluators import without OpenEvolve installed.

The result goes to the original stdout as one line `RESULT_MARK {json}`. Everything else the
evaluator or candidate prints is redirected to stderr first, so a candidate that prints a fake
result line cannot be mistaken for the runner (child processes never inherit the result fd).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import sys
import traceback

RESULT_MARK = "@@discovery-result@@"


def _result_writer(result_fd: int, nonce: str):
    """A function that writes the signed result line and ends the process at once.

    Everything it uses is bound here, before the evaluator (and so the candidate) is loaded, and
    it lives only in main's frame: a candidate that replaces this module's globals, json, os,
    math or atexit handlers cannot change what is written or the exit status. It exits with
    os._exit straight after writing, so no later hook runs.
    """
    import _json

    encode = _json.make_encoder(
        None, str, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    join, write, exit_now, mark = "".join, os.write, os._exit, RESULT_MARK + " "

    def finish(payload: dict, code: int) -> None:
        try:
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - a replaced stderr must not stop the result
            pass
        line = mark + join(encode({**payload, "nonce": nonce}, 0)) + "\n"
        write(result_fd, line.encode())
        exit_now(code)

    return finish


def _load_evaluator(task_dir: str, file_name: str = "evaluate.py", module_name: str = "task_evaluate"):
    """Import the task's evaluator file as a module."""
    path = os.path.join(task_dir, file_name)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up here
    spec.loader.exec_module(module)
    return module


def _clean_metrics(raw) -> tuple[dict, str | None]:
    """Split an evaluator's return value into JSON-safe numeric metrics and feedback text."""
    if not isinstance(raw, dict):
        raise TypeError(f"evaluate() must return a dict with a numeric 'score', got {type(raw).__name__}")
    feedback = raw.get("feedback")
    metrics = {}
    for key, value in raw.items():
        if key == "feedback":
            continue
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) or hasattr(value, "__float__"):
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        elif isinstance(value, str) and len(value) < 2000:
            metrics[key] = value
    return metrics, (str(feedback)[:8000] if feedback is not None else None)


def _is_number(value) -> bool:
    """A number OpenEvolve counts in a mean: int, float or bool, and not NaN."""
    return isinstance(value, (int, float)) and value == value


def _openevolve_result(raw) -> tuple[dict, dict]:
    """(metrics, artifacts) from an OpenEvolve evaluator's dict or EvaluationResult (duck-typed)."""
    if isinstance(raw, dict):
        return raw, {}
    metrics = getattr(raw, "metrics", None)
    if not isinstance(metrics, dict):
        raise TypeError(
            f"evaluate() must return a dict of metrics or an EvaluationResult, got {type(raw).__name__}"
        )
    artifacts = getattr(raw, "artifacts", None)
    return metrics, artifacts if isinstance(artifacts, dict) else {}


def _openevolve_fitness(metrics: dict, features: list) -> float:
    """OpenEvolve's fitness: combined_score, else the mean of numeric metrics that are not features."""
    combined = metrics.get("combined_score")
    if _is_number(combined):
        return float(combined)
    values = [float(v) for k, v in metrics.items() if k not in features and _is_number(v)]
    values = values or [float(v) for v in metrics.values() if _is_number(v)]
    if not values:
        raise ValueError("evaluate() returned no numeric metric to score (and no combined_score)")
    return sum(values) / len(values)


def _passes(metrics: dict, threshold: float) -> bool:
    """OpenEvolve's cascade test: combined_score, else the mean of numeric metrics but 'error'."""
    combined = metrics.get("combined_score")
    if _is_number(combined):
        return float(combined) >= threshold
    values = [float(v) for k, v in metrics.items() if k != "error" and _is_number(v)]
    return bool(values) and sum(values) / len(values) >= threshold


def _openevolve_cascade(module, program_path: str, thresholds: list) -> tuple[dict, dict]:
    """OpenEvolve's cascade: stage 1, then stages 2 and 3 while the merged metrics clear each threshold.

    A failing stage 1 fails the evaluation; a later stage that raises keeps the earlier metrics and
    marks stageN_passed = 0, as OpenEvolve does.
    """
    metrics, artifacts = _openevolve_result(module.evaluate_stage1(program_path))
    for n in (2, 3):
        stage = getattr(module, f"evaluate_stage{n}", None)
        if stage is None or len(thresholds) < n - 1 or not _passes(metrics, thresholds[n - 2]):
            return metrics, artifacts
        try:
            more, more_artifacts = _openevolve_result(stage(program_path))
        except Exception as exc:  # noqa: BLE001 - OpenEvolve keeps the earlier stages' result
            failed = {f"stage{n}_stderr": f"{type(exc).__name__}: {exc}", "failure_stage": f"stage{n}"}
            return {**metrics, f"stage{n}_passed": 0.0}, {**artifacts, **failed}
        merged = {k: float(v) for k, v in {**metrics, **more}.items() if k != "error" and _is_number(v)}
        metrics, artifacts = merged, {**artifacts, **more_artifacts}
    return metrics, artifacts


def _artifacts_text(artifacts: dict) -> str | None:
    """Artifacts as feedback text for the next prompt (bytes decoded, long values cut)."""
    lines = []
    for key, value in artifacts.items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        lines.append(f"{key}: {str(value)[:2000]}")
    return "\n".join(lines) or None


def _run_openevolve(candidate: str, stage: str | None, options: dict) -> tuple[dict, dict]:
    """Run an OpenEvolve evaluator.py on a candidate: its (metrics, artifacts)."""
    module = _load_evaluator(options["task"], "evaluator.py", "evaluation_module")
    if stage is not None:
        function = getattr(module, f"evaluate_{stage}", None)
        if function is None:
            raise AttributeError(f"evaluator.py defines no evaluate_{stage}(program_path)")
        metrics, artifacts = _openevolve_result(function(candidate))
    elif options.get("cascade") and hasattr(module, "evaluate_stage1"):
        metrics, artifacts = _openevolve_cascade(module, candidate, list(options.get("thresholds") or []))
    else:
        metrics, artifacts = _openevolve_result(module.evaluate(candidate))
    return metrics, artifacts


def _openevolve_payload(metrics: dict, artifacts: dict, features: list, fitness, as_text) -> dict:
    """The discovery metrics dict: OpenEvolve's metrics, its fitness as 'score', artifacts as feedback."""
    feedback = as_text(artifacts)
    return {**metrics, "score": fitness(metrics, features), **({"feedback": feedback} if feedback else {})}


def _clean_files(raw) -> dict | None:
    """An evaluator's optional "files" (relative path -> text: a mutation's edited tree), or None."""
    files = raw.get("files")
    if not isinstance(files, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise TypeError("evaluate()'s 'files' must map relative paths to text")
    return dict(files)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", required=True)
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", default=None)
    parser.add_argument("--openevolve", default=None, help="JSON: score an OpenEvolve evaluator.py")
    args = parser.parse_args()
    openevolve = json.loads(args.openevolve) if args.openevolve else None

    # The host sends a fresh nonce on stdin (never argv or env: both are readable through /proc).
    # It lives only in this frame, so a forged result line from candidate code lacks it.
    nonce = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.readline().strip()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    # Keep the real stdout for the result only; send everything else to stderr.
    result_fd = os.dup(1)
    os.set_inheritable(result_fd, False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, args.task]
    if openevolve is not None:
        # Last, so a real OpenEvolve in the sandbox's Python wins over the stand-in.
        sys.path.append(os.path.join(here, "openevolve_compat"))
    from discovery_harness.candidate import make_undumpable
    from discovery_harness.errors import CandidateError

    # Same-uid children (candidates) must not read this process's memory or its result fd via /proc.
    make_undumpable()

    # Bound before any task or candidate code runs (see _result_writer).
    finish, clean, isfinite, tree = (
        _result_writer(result_fd, nonce),
        _clean_metrics,
        math.isfinite,
        _clean_files,
    )
    # OpenEvolve scoring too: a candidate imported into the evaluator's process cannot swap it.
    oe_payload, oe_fitness, oe_text = _openevolve_payload, _openevolve_fitness, _artifacts_text
    try:
        if openevolve is not None:
            metrics, artifacts = _run_openevolve(
                args.candidate, args.stage, {**openevolve, "task": args.task}
            )
            features = list(openevolve.get("features") or [])
            raw = oe_payload(metrics, artifacts, features, oe_fitness, oe_text)
        else:
            evaluator = _load_evaluator(args.task)
            kwargs = {"split": args.split, "seed": args.seed}
            if args.stage is not None and "stage" in inspect.signature(evaluator.evaluate).parameters:
                kwargs["stage"] = args.stage
            raw = evaluator.evaluate(args.candidate, **kwargs)
        metrics, feedback = clean(raw)
        files = tree(raw)
        score = metrics.get("score")
        if not isinstance(score, float):
            raise TypeError("evaluate() returned no numeric 'score'")
        if not isfinite(score):
            raise ValueError(f"score is not a finite number: {score}")
    except BaseException as exc:  # noqa: BLE001 - every failure must be reported, not crash silently
        # An OpenEvolve evaluator imports the candidate into its own process, so its errors cannot be
        # told apart from the candidate's: charge the candidate, as OpenEvolve does (it scores 0).
        kind = "candidate" if isinstance(exc, CandidateError) or openevolve is not None else "evaluator"
        finish(
            {
                "status": "error",
                "kind": kind,
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            },
            1,
        )
    result = {"status": "ok", "score": score, "metrics": metrics, "feedback": feedback}
    finish({**result, "files": files} if files is not None else result, 0)
    return 0  # not reached: finish() exits


if __name__ == "__main__":
    sys.exit(main())
