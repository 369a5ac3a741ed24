"""Double-fork and setsid() a daemon that outlives the evaluation and keeps calling the listener."""

import os
import sys
import time

ATTACK: dict = globals()["ATTACK"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in (0, 1, 2):
            try:
                os.close(fd)
            except OSError:
                pass
        # Carry the marker in argv so the host test can look for survivors with ps.
        code = (
            "import socket, sys, time\n"
            "for _ in range(600):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1).sendall(b'daemon')\n"
            "    except OSError:\n"
            "        pass\n"
            "    time.sleep(0.1)\n"
        )
        os.execv(sys.executable, [sys.executable, "-c", code, str(ATTACK["port"]), ATTACK["marker"]])
    os._exit(0)
os.wait()
time.sleep(0.3)  # let the daemon get going before the evaluation ends
SCORE = 1.0
