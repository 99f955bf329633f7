"""registry.Client over a real socket (uvicorn on 127.0.0.1:0 in a thread) behaves like Registry."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(app):
    from registry.demo import ServerThread

    with ServerThread(app) as s:
        yield s


@pytest.fixture
def remote(server, tokens, tmp_path):
    from registry import Client

    with Client(server.url, token=tokens.write, cache_dir=tmp_path / "client-cache") as c:
        yield c


def same(a, b) -> bool:
    """Equal as JSON (SQLite hands Registry naive UTC datetimes; the client's are UTC-aware)."""
    if isinstance(a, list):
        return [x.to_dict() for x in a] == [x.to_dict() for x in b]
    return type(a) is type(b) and a.to_dict() == b.to_dict()


def test_client_reads_equal_the_local_registry(remote, api_registry):
    assert same(remote.search(), api_registry.search())
    assert same(remote.search(name="team-a/", min_rank=8, count=True),
                api_registry.search(name="team-a/", min_rank=8, count=True))
    assert same(remote.search(tags={"task": "support"}, metrics=["acc>=0.1"]),
                api_registry.search(tags={"task": "support"}, metrics=["acc>=0.1"]))
    assert same(remote.show("team-a/bot@1"), api_registry.show("team-a/bot@1"))
    assert same(remote.show("team-a/bot"), api_registry.show("team-a/bot"))
    assert same(remote.adapter("team-a/bot"), api_registry.adapter("team-a/bot"))
    assert same(remote.evals("team-a/bot@2"), api_registry.evals("team-a/bot@2"))
    # A base's location is a server path: only an unrestricted admin sees it over HTTP.
    assert same([unplaced(b) for b in remote.list_bases()], [unplaced(b) for b in api_registry.list_bases()])
    assert same(unplaced(remote.show_base("tiny-llama")), unplaced(api_registry.show_base("tiny-llama")))
    assert remote.show_base("tiny-llama").location == "<server path>"
    v = remote.show("team-a/bot@1")
    assert v.created_at.tzinfo is not None and isinstance(v.files, tuple) and v.base.name == "tiny-llama"


def unplaced(base):
    return dataclasses.replace(base, location="")


def test_client_resolve_gives_a_verified_local_folder_with_the_same_files(remote, api_registry):
    from registry.storage.cache import MARKER  # the local cache's seal (which files this registry wrote)

    local = api_registry.resolve("team-a/bot@2")
    path = remote.resolve("team-a/bot@2")
    files = sorted(p.name for p in local.iterdir() if p.name != MARKER)
    assert path != local and sorted(p.name for p in path.iterdir() if p.name != MARKER) == files
    for name in files:
        assert (path / name).read_bytes() == (local / name).read_bytes()
    assert remote.resolve("team-a/bot@2") == path  # cached by digest


def test_client_errors_are_the_registry_exceptions(remote, server):
    from registry import Client
    from registry.errors import AdapterNotFound, Forbidden, Unauthorized, VersionNotFound

    with pytest.raises(AdapterNotFound) as e:
        remote.show("nope")
    assert e.value.status == 404 and e.value.name == "nope" and isinstance(e.value, LookupError)
    with pytest.raises(VersionNotFound):
        remote.show("team-a/bot@7")
    with Client(server.url) as anon, pytest.raises(Unauthorized):
        anon.add_eval("team-a/bot@1", {"acc": 1.0})
    with Client(server.url, token="arg_wrong") as bad, pytest.raises(Unauthorized):
        bad.search()
    with pytest.raises(Forbidden):
        remote.audit()


def test_client_push_and_eval_write_through_the_server(remote, api_registry, tiny_adapter2):
    v = remote.push(tiny_adapter2, name="team-a/remote", base="tiny-llama", tags={"via": "http"})
    assert v.created and v.to_dict() == {**api_registry.get("team-a/remote@1").to_dict(), "created": True}
    assert remote.push(tiny_adapter2, name="team-a/remote").created is False
    remote.add_eval("team-a/remote@1", ["acc=0.9"])
    assert api_registry.show("team-a/remote@1").metrics == {"acc": 0.9}
    assert api_registry.show("team-a/remote@1").created_by == "ci-bot"


def test_unreachable_server_is_a_one_line_error():
    from registry import Client
    from registry.errors import RegistryError

    with Client("http://127.0.0.1:9", timeout=2) as c, pytest.raises(RegistryError) as e:
        c.search()
    assert e.value.status == 503 and "cannot reach" in e.value.message


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_cli_works_through_remote_with_a_token(server, tokens, tmp_path, api_registry):
    env = {"ADAPTER_REGISTRY_REMOTE": server.url, "ADAPTER_REGISTRY_TOKEN": tokens.read,
           "ADAPTER_REGISTRY_HOME": str(tmp_path / "nowhere"), "ADAPTER_REGISTRY_CACHE": str(tmp_path / "cli-cache")}
    r = cli("ls", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == api_registry.search().to_dict()
    r = cli("show", "team-a/bot@1", "--json", env=env)
    assert json.loads(r.stdout)["content_digest"] == api_registry.show("team-a/bot@1").content_digest
    r = cli("resolve", "team-a/bot@1", env=env)
    assert r.returncode == 0 and Path(r.stdout.strip()).is_relative_to(tmp_path / "cli-cache")
    r = cli("eval", "add", "team-a/bot@1", "--metric", "acc=1", env=env)
    assert r.returncode == 5 and "scope read" in r.stderr  # read-only token: refused, one line, exit code
    assert not (tmp_path / "nowhere").exists()  # nothing local was opened


def test_client_jobs_and_aliases_go_through_the_server(server, tokens, tmp_path, api_registry):
    from registry import Client
    from registry.errors import RemoteUnsupported

    with Client(server.url, token=tokens.admin, cache_dir=tmp_path / "c") as c:
        job = c.jobs.verify("team-a/bot@1")
        assert job.kind == "verify" and job.state == "queued" and c.jobs.get(job.id).id == job.id
        assert c.jobs.cancel(job.id).state == "cancelled"
        assert [j.id for j in c.jobs.list(state="cancelled")] == [job.id]
        assert c.jobs.workers() == []
        assert c.release.set_alias("team-a/bot", "production", 2, reason="r").to_version == 2
        assert [(m.alias, m.to_version) for m in c.release.alias_history("team-a/bot")] == [("production", 2)]
        assert c.show("team-a/bot@production").version == 2
        with pytest.raises(RemoteUnsupported):
            c.release.gc()
        assert not hasattr(c, "merge")  # local-only methods are absent, so hasattr() answers honestly


def test_the_http_api_and_the_client_enqueue_an_engine_verify(api_registry, remote):
    job = remote.jobs.verify("team-a/bot@1", engine="llama.cpp")
    assert job.kind == "verify" and job.payload["engine"] == "llama.cpp"
    assert api_registry.jobs.get(job.id).payload["engine"] == "llama.cpp"
