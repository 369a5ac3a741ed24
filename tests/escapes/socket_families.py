"""Open sockets of families a candidate never needs: AF_ALG (the kernel's crypto API), AF_VSOCK (to
the hypervisor), AF_PACKET, and netlink beyond NETLINK_ROUTE (sock_diag, uevent, audit, netfilter,
generic, xfrm): kernel attack surface with no use in an evaluation. SCORE is how many opened; each
outcome goes to stderr. The families Python itself uses must still work, or this raises."""

import socket
import sys

AF_ALG, AF_VSOCK, AF_PACKET, AF_NETLINK = 38, 40, 17, 16
UNNEEDED = {
    "AF_ALG": (AF_ALG, socket.SOCK_SEQPACKET, 0),
    "AF_VSOCK": (AF_VSOCK, socket.SOCK_STREAM, 0),
    "AF_PACKET": (AF_PACKET, socket.SOCK_DGRAM, 0),
    "NETLINK_SOCK_DIAG": (AF_NETLINK, socket.SOCK_RAW, 4),
    "NETLINK_AUDIT": (AF_NETLINK, socket.SOCK_RAW, 9),
    "NETLINK_NETFILTER": (AF_NETLINK, socket.SOCK_RAW, 12),
    "NETLINK_KOBJECT_UEVENT": (AF_NETLINK, socket.SOCK_DGRAM, 15),
    "NETLINK_GENERIC": (AF_NETLINK, socket.SOCK_RAW, 16),
    "NETLINK_XFRM": (AF_NETLINK, socket.SOCK_RAW, 6),
}
NEEDED = {
    "AF_UNIX": (socket.AF_UNIX, socket.SOCK_STREAM, 0),
    "AF_INET": (socket.AF_INET, socket.SOCK_STREAM, 0),
    "AF_INET6": (socket.AF_INET6, socket.SOCK_DGRAM, 0),
    "NETLINK_ROUTE": (AF_NETLINK, socket.SOCK_RAW, 0),
}


def opens(name, family, kind, protocol):
    try:
        socket.socket(family, kind, protocol).close()
    except OSError as exc:
        print(name, "->", exc, file=sys.stderr)
        return False
    print(name, "-> opened", file=sys.stderr)
    return True


for name, args in NEEDED.items():
    if not opens(name, *args):
        raise RuntimeError(f"{name} is needed by Python and must stay allowed")
for end in socket.socketpair():
    end.close()
socket.if_nameindex()  # glibc asks NETLINK_ROUTE for the interfaces, as getaddrinfo(AI_ADDRCONFIG) does
SCORE = float(sum(opens(name, *args) for name, args in UNNEEDED.items()))
