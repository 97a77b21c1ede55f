"""HAProxy's runtime API (the stats socket at ``level admin``): read and set server weights.

The socket is a unix path (``/run/haproxy/admin.sock``) or ``host:port`` (``stats socket
ipv4@127.0.0.1:9999 level admin``). One command per connection (HAProxy's non-interactive
mode): send the line, read the answer until HAProxy closes. A refused command (unknown backend
or server, not at admin level) is a :class:`HAProxyError` with HAProxy's own words.
"""

from __future__ import annotations

import re
import socket

MAX_WEIGHT = 256  # HAProxy server weights are 0..256
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class HAProxyError(RuntimeError):
    """The socket is unreachable, or HAProxy refused the command."""


class HAProxyRuntime:
    """A client of one HAProxy stats socket."""

    def __init__(self, address: str, timeout_s: float = 2.0) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def _connect(self) -> socket.socket:
        if ":" in self.address and not self.address.startswith("/"):
            host, port = self.address.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=self.timeout_s)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout_s)
            sock.connect(self.address)
        return sock

    def command(self, line: str) -> str:
        """Send one runtime-API command; HAProxy's answer, stripped."""
        try:
            with self._connect() as sock:
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HAProxyError(f"HAProxy runtime API at {self.address} unreachable: "
                               f"{type(exc).__name__}: {exc}") from None
        return b"".join(chunks).decode(errors="replace").strip()

    @staticmethod
    def _server(backend: str, server: str) -> str:
        if not (_NAME.match(backend) and _NAME.match(server)):
            raise HAProxyError(f"not a backend/server name: {backend!r}/{server!r}")
        return f"{backend}/{server}"

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        """``set server <backend>/<server> weight N`` (N in 0..256)."""
        if not 0 <= weight <= MAX_WEIGHT:
            raise HAProxyError(f"weight {weight} outside 0..{MAX_WEIGHT}")
        answer = self.command(f"set server {self._server(backend, server)} weight {weight}")
        if answer:  # success is an empty answer
            raise HAProxyError(f"HAProxy refused weight {weight} for {backend}/{server}: "
                               f"{answer}")

    def get_weight(self, backend: str, server: str) -> int:
        """The server's current weight (``get weight``: "<current> (initial <n>)")."""
        answer = self.command(f"get weight {self._server(backend, server)}")
        found = re.match(r"^(\d+)", answer)
        if not found:
            raise HAProxyError(f"HAProxy: get weight {backend}/{server}: {answer}")
        return int(found.group(1))


def integer_weights(shares: dict[str, float], scale: int = MAX_WEIGHT) -> dict[str, int]:
    """Shares (sum 1) as HAProxy weights: proportional, the largest at ``scale``, a positive
    share never 0.

    >>> integer_weights({"a": 0.5, "b": 0.25, "c": 0.0})
    {'a': 256, 'b': 128, 'c': 0}
    """
    top = max(shares.values(), default=0.0)
    if top <= 0:
        return {k: 1 for k in shares}  # no information: equal weights
    return {k: (max(1, round(scale * v / top)) if v > 0 else 0) for k, v in shares.items()}
