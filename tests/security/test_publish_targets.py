"""Publish targets and base roots are an admin's policy: a namespace's writes publish only under its
targets, base models are registered only from its base roots, and the registry's own home, store
and cache are never a target for anyone."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from registry.errors import Forbidden, InvalidInput
from registry.targets import Place, Targets, dir_place, place, under
from tests.factories import add_target, add_verification, bearer, cli_env, run_cli
from tests.publish.fakehub import serve

NO_TARGET = "is not under a publish target of namespace team-a"


# -- the matching rules, pure ----------------------------------------------------------------------
@pytest.mark.parametrize("url, root, inside", [
    ("dir:///srv/team-a/bot", "dir:///srv/team-a", True),
    ("dir:///srv/team-a", "dir:///srv/team-a", True),
    ("dir:///srv//team-a/x/", "dir:///srv/team-a", True),
    ("dir:///srv/team-ab/bot", "dir:///srv/team-a", False),
    ("dir:///srv", "dir:///srv/team-a", False),
    ("s3://bucket/team-a/bot", "s3://bucket/team-a", True),
    ("s3://bucket/team-ab/bot", "s3://bucket/team-a", False),
    ("s3://other/team-a/bot", "s3://bucket/team-a", False),
    ("s3://bucket/anything", "s3://bucket", True),
    ("hf://Team-A-Org/bot@dev", "hf://team-a-org", True),
    ("hf://team-a-org-2/bot", "hf://team-a-org", False),
    ("hf://team-a-org/other", "hf://team-a-org/bot", False),
    ("dir:///srv/team-a/bot", "s3://srv/team-a", False),
])
def test_a_url_is_under_a_root_by_whole_segments(url, root, inside):
    assert under(place(url, resolve=False), place(root, resolve=False)) is inside


@pytest.mark.parametrize("url", ["dir:///srv/team-a/../team-b", "dir://relative/path", "s3://bucket/a//b",
                                 "s3://bucket/team-a/./x", "hf://org/../x", "hf://", "ftp://x/y", "nowhere",
                                 "dir:///srv/a\0b"])
def test_dot_segments_relative_paths_and_unknown_schemes_are_refused(url):
    with pytest.raises(InvalidInput):
        place(url)


def test_dir_places_are_compared_with_symlinks_resolved(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "link")
    root = dir_place(tmp_path / "root")
    assert not under(dir_place(tmp_path / "root" / "link" / "model"), root)
    assert under(dir_place(tmp_path / "root" / "plain" / "model"), root)
    assert dir_place(tmp_path / "root" / "link") == Place("dir", tuple((tmp_path / "elsewhere").resolve().parts[1:]))


# -- over HTTP -------------------------------------------------------------------------------------
@pytest.fixture
def api(sqlite_registry, tiny_llama, tiny_adapter, tiny_adapter2, tmp_path):
    """team-a/bot@1 and team-b/bot@1 (verified), tokens of both teams, a namespaced admin, an admin."""
    from fastapi.testclient import TestClient

    from registry.api import create_app

    reg = sqlite_registry
    reg.add_base(tiny_llama, name="tiny-llama")
    reg.push(tiny_adapter, name="team-a/bot", base="tiny-llama")
    reg.push(tiny_adapter2, name="team-b/bot", base="tiny-llama")
    for ref in ("team-a/bot@1", "team-b/bot@1"):
        add_verification(reg, ref)
    t = reg.tokens
    secrets = {"a": t.create("team-a-bot", scope="write", namespace="team-a").token,
               "b": t.create("team-b-bot", scope="write", namespace="team-b").token,
               "write": t.create("ci-bot", scope="write").token,
               "ns_admin": t.create("team-a-admin", scope="admin", namespace="team-a").token,
               "admin": t.create("root", scope="admin").token}
    with TestClient(create_app(reg)) as client:
        yield reg, client, secrets, tmp_path


def publish(client, secret, to: str, name: str = "team-a/bot"):
    return client.post(f"/api/v1/adapters/{name}/versions/1/publish", json={"to": to}, headers=bearer(secret))


def test_a_namespace_publishes_only_under_its_own_targets(api):
    reg, client, secrets, tmp = api
    add_target(reg, f"dir://{tmp / 'a'}", namespace="team-a")
    add_target(reg, "s3://models/team-a", namespace="team-a")
    add_target(reg, "hf://team-a-org", namespace="team-a")
    add_target(reg, f"dir://{tmp / 'b'}", namespace="team-b")
    allowed = [f"dir://{tmp / 'a' / 'bot-v1'}", f"dir://{tmp / 'a'}", "s3://models/team-a/bot",
               "hf://team-a-org/bot", "hf://Team-A-Org/bot@dev"]
    for to in allowed:
        r = publish(client, secrets["a"], to)
        assert r.status_code == 202, (to, r.text)
    denied = [f"dir://{tmp / 'ab' / 'bot'}", f"dir://{tmp / 'b' / 'bot'}", f"dir://{tmp}", "dir:///etc/cron.d/x",
              "s3://models/team-ab/bot", "s3://models/team-b", "s3://other/team-a/bot", "hf://team-b-org/bot",
              "hf://someone/bot"]
    for to in denied:
        r = publish(client, secrets["a"], to)
        assert r.status_code == 403 and r.json()["error"] == "forbidden", (to, r.text)
        assert NO_TARGET in r.json()["message"]
    r = publish(client, secrets["a"], f"dir://{tmp / 'a' / '..' / 'b' / 'bot'}")
    assert r.status_code == 400 and "'..'" in r.json()["message"]
    # a namespaced admin is held to its namespace's targets too; only an admin without one is not
    assert publish(client, secrets["ns_admin"], f"dir://{tmp / 'elsewhere'}").status_code == 403
    assert publish(client, secrets["admin"], f"dir://{tmp / 'elsewhere'}").status_code == 202
    # team-b's target is team-b's: a token that may write both namespaces publishes team-b there only
    assert publish(client, secrets["write"], f"dir://{tmp / 'b' / 'x'}", name="team-b/bot").status_code == 202
    assert publish(client, secrets["write"], f"dir://{tmp / 'b' / 'y'}").status_code == 403
    assert not any((tmp / d).exists() for d in ("a", "b", "ab", "elsewhere"))  # nothing ran, nothing written
    kinds = sorted(j.payload["to"] for j in reg.jobs.list(kind="publish", limit=100))
    assert kinds == sorted([*allowed, f"dir://{tmp / 'elsewhere'}", f"dir://{tmp / 'b' / 'x'}"])


def test_a_global_target_serves_every_namespace(api):
    reg, client, secrets, tmp = api
    add_target(reg, f"dir://{tmp / 'shared'}")
    assert publish(client, secrets["a"], f"dir://{tmp / 'shared' / 'a'}").status_code == 202
    assert publish(client, secrets["b"], f"dir://{tmp / 'shared' / 'b'}", name="team-b/bot").status_code == 202


def test_a_symlink_under_a_target_does_not_lead_out_of_it(api):
    reg, client, secrets, tmp = api
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    os.symlink(tmp / "b", tmp / "a" / "to-b")
    os.symlink(reg.settings.home, tmp / "a" / "to-home")
    add_target(reg, f"dir://{tmp / 'a'}", namespace="team-a")
    for to in (f"dir://{tmp / 'a' / 'to-b' / 'bot'}", f"dir://{tmp / 'a' / 'to-home' / 'cache' / 'merged' / 'k'}"):
        r = publish(client, secrets["a"], to)
        assert r.status_code == 403 and NO_TARGET in r.json()["message"], r.text


def test_the_registrys_home_store_and_cache_are_never_targets(api):
    reg, client, secrets, tmp = api
    st = reg.settings
    own = [st.home, st.home / "x", st.cache_dir / "merged" / "k", Path(st.store_url) / "sha256", st.cache_dir]
    # an admin's mistake: a team-a target that holds the registry's home
    add_target(reg, f"dir://{tmp}", namespace="team-a")
    for folder in own:
        r = publish(client, secrets["a"], f"dir://{folder}")
        assert r.status_code == 403 and r.json()["message"] == f"dir://{folder} {NO_TARGET}", r.text
        assert "home" not in r.json()["message"].replace(str(folder), "")  # nothing says where the registry is
        r = publish(client, secrets["admin"], f"dir://{folder}")
        assert r.status_code == 403 and "registry's own" in r.json()["message"], r.text
        with pytest.raises(Forbidden, match="registry's own home, store or cache"):
            reg.jobs.publish("team-a/bot@1", to=f"dir://{folder}")  # the local operator alike
    with pytest.raises(InvalidInput, match="never a target"):
        Targets(reg.core).add(f"dir://{st.cache_dir}", namespace="team-a")
    assert reg.jobs.list(kind="publish") == []


def test_the_worker_checks_the_registrys_own_folders_again(api):
    """A job enqueued before a change (or by hand) still never writes into the registry's folders."""
    from registry.enums import JobKind

    reg, _client, _secrets, _tmp = api
    dest = reg.settings.cache_dir / "merged" / "planted"
    job = reg.jobs.enqueue(JobKind.PUBLISH, {"ref": "team-a/bot@1", "to": f"dir://{dest}", "dtype": "float32"})
    done = reg.jobs.run(job.id)
    assert done.state == "failed" and "Forbidden" in done.error and not dest.exists()
    assert str(reg.settings.home) not in done.error


