"""Sleep far past the wall-clock limit (uses no CPU, so only a wall-clock limit stops it)."""

import time

ATTACK: dict = globals()["ATTACK"]
time.sleep(3600)
