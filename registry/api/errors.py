"""One JSON error shape for every error the server answers with.

RegistryError.to_dict() is the shape; request validation errors, unknown routes and unexpected
exceptions are put into it too, so a client only ever parses one thing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import RegistryError

log = logging.getLogger("registry.api")

CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 416: "range_not_satisfiable", 422: "invalid_request"}
DESCRIPTIONS = {400: "Invalid input", 401: "A valid bearer token is required", 403: "The token does not allow this",
                404: "Not found", 409: "Conflicts with the catalog's state", 413: "The upload is too large",
                416: "The byte range is not satisfiable", 422: "The request or its content is not valid",
                500: "Internal error", 503: "The artifact store is unavailable", 507: "No space left"}


class ErrorBody(BaseModel):
    """Every error: a stable code, a one-line message, the HTTP status, maybe a hint and context."""

    error: str
    message: str
    status: int
    hint: str | None = None
    context: dict[str, Any] | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (every route documents what it can answer)."""
    return {c: {"model": ErrorBody, "description": DESCRIPTIONS.get(c, "Error")} for c in codes}


def error_response(status: int, code: str, message: str, *, hint: str | None = None,
                   context: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message, "status": status}
    if hint:
        body["hint"] = hint
    if context:
        body["context"] = context
    return JSONResponse(body, status_code=status, headers=headers)


def _page(request: Request) -> bool:
    """Pages (not the API) answer errors with an HTML page carrying the same fields."""
    p = request.url.path
    return not (p.startswith("/api/") or p.startswith("/static/") or p == "/openapi.json")


def _html(request: Request, body: dict[str, Any]):
    from registry.api.routes.pages import templates

    return templates.TemplateResponse(request, "error.html", dict(body), status_code=body["status"])


def install(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, e: RegistryError):
        if e.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, e, exc_info=e)
        if _page(request):
            return _html(request, e.to_dict())
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(e.to_dict(), status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = [{"loc": ".".join(str(x) for x in err.get("loc", ())), "msg": str(err.get("msg", ""))}
                for err in e.errors()]
        first = errs[0] if errs else {"loc": "", "msg": "invalid request"}
        return error_response(422, "invalid_request", f"{first['loc']}: {first['msg']}",
                              context={"errors": errs})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        msg = e.detail if isinstance(e.detail, str) else CODES.get(e.status_code, "error")
        if _page(request) and e.status_code == 404:
            return _html(request, {"error": "not_found", "message": msg, "status": 404})
        return error_response(e.status_code, CODES.get(e.status_code, "error"), msg,
                              headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return error_response(500, "internal_error", f"internal error: {e.__class__.__name__}")
