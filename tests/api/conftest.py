"""API fixtures: a registry with a pushed adapter, tokens of each kind, an in-process client."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Tokens:
    read: str
    write: str
    admin: str
    team_a: str   # write, limited to team-a/*
    revoked: str


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def fill_registry(reg, tiny_llama, tiny_adapter, tiny_adapter2):
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama", tags=["task=support"])
    reg.push(tiny_adapter2, name="team-a/bot", base="tiny-llama")
    reg.push(tiny_adapter, name="team-b/bot", base="tiny-llama")
    reg.add_eval("team-a/bot@1", {"acc": 0.5})
    reg.add_eval("team-a/bot@2", {"acc": 0.7})
    if hasattr(reg, "jobs"):
        reg.jobs.verify("team-b/bot@1")  # job 1, queued (no worker runs in these tests)
    return reg


@pytest.fixture
def api_registry(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2):
    """A registry holding a base, team-a/bot@1..2 (evals on both), team-b/bot@1 and a queued job."""
    return fill_registry(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2)


def make_tokens(reg) -> Tokens:
    t = reg.tokens
    revoked = t.create("gone", scope="admin").token
    t.revoke("gone")
    return Tokens(read=t.create("reader", scope="read").token, write=t.create("ci-bot", scope="write").token,
                  admin=t.create("root", scope="admin").token,
                  team_a=t.create("team-a-bot", scope="write", namespace="team-a").token, revoked=revoked)


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
    from registry.app import Registry
    from registry.settings import Settings

    tmp = tmp_path_factory.mktemp("shared-api")
    reg = Registry(Settings.from_env(env={}, home=tmp / "home", db=f"sqlite:///{tmp / 'catalog.db'}",
                                     store=str(tmp / "store"), actor="tester"))
    fill_registry(reg, tiny_llama, tiny_adapter, tiny_adapter2)
    toks = make_tokens(reg)
    app = create_app(reg)
    with TestClient(app) as c:
        yield Shared(reg, toks, app, c)
    reg.close()


def adapter_files(folder) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts for every file of an adapter folder (filename = relative path)."""
    return [("files", (p.relative_to(folder).as_posix(), p.read_bytes(), "application/octet-stream"))
            for p in sorted(folder.rglob("*")) if p.is_file()]
