"""API fixtures: a registry with a pushed adapter, tokens of each kind, an in-process client."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.factories import Tokens, fill_registry, make_tokens, open_registry


@pytest.fixture
def api_registry(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2):
    """A registry holding a base, team-a/bot@1..2 (evals on both), team-b/bot@1 and a queued job."""
    return fill_registry(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2)


@pytest.fixture
def tokens(api_registry) -> Tokens:
    return make_tokens(api_registry)


@pytest.fixture
def app(api_registry):
    from registry.api import create_app

    return create_app(api_registry)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@dataclass
class Shared:
    registry: object
    tokens: Tokens
    app: object
    client: object


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_llama, tiny_adapter, tiny_adapter2):
    """One registry, tokens, app and client for a module whose tests only read (faster)."""
    from fastapi.testclient import TestClient

    from registry.api import create_app

    reg = open_registry(tmp_path_factory.mktemp("shared-api"))
    fill_registry(reg, tiny_llama, tiny_adapter, tiny_adapter2)
    toks = make_tokens(reg)
    app = create_app(reg)
    with TestClient(app) as c:
        yield Shared(reg, toks, app, c)
    reg.close()
