"""The HTTP API and the catalog pages: a thin shell over one Registry (`create_app(registry)`)."""

from registry.api.app import create_app

__all__ = ["create_app"]
