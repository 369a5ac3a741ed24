"""The CLI's promises to scripts and users: one driver per run, exit codes, read-only reads, no tracebacks."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_user_error, cli, db, solve, start_cli, wait_for_calls
from tests.fake_llm import Fail

FAKE = ("--model", "openai/fake", "--sandbox", "process")


def fake_run(server, *extra: str) -> tuple[str, ...]:
    return (*FAKE, "--api-base", server.api_base, *extra)


def one_line_error(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def docker_works() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception:  # noqa: BLE001
        return False
    return True


# ----- one driver per run --------------------------------------------------------------------------


def test_a_second_driver_is_refused_and_a_killed_drivers_lock_is_taken_over(tmp_path, toy_task, fake_llm):
    archive = tmp_path / "archive"
    replies = iter(range(1, 1000))
    server = fake_llm(default=lambda req: solve(next(replies) / 100), latency_s=0.5)
    first = start_cli(
        "run", str(toy_task), *fake_run(server, "--budget", "10", "--name", "L"), archive=archive
    )
    try:
        wait_for_calls(archive, "L", 2)
        second = cli("resume", "L", archive=archive)
        one_line_error(second, 2, "already being driven by", f"pid {first.pid}")
        again = cli("run", str(toy_task), *fake_run(server, "--name", "L"), archive=archive)
        one_line_error(again, 2, "already exists")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # flock died with its holder: the stale lock file is taken over.
    assert (archive / "L" / "run.lock").exists()
    resumed = cli("resume", "L", archive=archive)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    kinds = [r[0] for r in db(archive, "L").execute("SELECT kind FROM events WHERE kind LIKE 'run_%'")]
    assert kinds == ["run_started", "run_resumed", "run_stopped"]


# ----- exit codes ----------------------------------------------------------------------------------


def test_exit_code_3_when_the_seed_fails_its_own_evaluation(tmp_path, toy_task, fake_llm):
    (toy_task / "program.py").write_text(
        (toy_task / "program.py").read_text().replace("return 0.0", "return 'abc'")
    )
    server = fake_llm(default=solve(1.0))
    proc = cli("run", str(toy_task), *fake_run(server, "--budget", "2", "--name", "s"), archive=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "seed program failed" in proc.stdout


def test_exit_code_4_on_a_provider_stop(tmp_path, toy_task, fake_llm):
    server = fake_llm(default=Fail(401))
    proc = cli("run", str(toy_task), *fake_run(server, "--budget", "3", "--name", "p"), archive=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_exit_130_and_the_run_resumes(tmp_path, toy_task, fake_llm, sig):
    archive = tmp_path / "archive"
    replies = iter(range(1, 1000))
    server = fake_llm(default=lambda req: solve(next(replies) / 100), latency_s=0.3)
    proc = start_cli("run", str(toy_task), *fake_run(server, "--budget", "8", "--name", "c"), archive=archive)
    wait_for_calls(archive, "c", 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=150)
    assert proc.returncode == 130, out + err
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert f"interrupted ({name})" in out and "discovery resume c" in out and "Traceback" not in err
    assert cli("resume", "c", archive=archive).returncode == 0
    conn = db(archive, "c")
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == 8
    assert conn.execute("SELECT COUNT(*) FROM candidates WHERE status = 'pending'").fetchone()[0] == 0


@pytest.mark.skipif(
    not docker_works(), reason="needs a Docker engine (its GPU check is a real sandbox error)"
)
def test_exit_code_5_when_the_sandbox_fails_in_a_run_and_in_a_replay(tmp_path, toy_task, fake_llm):
    archive = tmp_path / "archive"
    server = fake_llm(default=solve(1.0))
    ok = cli("run", str(toy_task), *fake_run(server, "--budget", "2", "--name", "g"), archive=archive)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A job that asks for a GPU the engine does not have: the backend fails, not the candidate.
    toml = toy_task / "task.toml"
    toml.write_text(toml.read_text().replace("memory_mb = 512", "memory_mb = 512\ngpus = 1"))
    replay = cli("replay", "g", "--best", "--sandbox", "docker", archive=archive)
    one_line_error(replay, 5, "GPU")
    run = cli(
        "run",
        str(toy_task),
        "--model",
        "openai/fake",
        "--api-base",
        server.api_base,
        "--sandbox",
        "docker",
        "--budget",
        "2",
        "--name",
        "g2",
        archive=archive,
    )
    assert run.returncode == 5, run.stdout + run.stderr
    assert "sandbox failed" in run.stdout


def test_sandbox_check_exits_1_when_no_isolating_backend_works(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("prlimit", "sh", "setpriv"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    import os
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")},
        "PATH": str(bin_dir),
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "sandbox", "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no isolating sandbox works here" in proc.stderr and "Traceback" not in proc.stderr


# ----- read-only reads and bad numbers -------------------------------------------------------------


def _tiny_run(tmp_path: Path, toy_task: Path, fake_llm, name: str = "r") -> Path:
    archive = tmp_path / "archive"
    server = fake_llm(default=solve(1.0))
    proc = cli("run", str(toy_task), *fake_run(server, "--budget", "2", "--name", name), archive=archive)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Not a terminal: one log line per finished candidate, so a batch job can be followed.
    assert "candidate 1 parent - seed: ok score -9 in " in proc.stdout
    assert "candidate 2 parent 1 diff: ok score -4 in " in proc.stdout, proc.stdout
    return archive


def test_files_that_are_not_archives_are_skipped_and_never_written(tmp_path, toy_task, fake_llm):
    archive = _tiny_run(tmp_path, toy_task, fake_llm)
    bad = {"garbage": b"this is not sqlite at all" * 50, "empty": b""}
    for name, data in bad.items():
        (archive / name).mkdir()
        (archive / name / "archive.sqlite").write_bytes(data)
    (archive / "foreign").mkdir()
    foreign = archive / "foreign" / "archive.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = {p: p.read_bytes() for p in archive.glob("*/archive.sqlite") if p.parent.name != "r"}

    listed = cli("archive", "list", "--json", archive=archive)
    assert listed.returncode == 0, listed.stderr
    assert [r["run"] for r in json.loads(listed.stdout)] == ["r"]
    for name in ("garbage", "empty", "foreign"):
        assert f"skipping {name}" in listed.stderr
        shown = cli("archive", "show", name, archive=archive)
        one_line_error(shown, 2, "not a discovery archive")
        assert len(shown.stderr.strip().splitlines()) == 1
    assert cli("archive", "show", "r", archive=archive).returncode == 0
    after = {p: p.read_bytes() for p in before}
    assert after == before  # no WAL switch, no 4 KB header, nothing
    assert not list(archive.glob("foreign/*-wal")) and not list(archive.glob("empty/*-wal"))
    with sqlite3.connect(foreign) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_read_commands_work_on_a_read_only_archive(tmp_path, toy_task, fake_llm):
    archive = _tiny_run(tmp_path, toy_task, fake_llm)
    path = archive / "r" / "archive.sqlite"
    path.chmod(0o444)
    try:
        for args in (("archive", "list"), ("archive", "show", "r"), ("archive", "candidate", "r", "1")):
            proc = cli(*args, archive=archive)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        assert cli("archive", "diff", "r", "1", "2", archive=archive).returncode == 0
        shown = cli("archive", "show", "r", archive=archive).stdout
        assert "exact" in shown  # the toy evaluator is deterministic: one comparison decided the gate
        gate = json.loads(cli("archive", "show", "r", "--json", archive=archive).stdout)["promotions"][0]
        assert gate["test"] == "exact" and gate["p_value"] is None and len(gate["seeds"]) == 2
        assert cli("export", "r", "-o", str(tmp_path / "x.py"), archive=archive).returncode == 0
    finally:
        path.chmod(0o644)


def test_zero_or_negative_limits_are_refused_with_the_flags_name(tmp_path, toy_task, fake_llm):
    archive = _tiny_run(tmp_path, toy_task, fake_llm)
    for flag, value in (
        ("--add-budget", "0"),
        ("--add-budget", "-3"),
        ("--max-time", "0"),
        ("--max-time", "-1"),
    ):
        proc = cli("resume", "r", flag, value, archive=archive)
        one_line_error(proc, 2, flag)
    for flag, value in (("--budget", "0"), ("--budget", "-1"), ("--max-time", "-5"), ("--max-time", "0")):
        proc = cli("run", str(toy_task), *FAKE, flag, value, archive=archive)
        one_line_error(proc, 2, flag)
    assert (
        db(archive, "r").execute("SELECT COUNT(*) FROM events WHERE kind = 'run_resumed'").fetchone()[0] == 0
    )


# ----- no tracebacks, no leftovers -----------------------------------------------------------------


def test_export_makes_missing_folders_and_a_bad_target_or_tolerance_is_a_one_line_error(
    tmp_path, toy_task, fake_llm
):
    archive = _tiny_run(tmp_path, toy_task, fake_llm)
    assert cli("export", "r", "-o", str(tmp_path / "new" / "best.py"), archive=archive).returncode == 0
    assert "def solve" in (tmp_path / "new" / "best.py").read_text()
    (tmp_path / "file").write_text("")
    assert_user_error(
        cli("export", "r", "-o", str(tmp_path / "file" / "best.py"), archive=archive), "cannot write"
    )
    proc = cli("replay", "r", "--tolerance", "-1", archive=archive)
    one_line_error(proc, 2, "--tolerance")
    assert db(archive, "r").execute("SELECT COUNT(*) FROM replays").fetchone()[0] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_start_that_fails_leaves_no_run_folder(tmp_path, toy_task, monkeypatch):
    archive = tmp_path / "archive"
    url = f"http://127.0.0.1:{_free_port()}/v1"
    proc = cli("run", str(toy_task), *FAKE, "--api-base", url, "--name", "dead", archive=archive)
    one_line_error(proc, 2, url)
    assert not (archive / "dead").exists()

    proc = cli(
        "run",
        str(toy_task),
        "--model",
        "nosuchprovider/x",
        "--sandbox",
        "process",
        "--name",
        "u",
        archive=archive,
    )
    one_line_error(proc, 2, "nosuchprovider/x")
    assert not (archive / "u").exists()


def test_a_local_model_that_fails_to_start_is_one_line_and_leaves_nothing(tmp_path, toy_task):
    import os
    import subprocess
    import sys

    broken = tmp_path / "broken.gguf"
    with broken.open("wb") as f:
        f.truncate(1 << 20)  # zeros: llama.cpp cannot load it
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DISCOVERY_")},
        "DISCOVERY_ARCHIVE": str(tmp_path / "archive"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "discovery", "run", str(toy_task), "--model", f"local:{broken}"]
        + ["--sandbox", "process", "--name", "loc"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    one_line_error(proc, 2, f"local model local:{broken} failed to start")
    assert not (tmp_path / "archive" / "loc").exists()


def test_resume_with_another_model_and_api_base(tmp_path, toy_task, fake_llm):
    archive = tmp_path / "archive"
    first = fake_llm(default=Fail(401))
    proc = cli("run", str(toy_task), *fake_run(first, "--budget", "4", "--name", "m"), archive=archive)
    assert proc.returncode == 4
    second = fake_llm(default=solve(2.0))
    resumed = cli("resume", "m", "--model", "openai/other", "--api-base", second.api_base, archive=archive)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    models = dict(db(archive, "m").execute("SELECT model, COUNT(*) FROM llm_calls GROUP BY model").fetchall())
    assert models["openai/fake"] >= 1 and models["openai/other"] >= 1
    config = json.loads(db(archive, "m").execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    assert config["models"][0] == {"name": "openai/other", "weight": 1.0, "api_base": second.api_base}
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    one_line_error(cli("resume", "m", "--api-base", dead, archive=archive), 2, dead)


# ----- tasks ---------------------------------------------------------------------------------------


def test_validate_refuses_a_brief_that_names_a_function_outside_the_block(tmp_path, toy_task):
    toml = toy_task / "task.toml"
    toml.write_text(toml.read_text().replace("from solve()", "from `solve()` (called by `main()`)"))
    bad = cli("tasks", "validate", str(toy_task), archive=tmp_path)
    assert bad.returncode == 1 and "`main()`" in bad.stdout and "`solve()`" not in bad.stdout, bad.stdout
    toml.write_text(toml.read_text().replace(" (called by `main()`)", ""))
    assert cli("tasks", "validate", str(toy_task), archive=tmp_path).returncode == 0
    bundled = Path(__file__).resolve().parents[2] / "tasks" / "circle_packing"
    assert cli("tasks", "validate", str(bundled), archive=tmp_path).returncode == 0


def test_tasks_list_finds_the_bundled_tasks_from_elsewhere_and_takes_a_folder(tmp_path, toy_task):
    import os
    import subprocess
    import sys

    def tasks_list(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "discovery", "tasks", "list", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            timeout=60,
        )

    elsewhere = tasks_list()
    assert elsewhere.returncode == 0 and "circle_packing" in elsewhere.stdout, (
        elsewhere.stdout + elsewhere.stderr
    )
    mine = tasks_list(str(tmp_path))
    assert mine.returncode == 0 and "toy" in mine.stdout and "circle_packing" not in mine.stdout
    one_line_error(tasks_list(str(tmp_path / "none")), 2, "no task folder")


@pytest.mark.skipif(not docker_works(), reason="needs a Docker engine")
def test_sandbox_build_removes_the_image_it_replaces(tmp_path):
    import os

    import docker

    client = docker.from_env()
    name = f"discovery-test-rebuild:{os.getpid()}"
    try:
        cli("sandbox", "build", "--image", name, archive=tmp_path, check=True)
        first = client.images.get(name).id
        cli("sandbox", "build", "--image", name, archive=tmp_path, check=True)
        second = client.images.get(name).id
        assert second != first
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(first)  # not left dangling
    finally:
        try:
            client.images.remove(name, force=True)
        except docker.errors.APIError:
            pass


def test_an_evaluators_own_bug_is_recorded_apart_and_stops_the_run(tmp_path, toy_task, fake_llm):
    evaluator = toy_task / "evaluate.py"
    evaluator.write_text(
        evaluator.read_text().replace(
            "    return {",
            "    if x != 0.0:\n        raise KeyError('the evaluator forgot a key')\n    return {",
        )
    )
    archive = tmp_path / "archive"
    replies = iter(range(1, 1000))
    server = fake_llm(default=lambda req: solve(next(replies) / 100))
    proc = cli(
        "run",
        str(toy_task),
        *fake_run(server, "--budget", "10", "--name", "e", "--eval-slots", "1"),
        archive=archive,
    )
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "evaluator failed on 3 candidates in a row" in proc.stdout
    report = json.loads(cli("archive", "show", "e", "--json", archive=archive).stdout)
    assert report["status_counts"].get("evaluator_failed", 0) >= 3
    assert "failed" not in report["status_counts"]  # nothing charged to the candidates
    conn = db(archive, "e")
    assert conn.execute("SELECT COUNT(*) FROM candidates WHERE operator = 'repair'").fetchone()[0] == 0
    failure = conn.execute("SELECT failure FROM candidates WHERE status = 'evaluator_failed'").fetchone()[0]
    assert "KeyError" in failure and "Traceback" in failure
    assert "evaluator failures" in cli("archive", "show", "e", archive=archive).stdout
    # Fixed, then resumed: the candidates the broken evaluator could not score are scored now.
    stale = conn.execute("SELECT COUNT(*) FROM candidates WHERE status = 'evaluator_failed'").fetchone()[0]
    evaluator.write_text(
        evaluator.read_text().replace("raise KeyError('the evaluator forgot a key')", "pass")
    )
    resumed = cli("resume", "e", archive=archive)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counts = dict(
        db(archive, "e").execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall()
    )
    assert "evaluator_failed" not in counts and counts["ok"] >= stale + 1, counts


def test_archive_candidate_piped_prints_every_line_whole(tmp_path, toy_task, fake_llm):
    archive = tmp_path / "archive"
    long_line = "    x = " + " + ".join(["1"] * 80) + "  # [bold]not markup[/bold]\n"
    server = fake_llm(default=f"```python\ndef solve():\n{long_line}    return 2.0\n```")
    proc = cli("run", str(toy_task), *fake_run(server, "--budget", "1", "--name", "w"), archive=archive)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = cli("archive", "candidate", "w", "2", archive=archive)
    assert shown.returncode == 0
    assert long_line.rstrip("\n") in shown.stdout.splitlines()  # in the code and in the raw reply, uncut
    assert "----- prompt -----" in shown.stdout and "# Task" in shown.stdout


def test_an_unknown_cost_is_shown_as_unknown_not_zero(tmp_path, toy_task, fake_llm):
    archive = _tiny_run(tmp_path, toy_task, fake_llm)  # openai/fake has no price
    assert json.loads(cli("archive", "list", "--json", archive=archive).stdout)[0]["cost_usd"] is None
    assert json.loads(cli("archive", "show", "r", "--json", archive=archive).stdout)["cost_usd"] is None
    shown = cli("archive", "show", "r", archive=archive).stdout
    assert "cost unknown" in shown and "$0.0000" not in shown
    assert "$0.0000" not in cli("archive", "list", archive=archive).stdout


def test_ray_executor_refuses_agent_tasks_before_making_a_run_folder(tmp_path):
    math_agent = Path(__file__).resolve().parents[2] / "tasks" / "math_agent"
    proc = cli(
        "run", str(math_agent), "--model", "openai/fake", "--api-base", "http://127.0.0.1:9",
        "--executor", "ray", "--name", "ra", archive=tmp_path,
    )  # fmt: skip
    one_line_error(proc, 2, "agent tasks run with --executor local")
    assert "Run ra" not in proc.stdout and not (tmp_path / "ra").exists()
