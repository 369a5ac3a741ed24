"""The trusted entry point inside a sandbox: load the task's evaluator, score the candidate, report JSON.

Run as: python3 -I -B runner.py --task DIR --candidate FILE --split NAME --seed N [--stage NAME]

The result goes to the original stdout as one line `RESULT_MARK {json}`. Everything else the
evaluator or candidate prints is redirected to stderr first, so a candidate that prints a fake
result line cannot be mistaken for the runner (child processes never inherit the result fd).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
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


def _load_evaluator(task_dir: str):
    """Import the task's evaluate.py as a module."""
    path = os.path.join(task_dir, "evaluate.py")
    spec = importlib.util.spec_from_file_location("task_evaluate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["task_evaluate"] = module  # dataclasses and pickling look the module up here
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
    args = parser.parse_args()

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
    try:
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
        kind = "candidate" if isinstance(exc, CandidateError) else "evaluator"
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
