"""Score a candidate with the real sandboxes/runner.py in a fresh interpreter, as tests do without a sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "sandboxes" / "runner.py"
# With the space: exactly what the runner writes before its JSON.
RESULT_MARK = "@@discovery-result@@ "


def run_runner(
    task_dir: Path,
    candidate_path: Path,
    split: str = "train",
    seed: int = 0,
    stage: str | None = None,
    timeout: float = 300,
    openevolve: dict | None = None,
) -> dict:
    """Run the real runner on a candidate file and return its one result line's JSON payload."""
    cmd = [
        sys.executable,
        "-I",
        "-B",
        str(RUNNER),
        "--task",
        str(task_dir),
        "--candidate",
        str(candidate_path),
        "--split",
        split,
        "--seed",
        str(seed),
    ]
    if stage is not None:
        cmd += ["--stage", stage]
    if openevolve is not None:
        cmd += ["--openevolve", json.dumps(openevolve)]
    # The runner reads a nonce line from a non-TTY stdin: an empty stdin gives it "" instead of blocking.
    proc = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert len(lines) == 1, f"no single result line; stdout={proc.stdout!r} stderr={proc.stderr[-3000:]!r}"
    return json.loads(lines[0][len(RESULT_MARK) :])


def run_source(
    task_dir: Path,
    code: str,
    tmp_path: Path,
    split: str = "train",
    stage: str | None = None,
    timeout: float = 120,
) -> dict:
    """Write candidate source (dedented) to tmp_path/program.py and score it with run_runner."""
    candidate = tmp_path / "program.py"
    candidate.write_text(textwrap.dedent(code))
    return run_runner(task_dir, candidate, split=split, stage=stage, timeout=timeout)


def rejected(result: dict) -> str:
    """The error message of a candidate rejection (asserts it is one)."""
    assert result["status"] == "error", result
    assert result["kind"] == "candidate", result
    return result["error"]
