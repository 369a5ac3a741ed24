"""A seccomp filter for the bubblewrap backend: the kernel interfaces a candidate has no use for.

Docker applies its own default profile; bubblewrap applies none unless given one (`--seccomp FD`),
so without this a candidate could use the kernel keyring (shared by every job of uid 65534, a
channel from one evaluation to the next), create user namespaces (a large attack surface of the
kernel), ptrace or read other processes' memory, load BPF, or mount file systems. Each of those
returns EPERM here; `clone3` returns ENOSYS, since its flags cannot be inspected and glibc falls
back to `clone`, whose namespace flags can.

Sockets: only the families a Python job uses are allowed (AF_UNIX for pipes, multiprocessing and
the agent gateway; AF_INET/AF_INET6, which find nothing in the empty network namespace; AF_NETLINK
with NETLINK_ROUTE only, which glibc's getaddrinfo and getifaddrs use). Every other family
(AF_ALG crypto, AF_VSOCK to the hypervisor, AF_PACKET, the other netlink protocols: audit, uevent,
sock_diag, netfilter, xfrm...) returns EAFNOSUPPORT, as on a kernel built without it, so libraries
that probe them fall back quietly.

The filter is built for x86-64 and aarch64 (each with its own syscall numbers and audit arch);
elsewhere `program()` is None and bubblewrap runs without a filter (logged once).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import platform
import struct

DENIED = (
    "add_key",
    "request_key",
    "keyctl",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "io_uring_setup",  # io_uring bypasses per-syscall filtering and has a long CVE record
    "io_uring_enter",
    "io_uring_register",
)


@dataclasses.dataclass(frozen=True)
class Arch:
    """One architecture's audit value and syscall numbers (the names in DENIED plus the inspected ones)."""

    audit: int
    numbers: dict[str, int]
    x32_bit: int | None = None  # x86-64 only: the x32 ABI reaches the same calls with this bit set


# arch/x86/entry/syscalls/syscall_64.tbl
X86_64 = Arch(
    audit=0xC000003E,
    x32_bit=0x40000000,
    numbers={
        "add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
        "pivot_root": 155, "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "clone": 56, "clone3": 435, "socket": 41, "socketpair": 53,
    },
)  # fmt: skip
# include/uapi/asm-generic/unistd.h (aarch64 has no legacy calls and no socketcall)
AARCH64 = Arch(
    audit=0xC00000B7,
    numbers={
        "add_key": 217, "request_key": 218, "keyctl": 219, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "clone": 220, "clone3": 435, "socket": 198, "socketpair": 199,
    },
)  # fmt: skip
ARCHES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
ALLOWED_FAMILIES = (AF_UNIX, AF_INET, AF_INET6)
NETLINK_ROUTE = 0

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (low word first)
NR_OFFSET, ARCH_OFFSET, ARGS_OFFSET = 0, 4, 16
EPERM = RET_ERRNO | errno.EPERM


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    """One struct sock_filter."""
    return struct.pack("=HBBI", code, jt, jf, k)


def _arg_low(index: int) -> bytes:
    """Load the low 32 bits of syscall argument `index` (the whole of an int argument)."""
    return _insn(LD_W_ABS, 0, 0, ARGS_OFFSET + 8 * index)


def _socket_check() -> list[bytes]:
    """With A = socket's domain unloaded: allow the needed families, refuse the rest; always returns."""
    refuse = RET_ERRNO | errno.EAFNOSUPPORT
    n = len(ALLOWED_FAMILIES)
    # Layout: load domain, n family tests, netlink test, load protocol, route test, allow, refuse.
    insns = [_arg_low(0)]
    for i, family in enumerate(ALLOWED_FAMILIES):
        insns.append(_insn(JEQ_K, (n - i - 1) + 3, 0, family))  # jump to allow
    insns += [
        _insn(JEQ_K, 0, 3, AF_NETLINK),  # not netlink: refuse
        _arg_low(2),
        _insn(JEQ_K, 0, 1, NETLINK_ROUTE),
        _insn(RET_K, 0, 0, RET_ALLOW),
        _insn(RET_K, 0, 0, refuse),
    ]
    return insns


def assemble(arch: Arch) -> bytes:
    """The filter for one architecture, as an array of struct sock_filter."""
    nr = arch.numbers
    insns = [
        _insn(LD_W_ABS, 0, 0, ARCH_OFFSET),
        _insn(JEQ_K, 1, 0, arch.audit),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),  # a foreign ABI (x86 on x86-64, arm32 on arm64): other numbers
        _insn(LD_W_ABS, 0, 0, NR_OFFSET),
    ]
    if arch.x32_bit is not None:
        insns += [_insn(JGE_K, 0, 1, arch.x32_bit), _insn(RET_K, 0, 0, EPERM)]
    for number in sorted(nr[name] for name in DENIED):
        insns += [_insn(JEQ_K, 0, 1, number), _insn(RET_K, 0, 0, EPERM)]
    sockets = _socket_check()
    insns += [
        _insn(JEQ_K, 0, 1, nr["clone3"]),
        _insn(RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
        _insn(JEQ_K, 1, 0, nr["socket"]),
        _insn(JEQ_K, 0, len(sockets), nr["socketpair"]),
        *sockets,
        _insn(JEQ_K, 0, 3, nr["clone"]),
        _arg_low(0),  # clone's flags (the low 32 bits hold them all, on both arches)
        _insn(JSET_K, 0, 1, CLONE_NAMESPACE_FLAGS),
        _insn(RET_K, 0, 0, EPERM),
        _insn(RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(insns)


def program(machine: str | None = None) -> bytes | None:
    """The filter for this host (or `machine`) for `bwrap --seccomp FD`; None on an uncovered arch."""
    arch = ARCHES.get(machine or platform.machine())
    return assemble(arch) if arch is not None else None


def memfd(data: bytes) -> int:
    """A file descriptor holding data at offset 0, for a child to read (inheritable)."""
    fd = os.memfd_create("discovery-seccomp", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd
