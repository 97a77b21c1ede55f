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

WRITES_DISABLED = "writes are disabled: set LEADTIME_API_TOKEN on the server"
WRONG_TOKEN = "missing or wrong bearer token"


def refusal(settings: Settings, authorization: str | None) -> tuple[int, str] | None:
    """Why a request with this ``Authorization`` header may not write, or None when it may.

    With no token configured (``LEADTIME_API_TOKEN`` unset) writes are refused (503): secure by
    default rather than open by default. A wrong or missing token is a 401.
    """
    if settings.api_token is None or not settings.api_token.get_secret_value():
        return 503, WRITES_DISABLED
    scheme, _, given = (authorization or "").partition(" ")
    expected = settings.api_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return 401, WRONG_TOKEN
    return None


def token_guard(settings: Settings) -> Callable[..., None]:
    """A FastAPI dependency refusing requests without ``Authorization: Bearer <api_token>``
    (see :func:`refusal`). ``serving.limits`` runs the same check before the body is read;
    this dependency declares the scheme in the OpenAPI document and guards any route the
    middleware's table misses."""

    def require_token(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        refused = refusal(settings, header)
        if refused is not None:
            status, detail = refused
            raise HTTPException(status, detail, headers={"WWW-Authenticate": "Bearer"}
                                if status == 401 else None)

    return require_token
