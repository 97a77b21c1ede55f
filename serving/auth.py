"""Bearer-token authentication for the API's writes and admin endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request

from leadtime.settings import Settings


def token_guard(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency refusing requests without ``Authorization: Bearer <api_token>``.

    With no token configured (``LEADTIME_API_TOKEN`` unset) writes are refused (503): secure by
    default rather than open by default.
    """

    def require_token(request: Request) -> None:
        if settings.api_token is None or not settings.api_token.get_secret_value():
            raise HTTPException(503, "writes are disabled: set LEADTIME_API_TOKEN on the server")
        expected = settings.api_token.get_secret_value().encode()
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token
