"""The seccomp program for each covered architecture, run in a small classic-BPF interpreter.

Only x86-64 can load it here (tests/sandbox/test_sandbox_escapes.py does, in bwrap); aarch64 is
checked by assembling its program and running it on seccomp_data records as the kernel would.
"""

from __future__ import annotations

import errno
import struct

import pytest

from discovery.sandbox import seccomp

ALLOW, KILL = seccomp.RET_ALLOW, seccomp.RET_KILL_PROCESS
EPERM = seccomp.RET_ERRNO | errno.EPERM
ENOSYS = seccomp.RET_ERRNO | errno.ENOSYS
EAFNOSUPPORT = seccomp.RET_ERRNO | errno.EAFNOSUPPORT
AF_ALG, AF_VSOCK, AF_PACKET, NETLINK_SOCK_DIAG, NETLINK_KOBJECT_UEVENT = 38, 40, 17, 4, 15


def seccomp_data(arch: int, nr: int, *args: int) -> bytes:
    """struct seccomp_data as the kernel lays it out on a little-endian machine."""
    padded = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, 0, *padded)


def run_filter(program: bytes, data: bytes) -> int:
    """Execute a classic BPF seccomp filter (the opcodes seccomp.py uses) and return its verdict."""
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert len(insns) <= 4096
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == seccomp.LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.RET_K:
            return k
        elif code in (seccomp.JEQ_K, seccomp.JGE_K, seccomp.JSET_K):
            taken = {seccomp.JEQ_K: acc == k, seccomp.JGE_K: acc >= k, seccomp.JSET_K: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_each_denied_call_is_refused_with_eperm_and_others_pass(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    program = seccomp.program(machine)
    assert program is not None
    for name in seccomp.DENIED:
        assert run_filter(program, seccomp_data(arch.audit, arch.numbers[name])) == EPERM, name
    assert run_filter(program, seccomp_data(arch.audit, arch.numbers["clone3"])) == ENOSYS
    refused = {arch.numbers[name] for name in seccomp.DENIED} | {arch.numbers["clone3"]}
    for nr in range(0, 460):
        if nr not in refused and nr not in (arch.numbers["socket"], arch.numbers["socketpair"]):
            assert run_filter(program, seccomp_data(arch.audit, nr, 0x11)) == ALLOW, nr


def test_aarch64_numbers_are_its_own_not_x86_64s() -> None:
    program = seccomp.program("aarch64")
    assert program is not None
    audit = seccomp.AARCH64.audit
    assert run_filter(program, seccomp_data(audit, 219)) == EPERM  # keyctl on arm64
    assert run_filter(program, seccomp_data(audit, 250)) == ALLOW  # keyctl's x86-64 number: another call
    assert run_filter(program, seccomp_data(audit, 97)) == EPERM  # unshare on arm64


@pytest.mark.parametrize(("machine", "foreign"), [("x86_64", 0x40000003), ("aarch64", 0x40000028)])
def test_a_foreign_abi_is_killed(machine: str, foreign: int) -> None:
    # i386 on x86-64, arm32 on arm64: other syscall numbers, so the process is killed outright.
    program = seccomp.program(machine)
    assert program is not None
    assert run_filter(program, seccomp_data(foreign, 1)) == KILL
    assert run_filter(program, seccomp_data(seccomp.ARCHES[machine].audit ^ 0xFF, 1)) == KILL


def test_x32_calls_are_refused_on_x86_64() -> None:
    program = seccomp.program("x86_64")
    assert program is not None
    assert run_filter(program, seccomp_data(seccomp.X86_64.audit, 0x40000000 | 39)) == EPERM


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_clone_with_namespace_flags_is_refused(machine: str) -> None:
    arch = seccomp.ARCHES[machine]
    program = seccomp.program(machine)
    assert program is not None
    clone = arch.numbers["clone"]
    assert run_filter(program, seccomp_data(arch.audit, clone, 0x01200011)) == ALLOW  # glibc's fork()
    assert run_filter(program, seccomp_data(arch.audit, clone, 0x003D0F00)) == ALLOW  # a thread
    assert run_filter(program, seccomp_data(arch.audit, clone, 0x10000000 | 17)) == EPERM  # CLONE_NEWUSER
    assert run_filter(program, seccomp_data(arch.audit, clone, 0x40000000 | 17)) == EPERM  # CLONE_NEWNET


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_only_the_socket_families_python_needs_are_allowed(machine: str, call: str) -> None:
    arch = seccomp.ARCHES[machine]
    program = seccomp.program(machine)
    assert program is not None
    nr = arch.numbers[call]
    for family in (seccomp.AF_UNIX, seccomp.AF_INET, seccomp.AF_INET6):
        assert run_filter(program, seccomp_data(arch.audit, nr, family, 1, 0)) == ALLOW, family
    route = seccomp_data(arch.audit, nr, seccomp.AF_NETLINK, 3, seccomp.NETLINK_ROUTE)
    assert run_filter(program, route) == ALLOW
    for protocol in (NETLINK_SOCK_DIAG, NETLINK_KOBJECT_UEVENT, 9, 12, 16):
        data = seccomp_data(arch.audit, nr, seccomp.AF_NETLINK, 3, protocol)
        assert run_filter(program, data) == EAFNOSUPPORT, protocol
    for family in (AF_ALG, AF_VSOCK, AF_PACKET, 0, 3, 15, 44, 45, 0xFFFF):
        assert run_filter(program, seccomp_data(arch.audit, nr, family, 1, 0)) == EAFNOSUPPORT, family


def test_no_filter_on_an_uncovered_architecture() -> None:
    assert seccomp.program("riscv64") is None
    assert seccomp.program("x86_64") == seccomp.program("amd64")
