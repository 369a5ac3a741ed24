"""Cheat: read the speedrun corpus through /proc/self/root, another spelling of the same file."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
STOLEN = b""
for entry in list(sys.path):
    target = "/proc/self/root" + os.path.join(os.path.abspath(entry), "data", "corpus.txt")
    if os.path.isfile(target):
        try:
            with open(target, "rb") as fh:
                STOLEN = fh.read()
        except OSError:  # a refusal is swallowed; the harness has recorded it anyway
            pass

from speedrun_model import build_model, build_optimizer, lr_multiplier  # noqa: E402,F401
