"""The API's contract pieces shared by every router: one error body, the statuses each route
documents, strict body validation, and request schemas published for routes that validate their
own body.

Every error the API answers has the same shape, :class:`ErrorBody`: ``detail`` is one sentence,
or (422) the list of what is wrong, each item's ``loc`` naming the field from ``body``. Routes
declare the statuses they can answer with :func:`responses`, so the OpenAPI document lists them
all; ``tests/serving/test_api_schemathesis.py`` holds the API to that document.

Routes whose body must be validated strictly, or against a schema known only at run time (the
Tier 2 champion's request fields), read the raw body and validate it themselves
(:func:`validate_json`); :func:`raw_body` puts a reference to their schema in the route's
OpenAPI entry and :func:`install_schemas` fills the components in when the document is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorItem(BaseModel):
    """One thing wrong with a request: where (``loc``), what (``msg``) and its kind."""

    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str | list[ErrorItem] = Field(
        description="One sentence saying what is wrong and what to do, or (422) the list of "
                    "invalid fields.")


DESCRIPTIONS = {
    400: "The body could not be read (not decodable).",
    401: "Missing or wrong `Authorization: Bearer <token>`.",
    403: "Not allowed.",
    404: "No such resource (the sentence names it).",
    409: "Conflicts with the current state.",
    413: "The body is larger than the route's limit (checked before it is parsed).",
    422: "The request is malformed; each item's `loc` names the field (at most "
         "10 items, nothing of the request echoed).",
    429: "Too many requests of this kind are waiting; retry after `Retry-After` seconds.",
    503: "Not available now (no configuration, no champion, or writes disabled: "
         "LEADTIME_API_TOKEN unset); the sentence says which.",
}

#: What a write or admin route adds: auth (401), its body limit (413) and writes disabled
#: without a token (503).
GUARDED = (401, 413, 503)

#: At most this many items in a 422's ``detail``; the rest are counted in one more item.
MAX_ITEMS = 10


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering ``codes`` besides 200, all with :class:`ErrorBody`."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]}
            for code in sorted(set(codes))}


def error_items(exc: ValidationError, root: str = "body") -> list[dict[str, Any]]:
    """Pydantic's errors as :class:`ErrorItem` dicts, ``loc`` starting at ``root``."""
    return [{"loc": [root, *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)]


def _short(part: Any) -> str | int:
    text = part if isinstance(part, int) and not isinstance(part, bool) else str(part)
    return text if isinstance(text, int) or len(text) <= 64 else text[:61] + "..."


def bounded(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most :data:`MAX_ITEMS` items, each ``loc`` part and message cut short: a 422 stays
    small however large or hostile the body (a field name is the client's own text)."""
    out = [{"loc": [_short(p) for p in item["loc"][:8]], "msg": str(item["msg"])[:200],
            "type": str(item["type"])[:64]} for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        out.append({"loc": ["body"], "msg": f"and {len(items) - MAX_ITEMS:,} more errors",
                    "type": "too_many_errors"})
    return out


def unprocessable(items: list[dict[str, Any]]) -> Response:
    return Response(orjson.dumps({"detail": bounded(items)}), status_code=422,
                    media_type="application/json")


def install_validation_answer(app: FastAPI) -> None:
    """FastAPI's own 422 (bodies, queries and paths it validates) without the input echoed and
    bounded (:func:`bounded`): the default answer copies the input back, and fails with a 500
    when the input holds a number JSON cannot encode (``NaN``, ``1e400``)."""
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return unprocessable([{"loc": list(err.get("loc", ("body",))),
                               "msg": err.get("msg", "invalid"), "type": err.get("type", "")}
                              for err in exc.errors()])


async def read_json(request: Request) -> tuple[Any, Response | None]:
    """The decoded JSON body, or the 422 answer saying it is not JSON."""
    raw = await request.body()
    if not raw:
        return None, unprocessable([{"loc": ["body"], "msg": "a JSON body is required",
                                     "type": "missing"}])
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, unprocessable([{"loc": ["body"], "msg": f"invalid JSON: {exc}",
                                     "type": "json_invalid"}])


async def validate_json(request: Request, model: type[BaseModel],
                        context: dict[str, Any] | None = None) -> tuple[Any, Response | None]:
    """``model`` validated strictly from the raw body (JSON mode: ISO date-time strings and
    integers for floats are accepted, nothing else is coerced), or the 422 answer; ``context``
    reaches the model's validators (e.g. ``now`` for timestamp ranges)."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null", strict=True, context=context), None
    except ValidationError as exc:
        items = error_items(exc)
        if raw and any(i["type"] == "json_invalid" for i in items):
            items = [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}]
        return None, unprocessable(items)


def raw_body(schema: str, description: str) -> dict[str, Any]:
    """The ``openapi_extra=`` of a route validating its own body against component ``schema``."""
    return {"requestBody": {
        "required": True, "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def component_schemas(name: str, adapter: TypeAdapter) -> dict[str, Any]:
    """``adapter``'s JSON schema as OpenAPI components: ``name`` and the models it refers to."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, name: schema}


def install_schemas(app: FastAPI, schemas: Callable[[], dict[str, Any]],
                    key: Callable[[], Any] = lambda: None) -> None:
    """Build the OpenAPI document with the components ``schemas()`` returns; rebuilt whenever
    ``key()`` changes (a reloaded champion changes the predict route's request schema)."""
    from fastapi.openapi.utils import get_openapi

    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        current = key()
        if built.get("key", object()) != current or app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas())
            app.openapi_schema = document
            built["key"] = current
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_allow_header(app: FastAPI) -> None:
    """405 answers name the methods the OpenAPI document gives the path.

    Starlette names the methods of the first route whose path matched, so ``PUT
    /v1/producers/state`` would be told ``Allow: GET`` (from ``/v1/producers/{producer_id}``).
    Here a literal path wins over a template: the methods listed are those of the documented
    paths matching the request with the fewest parameters. A path outside the document keeps
    Starlette's answer.
    """
    import re

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            matching: list[tuple[int, set[str]]] = []
            for template, operations in app.openapi().get("paths", {}).items():
                pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                                  for part in re.split(r"(\{[^/]+?\})", template))
                if re.fullmatch(pattern, request.url.path):
                    matching.append((template.count("{"), {m.upper() for m in operations}))
            if matching:
                fewest = min(n for n, _ in matching)
                methods = set().union(*(m for n, m in matching if n == fewest))
                headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=headers or None)
