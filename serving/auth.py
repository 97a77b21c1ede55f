"""Bearer-token authentication for the API's writes and admin endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadtime.settings import Settings

#: Declares the bearer scheme in the OpenAPI document (``securitySchemes``); the check is ours.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="`Authorization: Bearer $LEADTIME_API_TOKEN`")


def token_guard(settings: Settings) -> Callable[..., None]:
    """A FastAPI dependency refusing requests without ``Authorization: Bearer <api_token>``.

    With no token configured (``LEADTIME_API_TOKEN`` unset) writes are refused (503): secure by
    default rather than open by default. A wrong or missing token is a 401.
    """

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.api_token is None or not settings.api_token.get_secret_value():
            raise HTTPException(503, "writes are disabled: set LEADTIME_API_TOKEN on the server")
        expected = settings.api_token.get_secret_value().encode()
        given = credentials.credentials.strip().encode() if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, expected):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return require_token
