"""A bounded fork bomb (2^12 processes at most, so a failed containment cannot take the host down)."""

import os
import time

ATTACK: dict = globals()["ATTACK"]
for _ in range(12):
    os.fork()  # raises BlockingIOError once the pid limit is reached
time.sleep(20)
