"""Signal everything: kill(-1), pid 1, the parent, the test process and a host sentinel process."""

import os
import signal

ATTACK: dict = globals()["ATTACK"]
for pid in (ATTACK["sentinel_pid"], ATTACK["test_pid"], 1, os.getppid()):
    try:
        os.kill(pid, signal.SIGKILL)
        print("killed", pid)
    except OSError as exc:
        print("kill", pid, "failed:", exc)
try:
    os.kill(-1, signal.SIGKILL)  # every process we may signal, ourselves included
except OSError as exc:
    print("kill(-1) failed:", exc)
SCORE = 1.0
