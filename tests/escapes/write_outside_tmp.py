"""Try to create files everywhere but /tmp: the root, system folders, the mounts and their host paths."""

import os

ATTACK: dict = globals()["ATTACK"]
targets = [
    "/escape.txt",
    "/etc/escape.txt",
    "/usr/escape.txt",
    "/task/escape.txt",
    "/runner/escape.txt",
    "/candidate/escape.txt",
    os.path.join(ATTACK["host_task"], "escape.txt"),
    os.path.join(ATTACK["host_candidate"], "escape.txt"),
    os.path.join(ATTACK["host_dir"], "escape.txt"),
]
wrote = []
for path in targets:
    try:
        with open(path, "w") as fh:
            fh.write("escaped")
        wrote.append(path)
    except OSError:
        pass
print("wrote:", wrote)
SCORE = float(len(wrote))
