"""Open a TCP connection to the test's listener on 127.0.0.1 and announce the escape."""

import socket

ATTACK: dict = globals()["ATTACK"]
SCORE = 0.0
try:
    with socket.create_connection(("127.0.0.1", ATTACK["port"]), timeout=2) as conn:
        conn.sendall(b"escaped")
        SCORE = 1.0
except OSError as exc:
    print("connect failed:", exc)
