"""A seccomp filter for the bubblewrap backend: the kernel interfaces a candidate has no use for.

Docker applies its own default profile; bubblewrap applies none unless given one (`--seccomp FD`),
so without this a candidate could use the kernel keyring (shared by every job of uid 65534, a
channel from one evaluation to the next), create user namespaces (a large attack surface of the
kernel), ptrace or read other processes' memory, load BPF, or mount file systems. Each of those
returns EPERM here; `clone3` returns ENOSYS, since its flags cannot be inspected and glibc falls
back to `clone`, whose namespace flags can. Only x86-64 is covered: elsewhere `program()` is None
and bubblewrap runs without a filter (logged once).
"""

from __future__ import annotations

import errno
import os
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
DENIED_X86_64 = {
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "acct": 163,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "io_uring_setup": 425,  # io_uring bypasses per-syscall filtering and has a long CVE record
    "io_uring_enter": 426,
    "io_uring_register": 427,
}
CLONE_X86_64 = 56
CLONE3_X86_64 = 435
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
NR_OFFSET, ARCH_OFFSET, ARG0_LOW_OFFSET = 0, 4, 16


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    """One struct sock_filter."""
    return struct.pack("=HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The filter as bytes for `bwrap --seccomp FD`, or None on an architecture it does not cover."""
    if platform.machine() != "x86_64":
        return None
    eperm = RET_ERRNO | errno.EPERM
    insns = [
        _insn(LD_W_ABS, 0, 0, ARCH_OFFSET),
        _insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),  # a foreign ABI would have other numbers
        _insn(LD_W_ABS, 0, 0, NR_OFFSET),
        _insn(JGE_K, 0, 1, X32_SYSCALL_BIT),
        _insn(RET_K, 0, 0, eperm),  # the x32 ABI: same calls, other numbers
    ]
    for number in sorted(DENIED_X86_64.values()):
        insns += [_insn(JEQ_K, 0, 1, number), _insn(RET_K, 0, 0, eperm)]
    insns += [
        _insn(JEQ_K, 0, 1, CLONE3_X86_64),
        _insn(RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
        _insn(JEQ_K, 0, 3, CLONE_X86_64),
        _insn(LD_W_ABS, 0, 0, ARG0_LOW_OFFSET),  # clone's flags (the low 32 bits hold them all)
        _insn(JSET_K, 0, 1, CLONE_NAMESPACE_FLAGS),
        _insn(RET_K, 0, 0, eperm),
        _insn(RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(insns)


def memfd(data: bytes) -> int:
    """A file descriptor holding data at offset 0, for a child to read (inheritable)."""
    fd = os.memfd_create("discovery-seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd
