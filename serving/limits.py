"""What a request may carry, checked before any route reads it: the token, then the body's size.

:class:`RequestLimits` is a pure ASGI middleware in front of every route. For each write route
in :data:`ROUTES` it checks the bearer token from the headers *before* the body is read (a
request without the token is a 401 however malformed its body), then reads the body up to the
route's limit: a ``Content-Length`` above it, or a body that grows past it, is a 413 before any
byte is parsed. Any other route may carry at most :data:`OTHER_MAX_BYTES`. Error bodies are the
API's ``ErrorBody`` and never echo the request.

The limits follow from each route's batch bounds with room to spare: a state report holds at
most 100,000 producers (about 80 bytes each), an observation batch 10,000 events and 10,000
samples, a predict batch 1,000 requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from serving.auth import refusal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MiB = 1 << 20


@dataclass(frozen=True)
class Limit:
    """One route's rule: its largest body, and whether it needs the bearer token."""

    max_bytes: int
    token: bool


#: (method, path) → its rule. A route missing here gets :data:`OTHER_MAX_BYTES` and no
#: early token check (its ``token_guard`` dependency still applies).
ROUTES: dict[tuple[str, str], Limit] = {
    ("POST", "/v1/producers/state"): Limit(12 * MiB, token=True),
    ("POST", "/v1/observations"): Limit(12 * MiB, token=True),
    ("POST", "/v1/admin/reload"): Limit(64 * 1024, token=True),
    ("POST", "/v1/requests/predict"): Limit(2 * MiB, token=False),
    ("POST", "/v1/requests/progress"): Limit(4 * MiB, token=True),
}
OTHER_MAX_BYTES = 64 * 1024


async def _answer(send: Send, status: int, detail: str,
                  headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """The ASGI middleware of the module docstring; ``settings`` holds the API token."""

    def __init__(self, app: Callable[..., Awaitable[None]], settings: Any) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        rule = ROUTES.get((method, path))
        headers = dict(scope.get("headers") or [])
        if rule is not None and rule.token:
            authorization = headers.get(b"authorization")
            refused = refusal(self.settings,
                              authorization.decode("latin-1") if authorization else None)
            if refused is not None:
                status, detail = refused
                await _answer(send, status, detail,
                              [(b"www-authenticate", b"Bearer")] if status == 401 else [])
                return
        limit = rule.max_bytes if rule is not None else OTHER_MAX_BYTES
        too_large = (f"the body is larger than {limit:,} bytes, the limit of {method} {path}; "
                     "send it in smaller batches")
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _answer(send, 413, too_large)
            return
        if method in ("GET", "HEAD") and length is None:  # no body: nothing to read first
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            size += len(message.get("body", b""))
            if size > limit:
                await _answer(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
