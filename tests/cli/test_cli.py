"""The CLI as a user runs it: real subprocesses, real HTTP to a fake LLM, real SQLite, the process sandbox."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_llm import FakeLLMServer


def solve(x: float) -> str:
    return f"```python\ndef solve():\n    return {x}\n```"


def cli_env(archive: Path) -> dict[str, str]:
    """The host environment minus any DISCOVERY_* settings, pointed at this test's archive."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DISCOVERY_")},
        "DISCOVERY_ARCHIVE": str(archive),
    }


def cli(*args: str, archive: Path, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    env = cli_env(archive)
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def start_cli(*args: str, archive: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "discovery", *args],
        env=cli_env(archive),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def db(archive: Path, run: str) -> sqlite3.Connection:
    return sqlite3.connect(archive / run / "archive.sqlite")


def wait_for_calls(archive: Path, run: str, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if db(archive, run).execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] >= n:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError(f"run {run} never reached {n} calls")


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_bad_input_gives_one_clear_line(tmp_path, toy_task):
    archive = tmp_path / "archive"
    assert_user_error(
        cli("run", str(tmp_path / "missing"), "--sandbox", "process", archive=archive), "no such task folder"
    )
    (toy_task / "task.toml").write_text("name = [\n")
    assert_user_error(cli("run", str(toy_task), archive=archive), "not valid TOML")
    assert_user_error(cli("archive", "show", "nope", archive=archive), "no run 'nope'")
    assert_user_error(cli("run", str(toy_task), "--model", "x=abc", archive=archive), "not a number")
    assert_user_error(cli("run", str(toy_task), "--budget", "0", archive=archive), "budget")
    assert_user_error(
        cli("run", str(toy_task), "--model", "local:nope", archive=archive), "unknown local model 'nope'"
    )
    missing = tmp_path / "no.gguf"
    assert_user_error(
        cli("run", str(toy_task), "--model", f"local:{missing}", archive=archive), "does not exist"
    )
    assert not archive.exists()  # refused before any run folder was made


def test_tasks_validate_reports_every_problem(tmp_path, toy_task):
    ok = cli("tasks", "validate", str(toy_task), archive=tmp_path)
    assert ok.returncode == 0 and "✓" in ok.stdout
    (toy_task / "evaluate.py").write_text("x = 1\n")
    (toy_task / "program.py").write_text("def solve():\n    return 1\n")
    bad = cli("tasks", "validate", str(toy_task), archive=tmp_path)
    assert bad.returncode == 1
    assert "EVOLVE-BLOCK-START" in bad.stdout and "evaluate(candidate_path, split, seed)" in bad.stdout


def test_run_inspect_replay_export(tmp_path, toy_task):
    archive = tmp_path / "archive"
    with FakeLLMServer([solve(1.0), "no code here", solve(2.75)], default=solve(0.25)) as server:
        run = cli(
            "run",
            str(toy_task),
            "--model",
            "openai/fake",
            "--api-base",
            server.api_base,
            "--budget",
            "4",
            "--sandbox",
            "process",
            "--name",
            "r1",
            "--llm-concurrency",
            "1",
            "--eval-slots",
            "1",
            archive=archive,
            check=True,
        )
    assert "best score" in run.stdout and "-0.0625" in run.stdout and "seed score   -9" in run.stdout
    assert "discovery replay r1 --champion" in run.stdout and "archive.sqlite" in run.stdout
    assert (
        "discovery resume r1 --add-budget N" in run.stdout
    )  # the budget is spent: plain resume does nothing
    assert "process sandbox" in run.stdout  # the loud warning for the resource-only backend
    assert "LLM speed    openai/fake:" in run.stdout and "calls/min" in run.stdout

    runs = json.loads(cli("archive", "list", "--json", archive=archive, check=True).stdout)
    assert [r["run"] for r in runs] == ["r1"] and runs[0]["calls"] == 4

    report = json.loads(cli("archive", "show", "r1", "--json", archive=archive, check=True).stdout)
    assert report["status_counts"]["rejected_unparseable"] == 1
    [rejected] = report["failures"]
    assert rejected["status"] == "rejected_unparseable" and "no code block" in rejected["reason"]
    assert report["top"][0]["score"] == pytest.approx(-0.0625)
    assert report["models"][0]["model"] == "openai/fake" and report["models"][0]["calls"] == 4
    best_id = report["top"][0]["id"]

    cand = json.loads(
        cli("archive", "candidate", "r1", str(best_id), "--json", archive=archive, check=True).stdout
    )
    assert "return 2.75" in cand["code"] and "return 2.75" in cand["reply"] and "# Task" in cand["prompt"]
    assert [a["id"] for a in cand["lineage"]][-1] == 1

    diff = cli("archive", "diff", "r1", "1", str(best_id), archive=archive, check=True).stdout
    assert "-    return 0.0" in diff and "+    return 2.75" in diff

    shown = cli("archive", "show", "r1", archive=archive, check=True).stdout
    assert "Top candidates" in shown and "rejected_unparseable 1" in shown
    assert "Latest failures and rejections (1)" in shown and "the reply holds no code" in shown

    replay = cli("replay", "r1", "--best", archive=archive)
    assert replay.returncode == 0 and "holds" in replay.stdout, replay.stdout + replay.stderr

    champion = cli("replay", "r1", "--champion", archive=archive)
    assert champion.returncode == 0 and f"candidate {best_id}" in champion.stdout
    assert "champion     candidate" in run.stdout and report["champion_id"] == best_id
    assert report["promotions"][-1]["promoted"] == 1

    out = tmp_path / "best.py"
    cli("export", "r1", "--best", "-o", str(out), archive=archive, check=True)
    assert out.read_text() == cand["code"]
    with db(archive, "r1") as conn:
        [rejected] = conn.execute(
            "SELECT id FROM candidates WHERE status LIKE 'rejected%' LIMIT 1"
        ).fetchone()
    refused = cli("export", "r1", "--candidate", str(rejected), "-o", str(tmp_path / "r.py"), archive=archive)
    assert_user_error(refused, "before evaluation")  # the model's reply is no program
    assert not (tmp_path / "r.py").exists()

    # A replay that does not reproduce the archived score fails loudly.
    with db(archive, "r1") as conn:
        conn.execute("UPDATE candidates SET score = score + 1 WHERE id = ?", (best_id,))
    bad = cli("replay", "r1", "--candidate", str(best_id), archive=archive)
    assert bad.returncode == 1 and "does NOT hold" in bad.stdout


def test_kill_9_then_resume_loses_nothing_and_repeats_nothing(tmp_path, toy_task):
    archive = tmp_path / "archive"
    budget = 12
    replies = iter(range(1, 1000))
    with FakeLLMServer(default=lambda req: solve(next(replies) / 100), latency_s=0.3) as server:
        proc = start_cli(
            "run",
            str(toy_task),
            "--model",
            "openai/fake",
            "--api-base",
            server.api_base,
            "--budget",
            str(budget),
            "--sandbox",
            "process",
            "--name",
            "k",
            "--llm-concurrency",
            "2",
            "--eval-slots",
            "1",
            archive=archive,
        )
        wait_for_calls(archive, "k", 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with db(archive, "k") as conn:
            before = dict(conn.execute("SELECT id, score FROM candidates WHERE status = 'ok'").fetchall())
        resumed = cli("resume", "k", archive=archive, check=True)
        assert "Resuming" in resumed.stdout
        requests_seen = len(server.requests)

    conn = db(archive, "k")
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == budget
    assert requests_seen <= budget
    assert conn.execute("SELECT COUNT(*) FROM candidates WHERE status = 'pending'").fetchone()[0] == 0
    after = dict(conn.execute("SELECT id, score FROM candidates WHERE status = 'ok'").fetchall())
    assert all(
        after[cid] == score for cid, score in before.items()
    )  # nothing evaluated before the kill was lost
    evaluated = [
        r[0] for r in conn.execute("SELECT candidate_id FROM events WHERE kind = 'candidate_evaluated'")
    ]
    assert len(evaluated) == len(set(evaluated))  # nothing evaluated twice
    # every call that came back with a reply produced exactly one candidate
    orphans = conn.execute(
        "SELECT COUNT(*) FROM llm_calls l WHERE l.status = 'ok' AND NOT EXISTS "
        "(SELECT 1 FROM candidates c WHERE c.call_id = l.id)"
    ).fetchone()[0]
    assert orphans == 0
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind LIKE 'run_%' ORDER BY seq")]
    assert kinds == ["run_started", "run_resumed", "run_stopped"]


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path, toy_task):
    archive = tmp_path / "archive"
    replies = iter(range(1, 1000))
    with FakeLLMServer(default=lambda req: solve(next(replies) / 100), latency_s=0.3) as server:
        proc = start_cli(
            "run",
            str(toy_task),
            "--model",
            "openai/fake",
            "--api-base",
            server.api_base,
            "--budget",
            "8",
            "--sandbox",
            "process",
            "--name",
            "c",
            archive=archive,
        )
        wait_for_calls(archive, "c", 3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=150)
        assert proc.returncode == 130, err  # an interruption is not a normal end
        assert "interrupted" in out and "discovery resume c" in out and "Traceback" not in err
        cli("resume", "c", archive=archive, check=True)
    conn = db(archive, "c")
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 8
    assert conn.execute("SELECT COUNT(*) FROM candidates WHERE status = 'pending'").fetchone()[0] == 0
