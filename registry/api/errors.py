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

from registry.errors import RegistryError, for_status

log = logging.getLogger("registry.api")


def code_for(status: int) -> str:
    """The error code of an HTTP status that no RegistryError carried (unknown routes, validation)."""
    cls = for_status(status)
    return cls.code if cls.status == status else "error"


def describe(status: int) -> str:
    """The OpenAPI description of an error status: the docstring of the class that answers with it."""
    cls = for_status(status)
    return (cls.__doc__ or cls.code).strip().splitlines()[0].rstrip(".") if cls.status == status else "Error"


class ErrorBody(BaseModel):
    """Every error: a stable code, a one-line message, the HTTP status, maybe a hint and context."""

    error: str
    message: str
    status: int
    hint: str | None = None
    context: dict[str, Any] | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (every route documents what it can answer)."""
    return {c: {"model": ErrorBody, "description": describe(c)} for c in codes}


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
        return error_response(422, code_for(422), f"{first['loc']}: {first['msg']}",
                              context={"errors": errs})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        msg = e.detail if isinstance(e.detail, str) else code_for(e.status_code)
        if _page(request) and e.status_code == 404:
            return _html(request, {"error": "not_found", "message": msg, "status": 404})
        return error_response(e.status_code, code_for(e.status_code), msg,
                              headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return error_response(500, "internal_error", f"internal error: {e.__class__.__name__}")
