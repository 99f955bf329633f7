"""The hostile-tenant fixtures: one catalog shared by two teams, a token of every kind, and the app
over it with open reads and with closed reads.

team-a owns team-a/bot@1..2 (alias production, evals, a verify job); team-b owns team-b/bot@1, built
from an adapter of its own, so that its weights' digest belongs to team-b only, plus a merged
artifact and a verify job. "team_b" is a namespace whose name differs from team-b's only where SQL
LIKE would see a wildcard.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import add_merged, open_registry

# The identities of the matrix, least to most privileged.
IDENTITIES = ("anonymous", "junk", "revoked", "read", "write_other", "write", "ns_admin", "admin")


@dataclass
class Tenants:
    """The shared catalog and a secret per identity (None: anonymous)."""

    registry: object
    secrets: dict[str, str | None]
    ids: dict[str, int]  # token ids by identity
    team_a_job: int
    team_b_job: int
    team_a_blob: str  # a digest only team-a's versions reference
    team_b_blob: str  # a digest only team-b's versions reference
    team_b_merged_blob: str  # a digest only team-b's merged artifact references
    orphan_blob: str  # in the store, referenced by nothing
    underscore: str  # a read token limited to "team_b"
    adapter: Path | None = None  # what the matrix pushes, publishes to and registers from
    publish_root: Path | None = None
    base_path: Path | None = None

    def headers(self, who: str) -> dict[str, str]:
        s = self.secrets[who]
        return {"Authorization": f"Bearer {s}"} if s else {}


@pytest.fixture(scope="session")
def team_b_adapter(models_dir, tiny_llama) -> Path:
    """An adapter no team-a version shares a file with."""
    from registry.testing.tiny import build_adapter

    return build_adapter(tiny_llama, models_dir / "team-b-adapter", r=4, seed=11)


def _weights_digest(reg, v) -> str:
    return next(f.digest for f in reg.show(v.ref).files if f.role == "weights")


def build_tenants(reg, tiny_llama: Path, tiny_adapter: Path, tiny_adapter2: Path, team_b_adapter: Path) -> Tenants:
    reg.add_base(tiny_llama, name="tiny-llama")
    a1 = reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama")
    reg.push(tiny_adapter2, name="team-a/bot", base="tiny-llama")
    b1 = reg.push(team_b_adapter, name="team-b/bot", base="tiny-llama")
    reg.add_eval("team-a/bot@1", {"acc": 0.5})
    reg.add_eval("team-b/bot@1", {"acc": 0.9})
    reg.release.set_alias("team-a/bot", "production", 1)
    reg.release.set_alias("team-b/bot", "production", 1)
    ja = reg.jobs.verify("team-a/bot@1").id
    jb = reg.jobs.verify("team-b/bot@1").id
    merged_blob = _put(reg, b"team-b merged weights")
    add_merged(reg, "team-b/bot@1", files={"model.safetensors": merged_blob})
    orphan = _put(reg, b"nobody's file")
    t = reg.tokens
    revoked = t.create("gone", scope="admin")
    t.revoke(revoked.info.id)
    made = {
        "read": t.create("a-reader", scope="read", namespace="team-a"),
        "write_other": t.create("b-bot", scope="write", namespace="team-b"),
        "write": t.create("a-bot", scope="write", namespace="team-a"),
        "ns_admin": t.create("a-admin", scope="admin", namespace="team-a"),
        "admin": t.create("root", scope="admin"),
    }
    secrets = {"anonymous": None, "junk": "arg_not-a-token", "revoked": revoked.token,
               **{k: v.token for k, v in made.items()}}
    ids = {"revoked": revoked.info.id, **{k: v.info.id for k, v in made.items()}}
    underscore = t.create("underscore", scope="read", namespace="team_b").token
    return Tenants(reg, secrets, ids, ja, jb, _weights_digest(reg, a1), _weights_digest(reg, b1), merged_blob, orphan,
                   underscore)


def _put(reg, data: bytes) -> str:
    """A blob in the store (and the catalog's blob table), as ingest would leave it."""
    import hashlib
    import io

    from registry.catalog import commands as C

    digest = hashlib.sha256(data).hexdigest()
    with reg.db.write() as s:
        C.touch_blobs(s, {digest: len(data)})
    reg.store.put_stream(io.BytesIO(data), expected=digest)
    return digest


@pytest.fixture(scope="module")
def tenants(tmp_path_factory, tiny_llama, tiny_adapter, tiny_adapter2, team_b_adapter) -> Tenants:
    reg = open_registry(tmp_path_factory.mktemp("tenants"))
    yield build_tenants(reg, tiny_llama, tiny_adapter, tiny_adapter2, team_b_adapter)
    reg.close()


@pytest.fixture
def fresh_tenants(tmp_path, tiny_llama, tiny_adapter, tiny_adapter2, team_b_adapter) -> Tenants:
    """A catalog of its own, for tests that change it."""
    reg = open_registry(tmp_path)
    yield build_tenants(reg, tiny_llama, tiny_adapter, tiny_adapter2, team_b_adapter)
    reg.close()


def make_client(reg, *, open_reads: bool):
    from fastapi.testclient import TestClient

    from registry.api import create_app

    return TestClient(create_app(reg, dataclasses.replace(reg.settings, open_reads=open_reads)))


@pytest.fixture(scope="module")
def open_client(tenants):
    with make_client(tenants.registry, open_reads=True) as c:
        yield c


@pytest.fixture(scope="module")
def closed_client(tenants):
    with make_client(tenants.registry, open_reads=False) as c:
        yield c