def test_s3_store_prefix_is_never_a_target(tmp_path):
    from registry.settings import Settings
    from registry.targets import is_protected

    st = Settings.from_env(env={}, home=tmp_path, store="s3://blobs/registry")
    assert is_protected(place("s3://blobs/registry/sha256/ab"), st)
    assert is_protected(place("s3://blobs/registry"), st)
    assert not is_protected(place("s3://blobs/registry-2/x"), st)
    assert not is_protected(place("s3://other/registry"), st)


# -- base roots over HTTP --------------------------------------------------------------------------
def add_base(client, secret, path: str, name: str = "team-a/llama"):
    return client.post("/api/v1/bases", json={"name": name, "path": path}, headers=bearer(secret))


def test_base_models_are_registered_only_from_a_base_root_and_refusals_map_nothing(api, tiny_llama):
    reg, client, secrets, tmp = api
    root = tmp / "bases-a"
    shutil.copytree(tiny_llama, root / "llama")
    (root / "a-file").write_text("x")
    add_target(reg, f"dir://{root}", namespace="team-a", kind="base")
    r = add_base(client, secrets["a"], str(root / "llama"))
    assert r.status_code == 201, r.text
    assert r.json()["location"] == str((root / "llama").resolve())
    expected = {"error": "forbidden", "status": 403, "message": "path is not under a base root of namespace team-a"}
    outside = [str(tiny_llama), str(root / "missing"), str(root / "a-file"), str(root / ".." / "bases-a" / "llama"),
               "relative/path", "/etc", "/nonexistent/x", str(reg.settings.home), f"{root}/llama\0x"]
    for path in outside:
        body = add_base(client, secrets["a"], path, name="team-a/other").json()
        assert {k: body[k] for k in expected} == expected, (path, body)
        assert path not in json.dumps(body)
    # a namespace's base root is its own: team-b has none
    assert add_base(client, secrets["b"], str(root / "llama"), name="team-b/llama").json()["message"] == \
        "path is not under a base root of namespace team-b"
    # an admin without a namespace may name any folder but the registry's own
    assert add_base(client, secrets["admin"], str(tiny_llama), name="team-b/llama").status_code == 201
    r = add_base(client, secrets["admin"], str(reg.settings.cache_dir), name="team-b/cache")
    assert r.status_code == 403 and "registry's own" in r.json()["message"]


