"""Registering adapters: versions, typed fields, refusals that leave nothing behind (SQLite + PostgreSQL)."""

import json
import shutil

import pytest
from sqlalchemy import func, select

from registry.catalog import models as M
from registry.errors import BaseModelNotFound, CorruptFile, Incompatible, InvalidAdapter, InvalidName, UnsafeFormat


def counts(reg):
    with reg.db.read() as s:
        rows = {t: s.scalar(select(func.count()).select_from(t)) for t in
                (M.Adapter, M.AdapterVersion, M.VersionFile, M.Blob, M.Tag)}
    blobs = sum(1 for _ in reg.store.iter_digests())
    return rows, blobs


def test_push_creates_version_one_with_typed_peft_fields(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="tiny-llama")
    v = registry.push(tiny_adapter, name="team-a/support-bot", base="tiny-llama", tags=["task=chat"],
                      description="first")
    assert (v.name, v.version, v.created) == ("team-a/support-bot", 1, True)
    assert v.peft_type == "LORA" and v.rank == 4 and v.alpha == 8.0
    assert set(v.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert v.adapter_dtype == "float32" and v.param_count > 0 and v.size_bytes > 0
    assert v.base.name == "tiny-llama" and v.compat_status == "ok" and v.tags == {"task": "chat"}


def test_second_push_of_same_files_returns_same_version(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="tiny-llama")
    a = registry.push(tiny_adapter, name="bot", base="tiny-llama")
    before = counts(registry)
    b = registry.push(tiny_adapter, name="bot", base="tiny-llama")
    assert (b.version, b.created, b.content_digest) == (1, False, a.content_digest)
    assert counts(registry) == before


def test_new_content_gets_the_next_version_and_blobs_are_stored_once(registry, tiny_llama, tiny_adapter, tmp_path):
    registry.add_base(tiny_llama, name="tiny-llama")
    registry.push(tiny_adapter, name="bot", base="tiny-llama")
    changed = shutil.copytree(tiny_adapter, tmp_path / "changed")
    (changed / "README.md").write_text("a new model card")
    v2 = registry.push(changed, name="bot", base="tiny-llama")
    assert v2.version == 2 and v2.created
    with registry.db.read() as s:
        # the weights and config are shared: only the README differs
        assert s.scalar(select(func.count()).select_from(M.Blob)) == len(list(tiny_adapter.iterdir())) + 1


def test_base_is_linked_from_the_adapter_config_when_it_names_a_registered_base(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="tiny-llama")
    v = registry.push(tiny_adapter, name="bot")  # config's base_model_name_or_path is the tiny_llama folder
    assert v.base is not None and v.base.name == "tiny-llama"


def test_base_registration_is_idempotent_and_fingerprinted(registry, tiny_llama, tiny_llama_other):
    a = registry.add_base(tiny_llama, name="tiny-llama")
    b = registry.add_base(tiny_llama, name="tiny-llama")
    c = registry.add_base(tiny_llama_other, name="tiny-llama", revision="v2")
    assert a.created and not b.created and a.fingerprint == b.fingerprint
    assert c.fingerprint != a.fingerprint and c.layout_hash != a.layout_hash
    assert registry.show_base("tiny-llama").revision == "v2"
    assert registry.show_base(f"tiny-llama@{a.fingerprint[:12]}").fingerprint == a.fingerprint
    assert a.architecture == "LlamaForCausalLM" and a.vocab_size == 260 and a.num_layers == 2


def test_trainer_output_folder_picks_the_final_checkpoint_and_records_the_loss_curve(registry, tiny_adapter, tmp_path):
    from registry.testing.tiny import write_trainer_output

    out = write_trainer_output(tiny_adapter, tmp_path / "run", steps=(10, 20))
    v = registry.push(out, name="trained")
    full = registry.show("trained@1")
    assert full.training["selected_checkpoint"] == "checkpoint-20"
    assert full.training["global_step"] == 20 and len(full.training["loss_curve"]) == 20
    assert v.version == 1


@pytest.mark.parametrize("bad", ["Bad", "-x", "a/b/c", "a b", "x" * 300, "a/", "ok/Team"])
def test_bad_names_are_refused_and_nothing_is_stored(registry, tiny_adapter, bad):
    before = counts(registry)
    with pytest.raises(InvalidName):
        registry.push(tiny_adapter, name=bad)
    assert counts(registry) == before


def _broken_copy(src, dst, mutate):
    d = shutil.copytree(src, dst)
    mutate(d)
    return d


def test_pickle_weights_are_refused(registry, tiny_adapter, tmp_path):
    def to_pickle(d):
        (d / "adapter_model.safetensors").rename(d / "adapter_model.bin")

    d = _broken_copy(tiny_adapter, tmp_path / "p", to_pickle)
    before = counts(registry)
    with pytest.raises(UnsafeFormat, match="pickle"):
        registry.push(d, name="p")
    assert counts(registry) == before


@pytest.mark.parametrize("mutation", ["truncate", "garbage", "no-config", "no-weights", "bad-json", "nan"])
def test_corrupt_or_incomplete_adapters_are_refused_and_nothing_is_stored(registry, tiny_adapter, tmp_path, mutation):
    def mutate(d):
        w = d / "adapter_model.safetensors"
        if mutation == "truncate":
            w.write_bytes(w.read_bytes()[:-100])
        elif mutation == "garbage":
            w.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
        elif mutation == "no-config":
            (d / "adapter_config.json").unlink()
        elif mutation == "no-weights":
            w.unlink()
        elif mutation == "bad-json":
            (d / "adapter_config.json").write_text("{nope")
        elif mutation == "nan":
            import numpy as np
            from safetensors.numpy import load_file, save_file

            sd = load_file(w)
            k = next(k for k in sd if k.endswith("lora_B.weight"))
            sd[k][0, 0] = np.nan
            save_file(sd, w)

    d = _broken_copy(tiny_adapter, tmp_path / mutation, mutate)
    before = counts(registry)
    with pytest.raises((InvalidAdapter, CorruptFile)):
        registry.push(d, name="broken")
    assert counts(registry) == before


def test_wrong_shapes_for_the_base_are_refused(registry, tiny_llama_other, tiny_adapter):
    registry.add_base(tiny_llama_other, name="other")
    before = counts(registry)
    with pytest.raises(Incompatible, match="shape mismatch"):
        registry.push(tiny_adapter, name="bot", base="other")
    assert counts(registry) == before


def test_unknown_base_is_refused(registry, tiny_adapter):
    with pytest.raises(BaseModelNotFound):
        registry.push(tiny_adapter, name="bot", base="nope")


def test_every_push_is_in_the_audit_log(registry, tiny_adapter):
    registry.push(tiny_adapter, name="bot")
    acts = [(a.action, a.target, a.actor) for a in registry.audit()]
    assert ("version.create", "bot@1", "tester") in acts


def test_adapter_with_tokenizer_files_stores_them(registry, tiny_llama, tiny_adapter, tmp_path):
    d = shutil.copytree(tiny_adapter, tmp_path / "tok")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama / f, d / f)
    v = registry.show(registry.push(d, name="tok").ref)
    assert {f.path for f in v.files if f.role == "tokenizer"} == {"tokenizer.json", "tokenizer_config.json"}
    assert json.loads((registry.resolve("tok") / "tokenizer_config.json").read_text())


