"""Allocate and touch memory until something stops it."""

ATTACK: dict = globals()["ATTACK"]
blocks = []
for _ in range(256):  # 8 GiB at most
    blocks.append(bytearray(32 * 1024 * 1024))
SCORE = float(len(blocks))