# -- managing targets: HTTP, CLI, audit ------------------------------------------------------------
def test_only_an_admin_without_a_namespace_manages_targets_over_http_and_each_change_is_audited(api):
    reg, client, secrets, tmp = api
    body = {"url": f"dir://{tmp / 'a'}", "namespace": "team-a"}
    for who in ("a", "write", "ns_admin"):
        r = client.post("/api/v1/targets", json=body, headers=bearer(secrets[who]))
        assert r.status_code == 403, (who, r.text)
    r = client.post("/api/v1/targets", json=body, headers=bearer(secrets["admin"]))
    assert r.status_code == 201 and r.json()["url"] == f"dir://{tmp / 'a'}" and r.json()["created_by"] == "root"
    tid = r.json()["id"]
    assert client.post("/api/v1/targets", json=body, headers=bearer(secrets["admin"])).status_code == 409
    r = client.post("/api/v1/targets", json={"url": "hf://org", "options": {"colour": "red"}},
                    headers=bearer(secrets["admin"]))
    assert r.status_code == 400 and "colour" in r.json()["message"]
    add_target(reg, f"dir://{tmp / 'b'}", namespace="team-b")
    listed = client.get("/api/v1/targets", headers=bearer(secrets["admin"])).json()
    assert [t["namespace"] for t in listed] == ["team-a", "team-b"]
    # a namespaced admin sees its own namespace's targets only
    assert [t["id"] for t in client.get("/api/v1/targets", headers=bearer(secrets["ns_admin"])).json()] == [tid]
    assert client.delete(f"/api/v1/targets/{tid}", headers=bearer(secrets["ns_admin"])).status_code == 403
    assert client.delete(f"/api/v1/targets/{tid}", headers=bearer(secrets["admin"])).json()["id"] == tid
    assert client.delete(f"/api/v1/targets/{tid}", headers=bearer(secrets["admin"])).status_code == 404
    audit = [(a.action, a.actor, a.target) for a in reg.audit(limit=50) if a.action.startswith("target.")]
    assert audit == [("target.remove", "root", f"team-a:publish:dir://{tmp / 'a'}"),
                     ("target.add", "tester", f"team-b:publish:dir://{tmp / 'b'}"),
                     ("target.add", "root", f"team-a:publish:dir://{tmp / 'a'}")]


