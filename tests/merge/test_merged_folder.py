"""The merged folder: loads with transformers, generates like base + adapter, is reproducible."""

from __future__ import annotations

import json

import pytest

from registry.errors import AlreadyExists
from registry.merge import merge
from registry.testing.tiny import build_tokenizer
from tests.factories import leftovers


def test_merged_folder_loads_and_generates_the_same_tokens_as_base_plus_adapter(bases, adapter, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = bases("llama", "float32")
    ad = adapter(base, scale=0.1)
    res = merge(base, ad, tmp_path / "merged", validate=True)
    assert res.engine == "streaming" and res.validation["logits"]["passed"]

    tok = AutoTokenizer.from_pretrained(res.out_dir)
    merged = AutoModelForCausalLM.from_pretrained(res.out_dir).eval()
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), ad).eval()
    ids = tok("merge the adapter", return_tensors="pt").input_ids
    with torch.no_grad():
        got = merged.generate(ids, max_new_tokens=12, do_sample=False)
        want = ref.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
    assert got.tolist() == want.tolist()
    assert tok.chat_template  # chat template copied with the tokenizer


def test_folder_has_index_config_card_and_manifest_listing_every_file(bases, adapter, tmp_path):
    base = bases("llama", "bfloat16")
    card = {"adapter": {"name": "team/support-bot", "version": 3, "digest": "sha256:abc"},
            "base": {"name": "tiny-llama", "fingerprint": "sha256:def", "hub_id": "org/tiny-llama"},
            "tags": ["support"]}
    res = merge(base, adapter(base), tmp_path / "m", card=card)
    out = res.out_dir
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors.index.json", "config.json", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "chat_template.jinja", "README.md", "manifest.json"} <= names
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "base_model_relation: merge" in readme
    assert "base_model: org/tiny-llama" in readme
    assert "name: team/support-bot" in readme and "digest: sha256:abc" in readme and "- support\n" in readme
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert set(res.files) == names
    assert manifest["recipe"]["engine"] == "streaming"
    assert manifest["recipe"]["adapter"]["digest"] == "sha256:abc"
    assert manifest["recipe"]["libraries"]["peft"]
    assert manifest["validation"]["probes"]["passed"]
    from registry.merge.checkpoint import sha256_file
    assert all(sha256_file(out / f) == d for f, d in res.files.items())


def test_same_inputs_give_byte_identical_weight_files(bases, adapter, tmp_path):
    base = bases("llama", "bfloat16", sharded=True)
    ad = adapter(base, use_dora=True)
    a = merge(base, ad, tmp_path / "a", max_shard_size="40KB")
    b = merge(base, ad, tmp_path / "b", max_shard_size="40KB")
    weights = [f for f in a.files if f.endswith(".safetensors")]
    assert len(weights) > 1
    assert {f: a.files[f] for f in weights} == {f: b.files[f] for f in weights}
    assert a.files == b.files  # the manifest too: no timestamps, no paths


def test_tokenizer_files_are_copied_byte_for_byte_preferring_the_adapters(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    ad = adapter(base)
    build_tokenizer(ad, vocab_size=256)
    (ad / "tokenizer_config.json").write_text((ad / "tokenizer_config.json").read_text() + "\n")  # mark it
    res = merge(base, ad, tmp_path / "m")
    assert (res.out_dir / "tokenizer_config.json").read_bytes() == (ad / "tokenizer_config.json").read_bytes()
    assert (res.out_dir / "tokenizer.json").read_bytes() == (ad / "tokenizer.json").read_bytes()
    res2 = merge(base, adapter(base), tmp_path / "m2")
    assert (res2.out_dir / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()


def test_existing_out_dir_is_refused_and_left_alone(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(AlreadyExists):
        merge(base, adapter(base), out)
    assert (out / "keep").read_text() == "x"
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert leftovers(tmp_path / "other") == []


def test_progress_reports_every_tensor(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    seen = []
    merge(base, adapter(base), tmp_path / "m", progress=lambda done, total, what: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))
