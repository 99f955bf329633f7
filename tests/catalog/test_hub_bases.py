"""Bases with Hub identity (issue 12): a base records its Hub id (with the Hub's casing) and its
commit, from `--hub-id/--revision` or found in the local Hugging Face cache (`--from-hf-cache
ORG/NAME[@REV]`), and what its model card says. On main before issue 12 there was no way to
record a Hub id (`Meta-Llama/Llama-3.2-1B` is not a registry name), nor to register a cached model.

The cache here is built in tmp with the layout huggingface_hub writes (models--Org--Name/blobs,
snapshots/<commit>/ symlinks into blobs/, refs/<branch or tag>) from a tiny model saved by
transformers; huggingface_hub's own scan_cache_dir and snapshot_download(local_files_only=True)
reading it is the proof that the layout is the real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from registry.errors import Conflict, InvalidInput
from registry.testing.tiny import build_adapter
from tests.factories import run_cli

HUB_ID = "Meta-Llama/Llama-3.2-1B"
C_OLD = "a" * 8 + hashlib.sha1(b"old").hexdigest()[8:]
C_NEW = "b" * 8 + hashlib.sha1(b"new").hexdigest()[8:]
CARD = """---
license: llama3.2
pipeline_tag: text-generation
library_name: transformers
language:
- en
- de
tags:
- facebook
- meta
- llama
---
# Llama 3.2 1B (a tiny stand-in)
"""


def _blob_name(rel: str, data: bytes) -> str:
    """The name huggingface_hub gives a blob: its etag, the sha256 for LFS files, the git sha1 for others."""
    if rel.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_snapshot(cache: Path, hub_id: str, commit: str, files: dict[str, bytes], refs: tuple[str, ...]) -> Path:
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    for rel, data in files.items():
        blob = repo / "blobs" / _blob_name(rel, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, tiny_llama) -> Path:
    """HF_HOME-style root: <root>/hub holds HUB_ID at two commits, main -> C_NEW, tag v1.0 -> C_OLD."""
    root = tmp_path_factory.mktemp("hf-home")
    files = {p.name: p.read_bytes() for p in sorted(tiny_llama.iterdir()) if p.is_file()}
    write_snapshot(root / "hub", HUB_ID, C_OLD, {**files, "README.md": CARD.replace("llama3.2", "llama3").encode()},
                   ("v1.0",))
    write_snapshot(root / "hub", HUB_ID, C_NEW, {**files, "README.md": CARD.encode()}, ("main",))
    return root


def test_the_fake_cache_is_one_huggingface_hub_reads(hf_cache):
    from huggingface_hub import scan_cache_dir, snapshot_download

    info = scan_cache_dir(hf_cache / "hub")
    assert info.warnings == []
    (repo,) = info.repos
    assert (repo.repo_id, repo.repo_type) == (HUB_ID, "model")
    assert {r: rev.commit_hash for r, rev in repo.refs.items()} == {"main": C_NEW, "v1.0": C_OLD}
    got = snapshot_download(HUB_ID, cache_dir=hf_cache / "hub", local_files_only=True)
    assert Path(got) == hf_cache / "hub" / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / C_NEW
    assert (Path(got) / "model.safetensors").is_symlink()


def test_base_add_from_the_hf_cache_records_hub_id_commit_and_card(tmp_path, hf_cache):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(hf_cache / "hub"), "HF_HOME": None}
    p = run_cli("base", "add", "--from-hf-cache", HUB_ID, "--json", env=env)
    assert p.returncode == 0, p.stderr
    b = json.loads(p.stdout)
    assert (b["name"], b["hub_id"], b["revision"]) == ("meta-llama/llama-3.2-1b", HUB_ID, C_NEW)
    assert b["location"].endswith(f"snapshots/{C_NEW}")
    assert b["card"] == {"license": "llama3.2", "pipeline_tag": "text-generation", "library_name": "transformers",
                         "language": ["en", "de"], "tags": ["facebook", "meta", "llama"]}
    for ref in (HUB_ID, HUB_ID.upper(), f"{HUB_ID}@{C_NEW}", "meta-llama/llama-3.2-1b"):  # by Hub id, any casing
        shown = run_cli("base", "show", ref, "--json", env=env)
        assert shown.returncode == 0 and json.loads(shown.stdout)["fingerprint"] == b["fingerprint"], ref
    assert "hub id:" in run_cli("base", "show", HUB_ID, env=env).stdout
    assert HUB_ID in run_cli("base", "ls", env=env).stdout


@pytest.mark.parametrize("rev", ["v1.0", C_OLD, C_OLD[:10]])
def test_a_revision_is_a_tag_a_commit_or_a_commit_prefix_and_hf_home_is_honoured(tmp_path, hf_cache, rev):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "HF_HOME": str(hf_cache), "HF_HUB_CACHE": None}
    p = run_cli("base", "add", "--from-hf-cache", f"meta-llama/llama-3.2-1b@{rev}", "--name", "llama", "--json",
                env=env)
    assert p.returncode == 0, p.stderr
    b = json.loads(p.stdout)
    assert (b["name"], b["hub_id"], b["revision"], b["card"]["license"]) == ("llama", HUB_ID, C_OLD, "llama3")


def test_what_is_not_in_the_cache_is_refused_by_name(tmp_path, hf_cache):
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(hf_cache / "hub")}
    p = run_cli("base", "add", "--from-hf-cache", f"{HUB_ID}@nope", env=env)
    assert p.returncode != 0 and "no cached revision 'nope'" in p.stderr and "main, v1.0" in p.stderr
    p = run_cli("base", "add", "--from-hf-cache", "Qwen/Qwen3-0.6B", env=env)
    assert p.returncode != 0 and "Qwen/Qwen3-0.6B is not in the Hugging Face cache" in p.stderr
    p = run_cli("base", "add", "--from-hf-cache", HUB_ID, "--hub-id", HUB_ID, env=env)
    assert p.returncode == 2


def test_a_cache_setting_that_names_a_file_is_a_one_line_error(tmp_path):
    a_file = tmp_path / "hostname"
    a_file.write_text("box\n")
    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(a_file), "HF_HOME": None}
    p = run_cli("base", "add", "--from-hf-cache", HUB_ID, env=env)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"the Hugging Face cache {a_file} is not a folder" in p.stderr.strip().splitlines()[0]


def test_a_folder_with_a_hub_id_is_found_by_it_and_guessed_at_push(registry, tiny_llama, tmp_path):
    b = registry.add_base(tiny_llama, name="llama", revision=C_NEW, hub_id=HUB_ID)
    assert (b.hub_id, b.revision, b.card) == (HUB_ID, C_NEW, {})  # the folder has no README.md
    assert registry.show_base("meta-llama/Llama-3.2-1b").fingerprint == b.fingerprint
    assert [v.name for v in registry.list_bases("llama")] == ["llama"]
    # what training writes: the Hub id in base_model_name_or_path; push guesses the base from it
    a = build_adapter(tiny_llama, tmp_path / "a", target_modules="all-linear")
    conf = json.loads((a / "adapter_config.json").read_text())
    (a / "adapter_config.json").write_text(json.dumps({**conf, "base_model_name_or_path": HUB_ID}))
    v = registry.push(a, name="bot")
    assert v.base is not None and v.base.fingerprint == b.fingerprint and v.compat_status == "ok"
    assert [x.ref for x in registry.search(base=HUB_ID, target_modules=["o_proj"]).items] == ["bot@1"]


def test_a_hub_id_is_checked_and_never_silently_changed(registry, tiny_llama):
    with pytest.raises(InvalidInput, match="Hub repo id"):
        registry.add_base(tiny_llama, name="llama", hub_id="not a hub/id!")
    first = registry.add_base(tiny_llama, name="llama")
    assert first.hub_id is None
    again = registry.add_base(tiny_llama, name="llama", hub_id=HUB_ID)  # learnt later: recorded
    assert not again.created and again.hub_id == HUB_ID
    with pytest.raises(Conflict, match="registered as Hub repo"):
        registry.add_base(tiny_llama, name="llama", hub_id="Other/Model")


def test_the_card_is_read_from_readme_front_matter_and_a_broken_one_is_empty(registry, tiny_llama, tmp_path):
    d = shutil.copytree(tiny_llama, tmp_path / "m")
    (d / "README.md").write_text(CARD)
    assert registry.add_base(d, name="carded").card["pipeline_tag"] == "text-generation"
    e = shutil.copytree(tiny_llama, tmp_path / "broken")
    (e / "README.md").write_text("---\nlicense: [unclosed\n---\n")
    assert registry.add_base(e, name="broken").card == {}


def _two_teams(registry, tiny_llama, tmp_path):
    """team-a and team-b each register the same Hub model under their own names (team-b's newest)."""
    a = registry.add_base(tiny_llama, name="team-a/llama", hub_id=HUB_ID)
    b = registry.add_base(shutil.copytree(tiny_llama, tmp_path / "copy"), name="team-b/llama", hub_id=HUB_ID)
    return a, b


def _hub_adapter(tiny_llama, folder: Path) -> Path:
    ad = build_adapter(tiny_llama, folder, target_modules="all-linear")
    conf = json.loads((ad / "adapter_config.json").read_text())
    (ad / "adapter_config.json").write_text(json.dumps({**conf, "base_model_name_or_path": HUB_ID}))
    return ad


def test_a_hub_id_resolves_to_the_base_of_the_pushing_namespace(registry, tiny_llama, tmp_path):
    a, b = _two_teams(registry, tiny_llama, tmp_path)
    ad = build_adapter(tiny_llama, tmp_path / "ad")
    assert registry.push(ad, name="team-a/sql", base=HUB_ID).base.name == "team-a/llama"
    assert registry.push(ad, name="team-b/sql", base=HUB_ID.lower()).base.name == "team-b/llama"
    assert registry.push(ad, name="team-c/named", base="team-b/llama").base.name == "team-b/llama"  # a name wins
    # the search: a Hub-id --base narrowed to a namespace finds its base's versions
    assert [v.ref for v in registry.search(base=HUB_ID, name="team-a/").items] == ["team-a/sql@1"]
    # no namespace to prefer: refused, without naming the bases
    with pytest.raises(Conflict, match="recorded on 2 registered bases") as e:
        registry.show_base(HUB_ID)
    assert "team-" not in str(e.value)
    with pytest.raises(Conflict, match="name the base by its registry name"):
        registry.push(ad, name="sql", base=HUB_ID)
    with pytest.raises(Conflict):
        registry.search(base=HUB_ID)


def test_push_guesses_the_namespace_s_base_by_hub_id_and_says_why_when_it_cannot(registry, tiny_llama, tmp_path):
    _two_teams(registry, tiny_llama, tmp_path)
    ad = _hub_adapter(tiny_llama, tmp_path / "ad")
    v = registry.push(ad, name="team-a/sql")
    assert v.base is not None and v.base.name == "team-a/llama" and v.base_note is None
    other = registry.push(ad, name="team-c/sql")  # sees neither base: none recorded, and why
    assert other.base is None
    assert other.base_note is not None and "2 registered bases" in other.base_note and "team-" not in other.base_note
    st = registry.settings
    env = {"ADAPTER_REGISTRY_HOME": str(st.home), "ADAPTER_REGISTRY_DB": st.db, "ADAPTER_REGISTRY_STORE": st.store,
           "ADAPTER_REGISTRY_ACTOR": "tester"}
    p = run_cli("push", str(ad), "--name", "team-d/sql", env=env)
    assert p.returncode == 0, p.stderr
    assert "warning: no base recorded" in p.stderr and "base=-" in p.stdout


def test_get_base_by_hub_id_for_a_closed_reader_is_its_own_namespace_s_base(registry, tiny_llama, tmp_path):
    import dataclasses

    from fastapi.testclient import TestClient

    from registry.api import create_app
    from tests.factories import bearer

    a, _b = _two_teams(registry, tiny_llama, tmp_path)
    token = registry.tokens.create("team-a-bot", scope="write", namespace="team-a").token
    app = create_app(registry, dataclasses.replace(registry.settings, open_reads=False))
    with TestClient(app) as c:
        r = c.get(f"/api/v1/bases/{HUB_ID}", headers=bearer(token))
        assert r.status_code == 200 and r.json()["name"] == "team-a/llama"
        assert c.get("/api/v1/bases/team-b/llama", headers=bearer(token)).status_code == 404


def test_a_hub_id_lookup_takes_a_commit_prefix_of_the_recorded_revision(registry, tiny_llama):
    registry.add_base(tiny_llama, name="llama", revision=C_NEW, hub_id=HUB_ID)
    assert registry.show_base(f"{HUB_ID}@{C_NEW[:7]}").revision == C_NEW
    assert registry.show_base(f"{HUB_ID.upper()}@{C_NEW}").revision == C_NEW
    with pytest.raises(Exception, match="unknown base model"):
        registry.show_base(f"{HUB_ID}@{C_NEW[:6]}")  # shorter than a commit prefix


def test_registering_again_compares_the_hub_id_without_regard_to_case(registry, tiny_llama):
    registry.add_base(tiny_llama, name="llama", hub_id=HUB_ID)
    again = registry.add_base(tiny_llama, name="llama", hub_id=HUB_ID.lower())
    assert not again.created and again.hub_id == HUB_ID
