"""Registry.merge: cached per (base, adapter, dtype, engine), recorded, loadable (SQLite + PostgreSQL)."""

import pytest

from registry.errors import AlreadyExists, BaseModelNotFound, InvalidInput


@pytest.fixture
def pushed(registry, tiny_llama, tiny_adapter):
    registry.add_base(tiny_llama, name="tiny-llama")
    registry.push(tiny_adapter, name="bot", base="tiny-llama")
    return registry


def test_merge_is_recorded_and_asking_again_returns_the_stored_artifact(pushed):
    a = pushed.merge("bot@1", dtype="bf16")
    b = pushed.merge("bot@1", dtype="bfloat16")
    assert a.created and not b.created and a.id == b.id and a.manifest_digest == b.manifest_digest
    assert a.engine == "streaming" and a.dtype == "bfloat16"
    assert a.validation["probes"]
    shown = pushed.show("bot@1")
    assert [m.id for m in shown.merged] == [a.id]
    c = pushed.merge("bot@1", dtype="fp32")
    assert c.id != a.id


def test_merged_folder_loads_and_matches_the_unmerged_adapter(pushed, tiny_llama, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    art = pushed.merge("bot", out=tmp_path / "merged")
    assert art.path == tmp_path / "merged"
    merged = AutoModelForCausalLM.from_pretrained(art.path)
    tok = AutoTokenizer.from_pretrained(art.path)
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), pushed.resolve("bot"))
    ids = tok("merge the adapter", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, ref(ids).logits, rtol=1e-4, atol=1e-4)


def test_merged_cache_is_rebuilt_from_blobs_when_the_local_folder_is_gone(pushed):
    import shutil

    a = pushed.merge("bot@1")
    shutil.rmtree(a.path)
    b = pushed.merge("bot@1")
    assert not b.created and (b.path / "manifest.json").is_file()


def test_merge_refuses_an_existing_out_folder_and_bad_dtype(pushed, tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(AlreadyExists):
        pushed.merge("bot", out=tmp_path / "x")
    with pytest.raises(InvalidInput, match="dtype"):
        pushed.merge("bot", dtype="int4")


def test_merge_needs_a_registered_base(registry, tiny_adapter):
    registry.push(tiny_adapter, name="orphan")
    with pytest.raises(BaseModelNotFound):
        registry.merge("orphan")


def test_work_folders_of_killed_merges_are_swept(pushed):
    import os
    import time

    from registry.workflows.merge import sweep_work_dirs

    root = pushed.settings.cache_dir / "merged"
    old = root / ".work-deadbeef0000"
    (old / "model").mkdir(parents=True)
    young = root / ".work-cafe00000000"
    young.mkdir()
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    assert sweep_work_dirs(root) == 1
    assert not old.exists() and young.exists()
