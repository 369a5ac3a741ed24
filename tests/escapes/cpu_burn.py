"""Spin on the CPU forever: with a CPU-time limit below the wall clock, RLIMIT_CPU stops it first
(the test lowers that limit), and that stop must read as a timeout, not as a crash."""

while True:
    pass
