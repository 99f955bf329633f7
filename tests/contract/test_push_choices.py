"""Registry and Client choose the same adapter of a Trainer output or a multi-adapter save: the
client uploads a subset of the folder (push_files), from which the server must take what a local
push takes from the whole folder."""

from __future__ import annotations

import shutil

import pytest

from registry.errors import InvalidAdapter


def test_checkpoint_choices_agree(reg, trained, tmp_path):
    only = tmp_path / "run"
    for d in trained.glob("checkpoint-*"):
        shutil.copytree(d, only / d.name)
    root = reg.push(trained, name="sft")
    assert root.training["source"] == "checkpoint-4/trainer_state.json" and root.training["args"]["seed"] == 42
    best = reg.push(only, name="sft")
    assert (best.training["selected_checkpoint"], best.training["selected_by"]) == ("checkpoint-2", "best")
    last = reg.push(only, name="sft", checkpoint="last")
    assert (last.training["selected_checkpoint"], last.version) == ("checkpoint-4", 3)
    assert reg.show(last.ref).training["selected_checkpoint"] == "checkpoint-4"
    with pytest.raises(InvalidAdapter, match="no checkpoint-9"):
        reg.push(only, name="sft", checkpoint="9")


def test_adapter_choices_agree(reg, default_and_named):
    res = reg.push_all(default_and_named, name="team-a/bot", names={"sql": "team-a/sql"})
    assert [(i.adapter, i.folder, i.version.ref) for i in res.items] == [
        ("default", ".", "team-a/bot@1"), ("sql", "sql", "team-a/sql@1")]
    one = reg.push(default_and_named, name="team-a/sql", adapter="sql")
    assert one.ref == "team-a/sql@1" and not one.created
    with pytest.raises(InvalidAdapter, match="holds 2 adapters"):
        reg.push(default_and_named, name="bot")


def test_push_all_of_checkpoints_only_pushes_the_chosen_checkpoint(reg, trained, tmp_path):
    """Before, through the Client: push_files(every_adapter=True) found no adapter at the root or in a
    named subfolder and uploaded nothing (400 "no files uploaded"); a local push_all took the best one."""
    only = tmp_path / "run"
    for d in trained.glob("checkpoint-*"):
        shutil.copytree(d, only / d.name)
    res = reg.push_all(only, name="sft")
    assert [(i.adapter, i.folder, i.version.ref) for i in res.items] == [("default", "checkpoint-2", "sft@1")]
    t = res.items[0].version.training
    assert (t["selected_checkpoint"], t["selected_by"]) == ("checkpoint-2", "best")
    last = reg.push_all(only, name="sft", checkpoint="last")
    assert [(i.folder, i.version.ref) for i in last.items] == [("checkpoint-4", "sft@2")]
