"""From a reference to a loaded model: `resolve` (offline-loadable folders, `local_dir`), `load`,
`load_merged`, locally and through `registry.Client`.

The adapter here was trained on a Hub base (its config says `Meta-Llama/Llama-3.2-1B`, as a real
training run's does) and registered against a local base folder: loading must never need the Hub.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from registry.errors import AlreadyExists, BaseModelNotFound, NotFound
from registry.storage.digest import sha256_file
from tests.factories import ROOT

HUB_BASE = "Meta-Llama/Llama-3.2-1B"
IDS = [[1, 5, 9, 12, 40]]


@pytest.fixture(scope="module")
def hub_trained(models_dir, tiny_adapter):
    """tiny_adapter as a training run on the Hub base writes it: the config names the Hub id."""
    out = models_dir / "hub-trained"
    if not out.exists():
        shutil.copytree(tiny_adapter, out)
        cfg = json.loads((out / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = HUB_BASE
        (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return out


@pytest.fixture
def reg(sqlite_registry, tiny_llama, hub_trained):
    sqlite_registry.add_base(tiny_llama, name="tiny-llama")
    sqlite_registry.push(hub_trained, name="team-a/support-bot", base="tiny-llama")
    return sqlite_registry


def logits(model):
    import torch

    with torch.no_grad():
        return model(torch.tensor(IDS)).logits


def reference(tiny_llama, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(adapter)).eval()


def test_resolved_config_names_the_local_base_and_the_catalog_keeps_the_original(reg, tiny_llama, hub_trained):
    from registry.workflows.resolve import adapter_folder

    path = reg.resolve("team-a/support-bot@1")
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama)
    v = reg.show("team-a/support-bot@1")
    assert v.base_model_hint == HUB_BASE and v.config["base_model_name_or_path"] == HUB_BASE
    stored = {f.path: f.digest for f in v.files}
    assert stored["adapter_config.json"] == sha256_file(hub_trained / "adapter_config.json")  # the blob as pushed
    for rel, digest in stored.items():  # every other file is the stored blob
        if rel != "adapter_config.json":
            assert sha256_file(path / rel) == digest
    # merge and verify read the blob-identical folder, not the rewritten one
    plain = adapter_folder(reg.core, "team-a/support-bot@1")
    assert plain != path and sha256_file(plain / "adapter_config.json") == stored["adapter_config.json"]
    assert reg.resolve("team-a/support-bot@1") == path  # sealed and cached: the same folder again


def test_auto_peft_model_loads_the_resolved_folder_offline(reg, tiny_llama, hub_trained):
    """Before: the resolved config named the Hub id, and an offline load failed on it."""
    import torch

    path = reg.resolve("team-a/support-bot@1")
    code = ("import sys, json, torch\nfrom peft import AutoPeftModelForCausalLM\n"
            "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]).eval()\n"
            f"with torch.no_grad(): print(json.dumps(m(torch.tensor({IDS})).logits.flatten().tolist()))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-c", code, str(path)], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    got = torch.tensor(json.loads(p.stdout.strip().splitlines()[-1]))
    assert torch.equal(got, logits(reference(tiny_llama, hub_trained)).flatten())


def test_an_edited_resolved_config_is_rebuilt_and_merge_still_reads_the_blob(reg, tiny_llama):
    path = reg.resolve("team-a/support-bot@1")
    cfg = path / "adapter_config.json"
    good = cfg.read_bytes()
    cfg.chmod(0o644)
    cfg.write_bytes(good.replace(str(tiny_llama).encode(), b"/elsewhere/" + b"x" * (len(str(tiny_llama)) - 11)))
    assert len(cfg.read_bytes()) == len(good)  # same size: only the hash tells
    again = reg.resolve("team-a/support-bot@1")
    assert (again / "adapter_config.json").read_bytes() == good
    assert reg.merge("team-a/support-bot@1", dtype="fp32").path.is_dir()  # the blob folder is intact


def test_an_edited_cached_original_config_is_not_rewritten_into_a_new_loadable_folder(reg):
    """The loadable folder is derived from the config blob, checked against its digest: a cached copy
    edited in place (it is a hard link in the stored folder resolve hands out) is fetched again
    (before: the edit was sealed into a new loadable folder, lora_alpha 9 against the catalog's 8)."""
    v = reg.show("team-a/support-bot@1")
    first = json.loads((reg.resolve(v.ref) / "adapter_config.json").read_text())
    orig = reg.settings.cache_dir / "adapters" / v.content_digest / "adapter_config.json"
    data = orig.read_bytes()
    alpha = f'"lora_alpha": {int(v.alpha)}'.encode()
    assert alpha in data
    orig.chmod(0o644)
    orig.write_bytes(data.replace(alpha, f'"lora_alpha": {int(v.alpha) + 1}'.encode()))  # same size, in place
    again = json.loads((reg.resolve(v.ref) / "adapter_config.json").read_text())
    assert again["lora_alpha"] == first["lora_alpha"] == v.alpha


def test_local_dir_is_a_copy_the_caller_owns(reg, tmp_path):
    cached = reg.resolve("team-a/support-bot@1")
    mine = reg.resolve("team-a/support-bot@1", local_dir=tmp_path / "support-bot")
    assert mine == tmp_path / "support-bot"
    names = sorted(p.name for p in mine.iterdir())
    assert ".adapter-registry-folder" not in names and "adapter_config.json" in names
    for name in names:
        assert (mine / name).read_bytes() == (cached / name).read_bytes()
        assert not os.path.samefile(mine / name, cached / name)  # writing here never changes the cache
    with pytest.raises(AlreadyExists):
        reg.resolve("team-a/support-bot@1", local_dir=mine)


def test_load_is_peft_on_the_registered_base_in_the_asked_dtype(reg, tiny_llama, hub_trained):
    import torch
    from peft import PeftModel

    model = reg.load("team-a/support-bot@1")
    assert isinstance(model, PeftModel) and not model.training
    assert torch.equal(logits(model), logits(reference(tiny_llama, hub_trained)))
    half = reg.load("team-a/support-bot", dtype="bf16")
    assert next(half.get_base_model().parameters()).dtype == torch.bfloat16


def test_load_merged_merges_once_and_matches_the_unmerged_model(reg):
    import torch

    merged = reg.load_merged("team-a/support-bot@1", dtype="fp32")
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert torch.allclose(logits(merged), logits(reg.load("team-a/support-bot@1")), atol=1e-5)
    reg.load_merged("team-a/support-bot@1", dtype="fp32")
    assert len(reg.merged("team-a/support-bot@1")) == 1  # the cached artifact the second time


def test_without_a_base_resolve_hands_out_the_stored_files_and_load_says_why_not(sqlite_registry, hub_trained):
    reg = sqlite_registry
    reg.push(hub_trained, name="loose")
    path = reg.resolve("loose@1")
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_BASE
    with pytest.raises(BaseModelNotFound) as e:
        reg.load("loose@1")
    assert "set-base" in e.value.hint


def hub_cache(root, repo_id: str, model) -> str:
    """A Hugging Face cache holding `model` as the main snapshot of `repo_id`, laid out as huggingface_hub
    lays it out (refs/main -> snapshots/<commit>/ with links into blobs/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in model.iterdir():
        blob = repo / "blobs" / sha256_file(f)
        shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    return str(root)


@pytest.fixture
def server(reg):
    from registry.api.app import create_app
    from registry.demo import ServerThread

    with ServerThread(create_app(reg)) as s:
        yield s


def client_of(server, reg, tmp_path, scope: str):
    from registry import Client

    token = reg.tokens.create(f"loader-{scope}", scope=scope).token
    return Client(server.url, token=token, cache_dir=tmp_path / f"client-cache-{scope}")


def test_client_resolve_load_and_load_merged_with_the_base_folder_it_is_shown(reg, server, tiny_llama, hub_trained,
                                                                               tmp_path):
    import torch

    with client_of(server, reg, tmp_path, "admin") as client:  # an admin is shown the base's folder
        path = client.resolve("team-a/support-bot@1")
        assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama)
        assert path.is_relative_to(tmp_path / "client-cache-admin")
        assert torch.equal(logits(client.load("team-a/support-bot@1")), logits(reference(tiny_llama, hub_trained)))
        with pytest.raises(NotFound) as e:
            client.load_merged("team-a/support-bot@1")
        assert "--async" in e.value.hint
        reg.merge("team-a/support-bot@1", dtype="fp32")  # what a worker's merge job records
        merged = client.load_merged("team-a/support-bot@1", dtype="fp32")
        assert torch.allclose(logits(merged), logits(reg.load_merged("team-a/support-bot@1", dtype="fp32")))
        copy = client.resolve("team-a/support-bot@1", local_dir=tmp_path / "mine")
        assert (copy / "adapter_config.json").read_bytes() == (path / "adapter_config.json").read_bytes()


def test_client_finds_a_hub_base_in_the_local_hugging_face_cache_or_says_it_is_not_here(
        reg, server, tiny_llama, hub_trained, tmp_path, monkeypatch):
    import torch
    from huggingface_hub import constants

    with reg.db.write() as s:  # until add_base(hub_id=) lands
        from registry.catalog import queries as Q

        Q.get_base(s, "tiny-llama").hub_id = HUB_BASE
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with client_of(server, reg, tmp_path, "read") as client:  # a reader is not shown the server's folders
        with pytest.raises(BaseModelNotFound) as e:
            client.load("team-a/support-bot@1")
        assert "not on this machine" in str(e.value) and "\n" not in str(e.value)
        stored = client.resolve("team-a/support-bot@1")
        assert json.loads((stored / "adapter_config.json").read_text())["base_model_name_or_path"] == HUB_BASE

        monkeypatch.setattr(constants, "HF_HUB_CACHE", hub_cache(tmp_path / "hf-cache", HUB_BASE, tiny_llama))
        path = client.resolve("team-a/support-bot@1")
        named = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert named.startswith(str(tmp_path / "hf-cache")) and "/snapshots/" in named
        assert torch.equal(logits(client.load("team-a/support-bot@1")), logits(reference(tiny_llama, hub_trained)))
