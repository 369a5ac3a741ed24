"""Confine this process (and every process it starts) to a few folders with Linux Landlock.

A coding agent runs in the same sandbox as its evaluator, as the same user: the sandbox alone
cannot stop it from reading the task folder (the reference solutions, the generator of the hidden
tests) or writing outside its copy of a repository. Landlock lets an unprivileged process give up
file access for itself and its descendants, irrevocably: after `confine(write=[repo])` the process
may read only the system and Python folders, may read and write only `repo`, and sees nothing else
(no task folder, no other /tmp folder). On kernels of Landlock ABI 6 or later it also may not send
signals to processes outside its domain (the evaluator) or reach abstract Unix sockets.

Standard library only (ctypes syscalls); x86-64 and arm64 share the syscall numbers.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1, 2, 4, 8
_READ = _EXECUTE | _READ_FILE | _READ_DIR
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2
# Folders every Python process needs to read (whichever exist here).
_SYSTEM = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/dev")


def _fs_access(abi: int) -> int:
    """Every file-system right this Landlock ABI can take away."""
    rights = (1 << 13) - 1  # ABI 1: execute .. make_sym
    if abi >= 2:
        rights |= 1 << 13  # refer
    if abi >= 3:
        rights |= 1 << 14  # truncate
    if abi >= 5:
        rights |= 1 << 15  # ioctl_dev
    return rights


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or blocked (seccomp)."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def _inside(path: str, folder: str) -> bool:
    """Whether path is folder or lies beneath it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def readable_folders(extra: list[str], hidden: list[str]) -> list[str]:
    """System and Python folders plus `extra`, minus any that is, holds or lies in a hidden folder."""
    python = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # discovery_harness's parent
    wanted = {os.path.realpath(p) for p in (*_SYSTEM, *python, here, *extra) if os.path.isdir(p)}
    secret = [os.path.realpath(h) for h in hidden]
    return sorted(p for p in wanted if not any(_inside(p, h) or _inside(h, p) for h in secret))


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    """Allow `access` beneath `path` in the ruleset."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(struct.pack("=Qi", access, fd))
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, attr, 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def confine(write: list[str], read: list[str], hidden: list[str]) -> bool:
    """Restrict this process to reading the system, Python and `read`, and writing `write`.

    `hidden` folders (and their parents) are never made readable, even if named. Returns False,
    changing nothing, where the kernel has no Landlock (the caller must report it); raises OSError
    if Landlock is there but a step fails (never leaves the process half confined without saying).
    """
    abi = landlock_abi()
    if abi < 1:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    access = _fs_access(abi)
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", access, 0, scoped) if abi >= 6 else struct.pack("=Q", access)
    buf = ctypes.create_string_buffer(attr)
    ruleset = libc.syscall(_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        for path in readable_folders(read, hidden):
            _add_rule(libc, ruleset, path, _READ & access)
        for path in write:
            _add_rule(libc, ruleset, os.path.realpath(path), access)
        if os.path.isdir("/dev"):
            _add_rule(libc, ruleset, "/dev", _WRITE_FILE)  # /dev/null as a subprocess's output
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return True