def test_pickle_weights_are_converted_when_allowed(db_url, settings_for, tiny_adapter, tmp_path):
    import torch
    from safetensors.torch import load_file

    from registry import migrate
    from registry.app import Registry
    from registry.db import make_engine

    d = shutil.copytree(tiny_adapter, tmp_path / "pk")
    sd = load_file(d / "adapter_model.safetensors")
    torch.save(sd, d / "adapter_model.bin")
    (d / "adapter_model.safetensors").unlink()
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    eng.dispose()
    reg = Registry(settings_for(db_url, allow_pickle=True))
    v = reg.show(reg.push(d, name="converted").ref)
    paths = {f.path for f in v.files}
    assert paths >= {"adapter_model.safetensors"} and "adapter_model.bin" not in paths
    back = load_file(reg.resolve("converted") / "adapter_model.safetensors")
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    reg.close()


def test_a_hostile_pickle_is_refused_even_when_pickles_are_allowed(sqlite_registry, settings_for, tiny_adapter,
                                                                  tmp_path):
    import pickle

    from registry.app import Registry

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch /tmp/adapter-registry-pwned-2",))

    d = shutil.copytree(tiny_adapter, tmp_path / "evil")
    (d / "adapter_model.safetensors").unlink()
    (d / "adapter_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    reg = Registry(settings_for(str(sqlite_registry.db.url), allow_pickle=True))
    with pytest.raises(UnsafeFormat, match="weights-only"):
        reg.push(d, name="evil")
    import os

    assert not os.path.exists("/tmp/adapter-registry-pwned-2")
    reg.close()


@pytest.mark.parametrize("kind", ["IA3", "LOHA"])
def test_other_peft_types_are_accepted_and_recorded_against_their_base(registry, tiny_llama, tiny_llama_other,
                                                                        tmp_path, kind):
    from peft import IA3Config, LoHaConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = (IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])
           if kind == "IA3" else LoHaConfig(r=4, target_modules=["q_proj", "v_proj"]))
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg).save_pretrained(tmp_path / kind)
    registry.add_base(tiny_llama, name="tl")
    v = registry.show(registry.push(tmp_path / kind, name=kind.lower(), base="tl").ref)
    assert v.peft_type == kind and v.compat_status == "warn"
    assert v.compat["modules_touched"] == {"IA3": 6, "LOHA": 4}[kind]  # 3 or 2 modules x 2 layers
    assert (v.rank == 4) if kind == "LOHA" else v.rank is None
    registry.add_base(tiny_llama_other, name="other")
    rep = registry.check(v.ref, base="other")
    assert rep.status == "warn"  # same module names: the name check passes on another Llama
