"""Look for any network interface besides loopback, without sending a packet."""

import os
import socket

ATTACK: dict = globals()["ATTACK"]
names = {name for _index, name in socket.if_nameindex()}
try:
    names |= set(os.listdir("/sys/class/net"))
except OSError:
    pass
print("interfaces:", sorted(names))
SCORE = float(len(names - {"lo"}))
