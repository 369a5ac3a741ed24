"""Start threads until the kernel refuses one (RLIMIT_NPROC or the pids cgroup), then hold them:
if that limit were shared with other jobs (one uid for all), a neighbour could start nothing."""

import threading
import time

ATTACK: dict = globals()["ATTACK"]
threading.stack_size(64 * 1024)  # small stacks: the task limit, not the address space, must stop it
stop = threading.Event()
held = 0
while held < 4096:
    try:
        threading.Thread(target=stop.wait, daemon=True).start()
    except RuntimeError:  # "can't start new thread": the limit is reached
        break
    held += 1
time.sleep(float(ATTACK.get("hold_s", 8)))
SCORE = float(held)
