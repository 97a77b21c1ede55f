"""A network guard for a child process: any connection or name lookup beyond loopback is refused
and written to ``$LEADTIME_NET_GUARD_LOG`` (one line each), so a test can assert there were none.

Put this folder first on ``PYTHONPATH``; Python imports ``sitecustomize`` at start-up, in every
process that inherits the environment (Prefect's and MLflow's servers included).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import traceback

LOG = os.environ.get("LEADTIME_NET_GUARD_LOG")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _loopback(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _refuse(what: str) -> None:
    if LOG:
        stack = "".join(traceback.format_stack(limit=12)[:-2]).replace("\n", " | ")
        with open(LOG, "a") as out:
            out.write(f"{os.getpid()} {what} :: {stack}\n")
    raise OSError(f"network guard: {what} is outside loopback")


_getaddrinfo = socket.getaddrinfo
_gethostbyname = socket.gethostbyname
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def getaddrinfo(host, *args, **kwargs):
    if not _loopback(host):
        _refuse(f"name lookup of {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if not _loopback(host):
        _refuse(f"name lookup of {host!r}")
    return _gethostbyname(host)


def _checked(sock, address) -> None:
    inet = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
    if inet and not _loopback(address[0]):
        _refuse(f"connection to {address[0]}:{address[1]}")


def connect(self, address):
    _checked(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _checked(self, address)
    return _connect_ex(self, address)


if LOG:
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
