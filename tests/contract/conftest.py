"""The contract suite's two implementations: a local Registry, and registry.Client talking to a
real server (uvicorn on a loopback socket, in a thread) over its own Registry. Nothing is faked."""

from __future__ import annotations

import pytest

from tests.factories import open_registry


@pytest.fixture(params=["local", "remote"])
def reg(request, tmp_path):
    """A RegistryProtocol: `Registry` itself, or `Client` through a server (an admin token)."""
    local = open_registry(tmp_path, actor="contract")
    if request.param == "local":
        yield local
        local.close()
        return
    from registry import Client
    from registry.api.app import create_app
    from registry.demo import ServerThread

    secret = local.tokens.create("contract", scope="admin").token
    with ServerThread(create_app(local)) as server, \
            Client(server.url, token=secret, cache_dir=tmp_path / "client-cache") as client:
        yield client
    local.close()