def test_cli_target_add_ls_rm_with_json(registry, tmp_path):
    env = cli_env(registry.settings)
    out = run_cli("target", "add", f"dir://{tmp_path / 'a'}", "--namespace", "team-a", "--json", env=env)
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    assert {k: added[k] for k in ("namespace", "kind", "url", "options")} == \
        {"namespace": "team-a", "kind": "publish", "url": f"dir://{tmp_path / 'a'}", "options": {}}
    out = run_cli("target", "add", "hf://Team-Org", "--global", "--public", "--json", env=env)
    hub = json.loads(out.stdout)
    assert (hub["namespace"], hub["url"], hub["options"]) == (None, "hf://team-org", {"private": False})
    run_cli("target", "add", f"dir://{tmp_path / 'bases'}", "--namespace", "team-a", "--kind", "base", env=env)
    listed = json.loads(run_cli("target", "ls", "--json", env=env).stdout)
    assert [(t["namespace"], t["kind"]) for t in listed] == [("team-a", "publish"), (None, "publish"),
                                                             ("team-a", "base")]
    assert len(json.loads(run_cli("target", "ls", "--kind", "base", "--json", env=env).stdout)) == 1
    assert len(json.loads(run_cli("target", "ls", "--namespace", "team-b", "--json", env=env).stdout)) == 1
    out = run_cli("target", "rm", str(added["id"]), "--json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["id"] == added["id"]
    for bad, why in [(("add", "dir:///x"), "--namespace NS or --global"),
                     (("add", f"dir://{registry.settings.home}", "--global"), "never a target"),
                     (("add", "dir:///x", "--global", "--public"), "takes no option 'private'"),
                     (("add", "s3://b/a/../c", "--global"), "'..'"),
                     (("add", "hf://org", "--global", "--kind", "base"), "a base root is a folder")]:
        out = run_cli("target", *bad, env=env)
        assert out.returncode == 2 and why in out.stderr and len(out.stderr.strip().splitlines()) <= 2, (bad, out)
    assert run_cli("target", "rm", "999", env=env).returncode == 3
    actions = [a.action for a in registry.audit(limit=20) if a.action.startswith("target.")]
    assert actions == ["target.remove", "target.add", "target.add", "target.add"]


# -- the Hub: private unless the target says otherwise -----------------------------------------------
def test_hub_repos_are_created_private_unless_the_target_says_public(api, monkeypatch):
    from huggingface_hub import constants

    from registry.app import Registry

    reg, _client, _secrets, _tmp = api
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    add_target(reg, "hf://public-org", namespace="team-a", private=False)
    hub, server = serve()
    try:
        local = Registry(core=reg.core.with_settings(dataclasses.replace(reg.settings, hf_endpoint=hub.url)))
        for to in ("hf://some-org/bot", "hf://public-org/bot"):
            job = local.jobs.publish("team-a/bot@1", to=to, inline=True)
            assert job.state == "succeeded", job.error
        assert hub.repos["some-org/bot"].private is True
        assert hub.repos["public-org/bot"].private is False
    finally:
        server.shutdown()
