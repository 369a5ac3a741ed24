"""CandidateProcess: candidate code in a real child process, called over JSON pipes."""

from __future__ import annotations

import ctypes
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "sandboxes"))

from discovery_harness import CandidateError, CandidateProcess, CandidateTimeout  # noqa: E402
from discovery_harness.candidate import make_undumpable  # noqa: E402

PR_GET_DUMPABLE = 3


def write(tmp_path: Path, code: str, name: str = "candidate.py") -> Path:
    """Write candidate source to a file and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_call_and_map_with_numpy_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import numpy as np
        def describe(x, bins, scale=1):
            return [type(bins).__name__, str(bins.dtype), float(x) * scale, bins * 2]
        def best_fit(item, bins):
            return -(bins - item)
        def scalars():
            return np.int64(7), np.float32(0.5), np.bool_(True), {"k": np.arange(3)}
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc:
        assert proc.call("describe", 1.5, np.array([1.0, 2.0]), scale=2) == [
            "ndarray",
            "float64",
            3.0,
            [2.0, 4.0],
        ]
        assert proc.call("describe", np.float64(2), np.arange(2, dtype=np.int32))[:2] == ["ndarray", "int32"]
        assert proc.map("best_fit", [(1.0, np.array([3.0])), (2.0, np.array([2.0, 5.0]))]) == [
            [-2.0],
            [0.0, -3.0],
        ]
        assert proc.call("scalars") == [7, 0.5, True, {"k": [0, 1, 2]}]


def test_exception_comes_back_with_the_candidate_traceback(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        def helper(x):
            raise ValueError(f"bad value {x}")
        def run():
            return helper(42)
        def ok():
            return "still alive"
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc:
        with pytest.raises(CandidateError) as info:
            proc.call("run")
        message = str(info.value)
        assert message.startswith("run() raised ValueError: bad value 42")
        assert f'File "{path}", line 3, in helper' in message
        assert "<string>" not in message  # the bootstrap's frames are hidden
        # An exception does not end the child: later calls still work.
        assert proc.call("ok") == "still alive"


def test_infinite_loop_is_killed_with_its_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    path = write(
        tmp_path,
        f"""
        import subprocess, sys
        def spin():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            while True:
                pass
        """,
    )
    proc = CandidateProcess(path, timeout_s=10).start()
    child_pid = proc._proc.pid
    started = time.monotonic()
    with pytest.raises(CandidateTimeout, match=r"timeout: spin\(\) did not finish within 1 s"):
        proc.call("spin", timeout_s=1.0)
    assert time.monotonic() - started < 9  # the per-call limit applied, not the default
    assert not pid_alive(child_pid)
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the grandchild is reparented and reaped by init: give it a moment
        if not pid_alive(grandchild):
            break
        time.sleep(0.05)
    assert not pid_alive(grandchild)
    with pytest.raises(CandidateError, match="killed after spin"):
        proc.call("spin")
    proc.close()


def test_non_json_result_is_a_candidate_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        def obj():
            return object()
        def circular():
            x = []
            x.append(x)
            return x
        def fine():
            return 1
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc:
        with pytest.raises(
            CandidateError, match=r"result of obj\(\) is not JSON-serialisable: .*type object"
        ):
            proc.call("obj")
        with pytest.raises(CandidateError, match=r"result of circular\(\) is not JSON-serialisable"):
            proc.call("circular")
        assert proc.call("fine") == 1


def test_stdout_junk_does_not_corrupt_the_channel(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        """
        import os, sys
        print('{"id": 1, "ok": true, "result": 999}')
        def noisy():
            print('{"id": 1, "ok": true, "result": 999}')
            sys.stdout.write("partial line without newline")
            sys.stdout.flush()
            os.write(1, b'\\n{"id": 2, "ok": true, "result": 999}\\n')
            return 5
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc:
        assert proc.call("noisy") == 5
        assert proc.call("noisy") == 5
    captured = capfd.readouterr()
    assert '"result": 999' not in captured.out
    assert '"result": 999' in captured.err  # prints land on stderr


def test_forged_reply_on_the_channel_is_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import os, sys
        def forge():
            os.write(int(sys.argv[3]), b'not json at all\\n')
            return 1
        def wrong_id():
            os.write(int(sys.argv[3]), b'{"id": 999, "ok": true, "result": 1}\\n')
            return 1
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc, pytest.raises(CandidateError, match="malformed reply"):
        proc.call("forge")
    with CandidateProcess(path, timeout_s=10) as proc, pytest.raises(CandidateError, match="out-of-protocol"):
        proc.call("wrong_id")


def test_os_exit_and_missing_function_and_import_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        import os
        def die():
            os._exit(3)
        """,
    )
    with CandidateProcess(path, timeout_s=10) as proc:
        with pytest.raises(CandidateError, match="no function nope"):
            proc.call("nope")
        with pytest.raises(CandidateError, match=r"exited with code 3 during die\(\)"):
            proc.call("die")
        with pytest.raises(CandidateError, match="cannot call die"):
            proc.call("die")
    fds_before = len(os.listdir("/proc/self/fd"))
    broken = write(tmp_path, "def f(:\n    pass\n", name="broken.py")
    with pytest.raises(CandidateError, match="importing the candidate raised SyntaxError"):
        with CandidateProcess(broken, timeout_s=10):
            pass
    slow_import = write(tmp_path, "while True:\n    pass\n", name="slow.py")
    with pytest.raises(CandidateTimeout, match="importing the candidate did not finish"):
        CandidateProcess(slow_import, timeout_s=10, start_timeout_s=0.5).start()
    assert len(os.listdir("/proc/self/fd")) == fds_before  # a failed start leaks no pipes


def test_exit_leaving_a_grandchild_and_closed_pipe(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    path = write(
        tmp_path,
        f"""
        import os, subprocess, sys
        def leave():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            os._exit(0)
        def hang_up():
            os.close(int(sys.argv[3]))
            while True:
                pass
        """,
    )
    with (
        CandidateProcess(path, timeout_s=10) as proc,
        pytest.raises(CandidateError, match="exited with code 0"),
    ):
        proc.call("leave")
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        if not pid_alive(grandchild):
            break
        time.sleep(0.05)
    assert not pid_alive(grandchild)
    with (
        CandidateProcess(path, timeout_s=10) as proc,
        pytest.raises(CandidateError, match="closed its reply pipe"),
    ):
        proc.call("hang_up")


def test_oversized_reply_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "def big():\n    return 'x' * 200_000\n")
    with CandidateProcess(path, timeout_s=10, max_reply_bytes=50_000) as proc:
        with pytest.raises(CandidateError, match="larger than 50000 bytes"):
            proc.call("big")


def test_child_gets_a_minimal_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCOVERY_FAKE_API_KEY", "sk-secret")
    path = write(
        tmp_path, "import os, sys\ndef env():\n    return [sorted(os.environ), sys.flags.isolated]\n"
    )
    with CandidateProcess(path, timeout_s=10, env={"EXTRA": "1"}) as proc:
        names, isolated = proc.call("env")
    assert "DISCOVERY_FAKE_API_KEY" not in names
    assert "EXTRA" in names
    assert isolated == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_evaluator_process_is_made_undumpable() -> None:
    assert make_undumpable()
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
    assert os.getpid() > 0  # the process keeps running normally
