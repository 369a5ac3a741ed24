"""The bundled multi-file task end to end: real CLI, real sandboxes, real SQLite, a fake model on 127.0.0.1."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from discovery.program.tree import from_listing
from tests.cli.test_cli import assert_user_error, cli, db, start_cli, wait_for_calls
from tests.fake_llm import FakeLLMServer
from tests.sandbox_fixtures import docker_or_skip, skip_backend

TASK = Path(__file__).resolve().parents[2] / "tasks" / "knapsack_files"


def edit(path: str, search: str, replace: str) -> str:
    return f"File: {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


# Two files in one reply: a better priority, and a fallback to the single most valuable item.
TWO_FILES = (
    "Use value density, and fall back to the best single item.\n\n"
    + edit("heuristic.py", "    return value", "    return value / weight")
    + "\n"
    + edit(
        "main.py",
        "    return chosen",
        "    best = max(range(len(values)), key=lambda i: values[i] if weights[i] <= capacity else -1)\n"
        "    if values[best] > sum(values[i] for i in chosen):\n"
        "        return [best]\n"
        "    return chosen",
    )
)
CHEAT = edit("checks.py", "    return load + weight <= capacity", "    return True")
ESCAPE = edit("../evaluate.py", "", "def evaluate(candidate_path, split, seed):\n    return {'score': 1.0}")


def density(k: int) -> str:
    """A distinct, valid one-file reply (for filling a budget without duplicates)."""
    return edit("heuristic.py", "    return value", f"    return value / (weight + {k})")


def run_args(server: FakeLLMServer, name: str, budget: int, backend: str = "process") -> list[str]:
    return [
        "run",
        str(TASK),
        "--model",
        "openai/fake",
        "--api-base",
        server.api_base,
        "--budget",
        str(budget),
        "--sandbox",
        backend,
        "--name",
        name,
        "--llm-concurrency",
        "1",
        "--eval-slots",
        "1",
    ]


def require(backend: str) -> None:
    """Skip (naming why) when a sandbox backend is missing here."""
    if backend == "bwrap":
        from discovery.sandbox.base import SandboxUnavailable
        from discovery.sandbox.bwrap import BwrapSandbox

        try:
            BwrapSandbox()
        except SandboxUnavailable as exc:
            skip_backend(exc)
    if backend == "docker":
        import docker.errors

        try:
            docker_or_skip().images.get("discovery-sandbox:py")
        except docker.errors.ImageNotFound:
            skip_backend("no image discovery-sandbox:py (build it: discovery sandbox build --kind skeleton)")


@pytest.mark.parametrize("backend", ["process", "bwrap", "docker"])
def test_a_reply_editing_two_files_is_evaluated_and_forbidden_edits_are_not(tmp_path, backend):
    require(backend)
    archive = tmp_path / "archive"
    with FakeLLMServer([TWO_FILES, CHEAT, ESCAPE], default=density(1)) as server:
        cli(*run_args(server, "mf", 4, backend), archive=archive, check=True)
        prompt = server.requests[0]["messages"][-1]["content"]
    assert "# ==== FILE: main.py ====" in prompt and "File: path" in prompt
    assert "never change them: checks.py" in prompt

    conn = db(archive, "mf")
    rows = conn.execute("SELECT id, status, score, failure FROM candidates ORDER BY id").fetchall()
    assert [r[1] for r in rows] == ["ok", "ok", "rejected_forbidden", "rejected_forbidden", "ok"]
    sandboxes = {r[0] for r in conn.execute("SELECT sandbox FROM candidates WHERE status = 'ok'")}
    assert len(sandboxes) == 1 and sandboxes.pop().startswith(backend)
    seed_score, two_files_score = rows[0][2], rows[1][2]
    assert two_files_score > seed_score + 0.05  # both edits took effect inside the sandbox
    assert "checks.py" in rows[2][3] and "fixed" in rows[2][3]
    assert "../evaluate.py" in rows[3][3] and "outside the candidate's folder" in rows[3][3]
    # Only candidates that were evaluated have a tree; checks.py is stored once for all of them.
    blobs = conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    files = conn.execute("SELECT COUNT(*) FROM candidate_files").fetchone()[0]
    assert files == 3 * 3 and blobs == 3 + 2 + 1

    cand = json.loads(cli("archive", "candidate", "mf", "2", "--json", archive=archive, check=True).stdout)
    tree = from_listing(cand["code"])
    assert (
        sorted(tree) == ["checks.py", "heuristic.py", "main.py"] and "value / weight" in tree["heuristic.py"]
    )
    diff = cli("archive", "diff", "mf", "1", "2", archive=archive, check=True).stdout
    assert "--- a/heuristic.py" in diff and "+++ b/main.py" in diff and "+        return [best]" in diff
    assert "checks.py" not in diff

    out = tmp_path / "exported"
    cli("export", "mf", "--candidate", "2", "-o", str(out), archive=archive, check=True)
    assert {p.name: p.read_text() for p in out.iterdir()} == tree
    assert_user_error(
        cli("export", "mf", "--candidate", "2", "-o", str(out), archive=archive), "not an empty folder"
    )


def test_a_killed_multi_file_run_resumes_and_loses_nothing(tmp_path):
    archive = tmp_path / "archive"
    budget = 8
    replies = iter(range(1, 1000))
    with FakeLLMServer(default=lambda req: density(next(replies)), latency_s=0.3) as server:
        # One-line edits of a three-file package are near duplicates for novelty: not the point here.
        proc = start_cli(*run_args(server, "k", budget), "--no-novelty", archive=archive)
        wait_for_calls(archive, "k", 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = cli("resume", "k", archive=archive, check=True)
        assert "Resuming" in resumed.stdout

    conn = db(archive, "k")
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == budget
    # A call in flight at the kill counts against the budget but yields no candidate.
    replied = conn.execute("SELECT COUNT(*) FROM llm_calls WHERE status = 'ok'").fetchone()[0]
    statuses = [r[0] for r in conn.execute("SELECT status FROM candidates ORDER BY id")]
    assert replied >= budget - 2 and statuses == ["ok"] * (replied + 1), statuses
    # Every candidate's tree is whole after the kill; each child stored just its one new heuristic.py.
    per_candidate = conn.execute("SELECT COUNT(*) FROM candidate_files GROUP BY candidate_id").fetchall()
    assert [n for (n,) in per_candidate] == [3] * (replied + 1)
    assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 3 + replied
    evaluated = [
        r[0] for r in conn.execute("SELECT candidate_id FROM events WHERE kind = 'candidate_evaluated'")
    ]
    assert len(evaluated) == len(set(evaluated))
