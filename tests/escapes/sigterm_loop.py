"""Ignore SIGTERM (and SIGINT, SIGHUP) and spin forever."""

import signal

ATTACK: dict = globals()["ATTACK"]
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
while True:
    pass
