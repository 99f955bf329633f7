"""AdaLoRA as peft writes it: `rank_pattern` is the allocator's mask per module (null before
allocation), `r` is LoraConfig's unused default and `init_r` the rank the layers were built with.

Before: both a fresh and a trained AdaLoRA save were refused ("rank_pattern must map module names
to positive integers"), so AdaLoRA could not be catalogued at all.
"""

from __future__ import annotations

import json

import pytest


def _adalora(tiny_llama, out, *, allocate: bool):
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = peft.AdaLoraConfig(init_r=6, target_r=2, lora_alpha=16, total_step=6, tinit=1, tfinal=1, deltaT=1,
                             target_modules=["q_proj", "v_proj"])
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), cfg)
    if allocate:  # a few real steps of AdaLoRA's own training loop, so its allocator writes rank_pattern
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ids = torch.randint(0, 200, (2, 8))
        for step in range(6):
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            model.base_model.update_and_allocate(step)
            opt.zero_grad()
    model.save_pretrained(out)
    return json.loads((out / "adapter_config.json").read_text())


@pytest.mark.parametrize("allocate", [False, True], ids=["fresh", "allocated"])
def test_adalora_saves_are_pushed_with_their_ranks(sqlite_registry, tiny_llama, tmp_path, allocate):
    reg = sqlite_registry
    conf = _adalora(tiny_llama, tmp_path / "ada", allocate=allocate)
    assert (conf["rank_pattern"] is None) is (not allocate)
    reg.add_base(tiny_llama, name="llama")
    v = reg.push(tmp_path / "ada", name="ada", base="llama")
    assert (v.peft_type, v.rank, v.alpha) == ("ADALORA", 6, 16.0)
    if allocate:
        ranks = sorted(sum(m) for m in conf["rank_pattern"].values())
        assert (v.min_rank, v.max_rank) == (ranks[0], ranks[-1]) and ranks[-1] < 6
        assert [x.ref for x in reg.search(max_rank=ranks[-1]).items] == [v.ref]
        assert reg.search(min_rank=ranks[-1] + 1).items == ()
    else:
        assert (v.min_rank, v.max_rank) == (6, 6)
    assert reg.search(peft_type="ADALORA", target_modules=["v_proj"]).items[0].ref == v.ref


def test_a_malformed_adalora_mask_is_refused(sqlite_registry, tiny_llama, tmp_path):
    from registry.errors import AdapterValidationFailed

    conf = _adalora(tiny_llama, tmp_path / "ada", allocate=False)
    (tmp_path / "ada" / "adapter_config.json").write_text(json.dumps({**conf, "rank_pattern": {"x": 3}}))
    with pytest.raises(AdapterValidationFailed, match="lists of booleans"):
        sqlite_registry.push(tmp_path / "ada", name="ada")
