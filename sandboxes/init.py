"""PID 1 of a Docker sandbox: runs the job, keeps the container's output private, and is the backstop.

Usage: python3 -I -S init.py SECONDS COMMAND [ARG...]

Docker's PID 1 holds the container's stdout and stderr, the stream that carries the runner's
result line. Coreutils `timeout` used to be PID 1; it runs as the job's uid and is dumpable, so
any process of the job could open /proc/1/fd/1 and add lines, which fail the runner's honest
result. This init marks itself non-dumpable before it starts anything: its /proc files then belong
to root and ptrace is refused, so the stream is reached only through the runner's private copy
(the runner makes itself non-dumpable too). It refuses to start the job if that fails.

It is also the backstop for a host that is gone: SECONDS after the start it SIGKILLs every process
in the container and exits 137, as `timeout -s KILL` did. Otherwise it reaps orphans, and exits
with the job's status (128 + N when a signal N ended it). From inside the container PID 1 receives
only the signals it handles: SIGALRM (its own timer; a job that sends it only ends itself early).
Python's SIGINT handler is turned off, so a job cannot raise KeyboardInterrupt in here.
"""

import ctypes
import os
import signal
import sys

PR_SET_DUMPABLE = 4
EXIT_SETUP_FAILED = 125  # as `timeout` and `env` do when they cannot run the command
EXIT_KILLED = 128 + signal.SIGKILL
# Python ignores these at start-up; the job gets the defaults back, as from any other init.
RESET_SIGNALS = (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ)


def undumpable() -> bool:
    """Mark this process non-dumpable: same-uid processes can no longer open /proc/1/fd or ptrace it."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def kill_everything(_signum: int, _frame: object) -> None:
    """The backstop fired: SIGKILL every other process in the container, then end the container."""
    os.kill(-1, signal.SIGKILL)
    os._exit(EXIT_KILLED)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal that ended the job."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    """Start argv[2:] with a backstop of argv[1] seconds; return its exit code."""
    if os.getpid() != 1:
        # kill(-1) from anywhere else would reach every process of this uid on the machine.
        print("discovery init: runs only as PID 1 of a container", file=sys.stderr)
        return EXIT_SETUP_FAILED
    if len(argv) < 3 or not undumpable():
        print("discovery init: cannot start the job (usage, or prctl failed)", file=sys.stderr)
        return EXIT_SETUP_FAILED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, kill_everything)
    signal.setitimer(signal.ITIMER_REAL, float(argv[1]))
    command = argv[2:]
    try:
        child = os.posix_spawnp(command[0], command, dict(os.environ), setsigdef=RESET_SIGNALS)
    except OSError as exc:
        print(f"discovery init: cannot start {command[0]}: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    while True:
        pid, status = os.wait()  # reaps orphans re-parented to PID 1 as well
        if pid == child:
            return exit_code(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
