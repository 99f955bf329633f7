"""create_app(registry): the FastAPI application over one Registry (API under /api/v1, pages at /)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from registry.api import errors

HERE = Path(__file__).parent


def create_app(registry, settings=None) -> FastAPI:
    """The HTTP API and pages over `registry` (its settings decide open reads and upload limits).

    Args:
        registry: a Registry; every route calls it (write routes through a per-token actor view)
        settings: overrides registry.settings when given (tests; the server passes none)
    """
    from registry.api.routes import adapters, admin, bases, files, pages, push

    if settings is not None:  # a view with these settings; the caller's registry is left as it was
        import copy

        registry.store  # build the store on the shared object first, so the view shares it
        registry = copy.copy(registry)
        registry.settings = settings
    app = FastAPI(title="adapter-registry", version=_version(),
                  description="A catalog of LoRA/PEFT adapters. Every error has one JSON shape: "
                              "`{error, message, status, hint?, context?}`. See docs/API.md.",
                  docs_url="/api/docs", redoc_url=None, generate_unique_id_function=lambda route: route.name)
    app.state.registry = registry
    errors.install(app)
    app.state.features = set()
    # The optional routers go first: their paths (/adapters/{name}/aliases, ...) are more specific
    # than /adapters/{name}, which would otherwise take them as adapter names.
    for name in ("jobs", "release"):  # present as their features land in Registry
        mod = _optional(name)
        if mod is not None and mod.available(registry):
            app.include_router(mod.router)
            app.state.features.add(name)
    for mod in (adapters, push, bases, files, admin, pages):
        app.include_router(mod.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.openapi = lambda: _openapi(app)
    return app


def _optional(name: str):
    import importlib

    try:
        return importlib.import_module(f"registry.api.routes.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"registry.api.routes.{name}":
            raise
        return None


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
                    resp["description"] = errors.DESCRIPTIONS.get(int(code), resp.get("description", "Error"))
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        comps.pop(unused, None)
    if "ErrorBody" not in comps:
        comps["ErrorBody"] = errors.ErrorBody.model_json_schema()
    app.openapi_schema = schema
    return schema
