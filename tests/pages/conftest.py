"""Page fixtures: one catalog (read-only for these tests) with evals across versions and a Trainer run."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_llama, tiny_adapter, tiny_adapter2):
    """team-a/bot@1..3 (@3 from a Trainer folder: loss curve), team-b/sql@1, evals across versions."""
    from registry.testing.tiny import write_trainer_output
    from tests.factories import open_registry

    tmp = tmp_path_factory.mktemp("pages")
    reg = open_registry(tmp)
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama", tags=["task=support"])
    reg.push(tiny_adapter2, name="team-a/bot", base="tiny-llama")
    reg.push(write_trainer_output(tiny_adapter2, tmp / "run", steps=(5, 10)), name="team-a/bot", base="tiny-llama")
    reg.push(tiny_adapter2, name="team-b/sql", base="tiny-llama")
    for v, acc, f1 in ((1, 0.5, 0.4), (2, 0.6, 0.45), (3, 0.7, 0.5)):
        reg.add_eval(f"team-a/bot@{v}", {"acc": acc, "f1": f1}, dataset="d", split="test")
    reg.add_eval("team-b/sql@1", {"acc": 0.3})
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def app(catalog):
    from registry.api import create_app

    return create_app(catalog)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
