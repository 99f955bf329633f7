"""Pushing what transformers' Trainer really writes (the layout TRL's SFTTrainer shares):
checkpoint-N/ folders, then `save_model()` at the root without trainer_state.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.errors import InvalidAdapter, InvalidInput
from registry.storage.digest import sha256_file
from tests.factories import cli_env, run_cli


@pytest.fixture
def checkpoints_only(trained, tmp_path) -> Path:
    """The same run without `save_model()`: only checkpoint-2/ and checkpoint-4/."""
    out = tmp_path / "run"
    out.mkdir()
    for d in trained.glob("checkpoint-*"):
        shutil.copytree(d, out / d.name)
    return out


def _weights(folder: Path) -> str:
    return sha256_file(folder / "adapter_model.safetensors")


def _pushed_weights(reg, v) -> str:
    return next(f.digest for f in reg.show(v.ref).files if f.path == "adapter_model.safetensors")


def test_the_real_trainer_output_is_what_these_tests_assume(trained):
    assert not (trained / "trainer_state.json").exists() and (trained / "training_args.bin").is_file()
    state = json.loads((trained / "checkpoint-4" / "trainer_state.json").read_text())
    assert Path(state["best_model_checkpoint"]).name == "checkpoint-2" and state["global_step"] == 4


def test_a_root_without_trainer_state_takes_the_training_record_from_the_newest_checkpoint(registry, tiny_llama,
                                                                                          trained):
    registry.add_base(tiny_llama, name="tiny")
    v = registry.push(trained, name="sft", base="tiny")
    t = registry.show(v.ref).training
    assert t is not None, "the training record was lost (trainer_state.json lives in checkpoint-N/)"
    assert t["source"] == "checkpoint-4/trainer_state.json" and t["global_step"] == 4
    assert [s for s, _loss in t["loss_curve"]] == [1, 2, 3, 4]
    assert t["args_source"] == "training_args.bin" and t["args"]["learning_rate"] == 3e-4
    assert "selected_checkpoint" not in t  # the root's own adapter (save_model) was pushed
    assert _pushed_weights(registry, v) == _weights(trained)
    assert v.training == t  # the push result says it too


def test_checkpoints_only_take_best_model_checkpoint_not_the_highest_step(registry, tiny_llama, checkpoints_only):
    registry.add_base(tiny_llama, name="tiny")
    v = registry.push(checkpoints_only, name="sft", base="tiny")
    t = v.training
    assert t["selected_checkpoint"] == "checkpoint-2" and t["selected_by"] == "best"
    assert t["source"] == "checkpoint-2/trainer_state.json"
    assert _pushed_weights(registry, v) == _weights(checkpoints_only / "checkpoint-2")


def test_checkpoint_picks_last_best_or_a_step(registry, tiny_llama, trained, checkpoints_only):
    registry.add_base(tiny_llama, name="tiny")
    last = registry.push(checkpoints_only, name="sft", base="tiny", checkpoint="last")
    assert last.training["selected_checkpoint"] == "checkpoint-4" and last.training["selected_by"] == "last"
    assert _pushed_weights(registry, last) == _weights(checkpoints_only / "checkpoint-4")
    step = registry.push(checkpoints_only, name="sft", base="tiny", checkpoint="2")
    assert (step.training["selected_checkpoint"], step.training["selected_by"]) == ("checkpoint-2", "step")
    best = registry.push(trained, name="from-root", base="tiny", checkpoint="best")  # past the root's adapter
    assert best.training["selected_checkpoint"] == "checkpoint-2"
    with pytest.raises(InvalidAdapter, match="no checkpoint-7") as e:
        registry.push(checkpoints_only, name="sft", checkpoint="7")
    assert "checkpoint-2, checkpoint-4" in e.value.hint
    with pytest.raises(InvalidInput, match="last, best or a step"):
        registry.push(checkpoints_only, name="sft", checkpoint="worst")


def test_a_best_checkpoint_that_is_gone_falls_back_to_the_last_and_says_so(registry, checkpoints_only):
    shutil.rmtree(checkpoints_only / "checkpoint-2")
    v = registry.push(checkpoints_only, name="sft")
    assert v.training["selected_checkpoint"] == "checkpoint-4" and v.training["selected_by"] == "last"
    assert "checkpoint-2 is not in the folder" in v.training["selection_note"]
    with pytest.raises(InvalidAdapter, match="best_model_checkpoint checkpoint-2 is not in the folder"):
        registry.push(checkpoints_only, name="sft", checkpoint="best")


def test_the_cli_says_which_checkpoint_it_took(registry, tiny_llama, checkpoints_only):
    env = cli_env(registry.settings)
    r = run_cli("push", str(checkpoints_only), "--name", "sft", env=env)
    assert r.returncode == 0, r.stderr
    assert "took checkpoint-2 (best_model_checkpoint)" in r.stdout
    r = run_cli("push", str(checkpoints_only), "--name", "sft", "--checkpoint", "last", "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["training"]["selected_checkpoint"] == "checkpoint-4" and doc["version"] == 2


@pytest.mark.parametrize("weights", ["safetensors", "pickle"])
def test_with_pickles_allowed_a_push_keeps_its_training_record(sqlite_url, settings_for, tiny_llama,
                                                               checkpoints_only, weights):
    """allow_pickle converts the chosen checkpoint into a copy; the record is read from the original."""
    from registry.app import Registry

    if weights == "pickle":
        import torch
        from safetensors.torch import load_file

        ck = checkpoints_only / "checkpoint-2"
        torch.save(load_file(ck / "adapter_model.safetensors"), ck / "adapter_model.bin")
        (ck / "adapter_model.safetensors").unlink()
    reg = Registry(settings_for(sqlite_url, allow_pickle=True))
    try:
        reg.add_base(tiny_llama, name="tiny")
        v = reg.push(checkpoints_only, name="sft", base="tiny")
        t = reg.show(v.ref).training
        assert t is not None, "the training record was lost"
        assert (t["selected_checkpoint"], t["selected_by"]) == ("checkpoint-2", "best")
        assert t["source"] == "checkpoint-2/trainer_state.json" and t["args"]["learning_rate"] == 3e-4
        assert v.training == t
    finally:
        reg.close()
