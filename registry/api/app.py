"""create_app(registry): the FastAPI application over one Registry (API under /api/v1, pages at /)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from registry.api import errors
from registry.api.cache import ResponseCache
from registry.api.limits import Limits

HERE = Path(__file__).parent


def create_app(registry, settings=None) -> FastAPI:
    """The HTTP API and pages over `registry` (its settings decide open reads and upload limits).

    Args:
        registry: a Registry; every route calls it (write routes through a per-token actor view)
        settings: overrides registry.settings when given (tests; the server passes none)
    """
    from registry.api.routes import adapters, admin, bases, files, jobs, pages, push, release, targets

    if settings is not None:  # the same database and store under these settings; the caller's is left as it was
        registry = type(registry)(core=registry.core.with_settings(settings))
    app = FastAPI(title="adapter-registry", version=_version(),
                  description="A catalog of LoRA/PEFT adapters. Every error has one JSON shape: "
                              "`{error, message, status, hint?, context?}`. See docs/API.md.",
                  docs_url="/api/docs", redoc_url=None, generate_unique_id_function=lambda route: route.name)
    app.state.registry = registry
    app.state.response_cache = ResponseCache(registry.settings.response_cache_bytes)
    errors.install(app)
    # Authentication before the body, body size and time, concurrency: before any route runs.
    app.add_middleware(Limits, registry=registry)
    # jobs and release go first: their paths (/adapters/{name}/aliases, ...) are more specific
    # than /adapters/{name}, which would otherwise take them as adapter names.
    for mod in (jobs, release, adapters, push, bases, files, admin, targets, pages):
        app.include_router(mod.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _version() -> str:
    from registry import __version__

    return __version__


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every error response pointing at the one error shape."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for op in path.values():
            for code, resp in op.get("responses", {}).items():
                if code == "422" or (code.isdigit() and int(code) >= 400):
                    resp["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    resp["description"] = errors.describe(int(code))
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        comps.pop(unused, None)
    if "ErrorBody" not in comps:
        comps["ErrorBody"] = errors.ErrorBody.model_json_schema()
    app.openapi_schema = schema
    return schema
