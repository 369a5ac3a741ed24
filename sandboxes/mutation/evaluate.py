"""Trusted: a coding agent (the run's --mutator) edits a parent candidate's tree; its edited tree is the result.

Not a task of its own: the host runs this as the task of a mutation job (discovery/search/mutator.py),
with the agent as the candidate and `input.json` beside it: {"files": {path: text}, "problem": text,
"test_command": [...]}. The agent works on a copy of the tree in a fresh folder, under Landlock
(it may write only that folder and a scratch folder), through the LLM gateway. When solve() has
returned (or failed, or run out of time) its processes are killed and the tree is read back once:
the files it had, plus new ones, as text. The host validates the tree like any reply (EVOLVE blocks,
syntax, duplicates) before it becomes a child.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from discovery_harness import CandidateError, CandidateProcess, CandidateTimeout

MAX_TREE_BYTES = 2 * 1024 * 1024
MAX_FILES = 200


def read_tree(root: Path) -> dict[str, str]:
    """Every regular file under root as relative posix path -> text (links skipped), size-limited."""
    tree: dict[str, str] = {}
    total = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(folder, d))
        )
        for name in sorted(names):
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue
            with path.open("rb") as f:
                data = f.read(MAX_TREE_BYTES + 1 - total)
            total += len(data)
            if total > MAX_TREE_BYTES or len(tree) >= MAX_FILES:
                raise CandidateError(f"the agent left more than {MAX_TREE_BYTES} bytes or {MAX_FILES} files")
            tree[path.relative_to(root).as_posix()] = data.decode(errors="replace")
    return tree


def evaluate(candidate_path, split="mutation", seed=0):
    """Run the agent on its copy of the tree; the edited tree comes back as "files" (the score means nothing)."""
    spec = json.loads((Path(candidate_path).parent / "input.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    repo, scratch = work / "repo", work / "scratch"
    repo.mkdir()
    scratch.mkdir()
    for name, text in spec["files"].items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    # Nothing here is secret (no hidden tests): the confinement only keeps the agent's writes in its copy.
    rules = {"write": [str(repo), str(scratch)], "hidden": []}
    time_s = float(spec.get("time_s", 60.0))
    started = time.monotonic()
    summary = None
    proc = CandidateProcess(
        candidate_path, timeout_s=time_s, import_harness=True, confine=rules, env={"TMPDIR": str(scratch)}
    )
    proc.call_env = {"DISCOVERY_LLM_SAMPLE": "0"}
    try:
        with proc:
            summary = proc.call("solve", str(repo), spec["problem"], spec["test_command"], timeout_s=time_s)
    except CandidateTimeout as exc:
        summary = f"the agent ran out of time ({exc}); its edits so far are kept"
    try:
        tree = read_tree(repo)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "score": 0.0,
        "agent_s": time.monotonic() - started,
        "files": tree,
        "feedback": str(summary)[:2000],
    }
