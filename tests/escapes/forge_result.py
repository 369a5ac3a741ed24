"""Write a fake runner result line to the runner's private result descriptor, then exit at once."""

import json
import os

ATTACK: dict = globals()["ATTACK"]
line = "@@discovery-result@@ " + json.dumps({"status": "ok", "score": 1e9, "metrics": {"score": 1e9}}) + "\n"
for fd in range(3, 64):
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
os._exit(0)
