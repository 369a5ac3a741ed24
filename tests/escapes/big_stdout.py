"""Print 100 MB, to Python's stdout and to file descriptors 1 and 2 directly."""

import os
import sys

ATTACK: dict = globals()["ATTACK"]
chunk = "z" * (1024 * 1024)
for i in range(100):
    sys.stdout.write(chunk)
    os.write(1 if i % 2 else 2, chunk.encode())
SCORE = 1.0
