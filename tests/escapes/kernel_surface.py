"""Reach for kernel interfaces a sandbox should refuse: the keyring (a channel between jobs of one
uid) and user namespaces (a large kernel attack surface) via unshare and clone. x86-64 numbers;
SCORE is how many of them worked, and each outcome is printed to stderr. (ptrace is not tried:
Docker's default profile allows it, and inside a one-job sandbox there is nothing else to trace.)"""

import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
KEY_SPEC_SESSION_KEYRING, KEYCTL_JOIN_SESSION_KEYRING = -3, 1


def attempt(name, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(*args)
    print(name, "->", rc, os.strerror(ctypes.get_errno()) if rc < 0 else "worked", file=sys.stderr)
    return rc


worked = 0
worked += attempt("keyctl(JOIN_SESSION_KEYRING)", 250, KEYCTL_JOIN_SESSION_KEYRING, None) >= 0
worked += attempt("add_key", 248, b"user", b"discovery-escape", b"data", 4, KEY_SPEC_SESSION_KEYRING) >= 0
pid = attempt("clone(CLONE_NEWUSER)", 56, CLONE_NEWUSER | SIGCHLD, None, None, None, None)
if pid == 0:
    os._exit(0)  # the child, in its new user namespace
if pid > 0:
    os.waitpid(pid, 0)
    worked += 1
worked += attempt("unshare(CLONE_NEWUSER)", 272, CLONE_NEWUSER) >= 0  # last: it changes this process
SCORE = float(worked)
