"""Maps every error to one shape: RFC 9457 problem+json with field paths for validation errors."""

import copy
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.api.schemas import Problem
from app.errors import DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
# FastAPI's own 422 body, which the handler below replaces with a Problem.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_PROBLEM_REFS = {PROBLEM_REF, "#/components/schemas/HTTPValidationError"}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# FastAPI answers 400 to a body it cannot parse (malformed JSON or multipart) before validating it.
_UNPARSABLE_BODY = {
    "description": "The body could not be parsed",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
}
_UNAUTHORIZED = {
    "description": "The API key is missing or not valid",
    "headers": {"WWW-Authenticate": {"description": 'Always `Bearer realm="epochly"`', "schema": {"type": "string"}}},
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
}
_RATE_LIMITED = {
    "description": "Over the key's rate limit (RATE_LIMIT_PER_MIN)",
    "headers": {
        "Retry-After": {"description": "Seconds until a request is allowed again", "schema": {"type": "integer"}},
    },
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
}
_FORBIDDEN = {
    "description": "A `read` key may only read",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
}
log = logging.getLogger("epochly.api")
# Pydantic adds the tried union member to an error's location; users know fields, not our class names.
_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def problem_response(
    status: int, detail: str, errors: list[dict[str, str]] | None = None, title: str | None = None
) -> JSONResponse:
    body = Problem(title=title or HTTPStatus(status).phrase, status=status, detail=detail, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def json_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header", "form") else list(loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_union_tag(str(part)):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _is_union_tag(part: str) -> bool:
    base = part.split("[", 1)[0].lower()
    return base in _UNION_TAGS or part[:1].isupper() or "[" in part


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, so /docs shows each error it can return (as problem+json:
    see problem_openapi)."""
    return {status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses}


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers to. Starlette's 405 names only the first route that
    matched the path, though GET and POST on one path are two routes."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Declares every error response as what the handlers below send: a Problem, as problem+json.

    FastAPI files a `responses=` model under the route's own media type (JSON, or text/plain for
    /log) and adds its own 422 schema; 400 is declared where there is a body to parse, 401 exactly
    where the operation asks for a key, and with it 429 (rate limit) and, on writes, 403 (a `read` key)."""
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault("400", copy.deepcopy(_UNPARSABLE_BODY))
            if operation.get("security"):
                responses.setdefault("401", copy.deepcopy(_UNAUTHORIZED))
                # Every keyed call counts against the key's bucket; a `read` key is refused any write.
                responses.setdefault("429", copy.deepcopy(_RATE_LIMITED))
                if method.upper() not in ("GET", "HEAD", "OPTIONS"):
                    responses.setdefault("403", copy.deepcopy(_FORBIDDEN))
            for response in responses.values():
                refs = {media.get("schema", {}).get("$ref") for media in response.get("content", {}).values()}
                if refs & _PROBLEM_REFS:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return document


def install(app: FastAPI) -> None:
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        errors = [{"path": e.path, "message": e.message} for e in exc.errors]
        response = problem_response(exc.status, exc.detail, errors, title=exc.title)
        response.headers.update(getattr(exc, "headers", {}))
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, str]] = []
        seen: set[str] = set()
        for error in exc.errors():
            path = json_path(tuple(error.get("loc", ())))
            if path in seen:
                continue
            seen.add(path)
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            errors.append({"path": path, "message": message})
        detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
        return problem_response(422, detail, errors, title="Invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        response = problem_response(exc.status_code, detail)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405 and "Allow" in (exc.headers or {}):  # the router's 405, not a mounted app's
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(503, "the database is unavailable; try again shortly", title="Service unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "an unexpected error occurred; it has been logged")
