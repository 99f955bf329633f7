"""Registration and merge agree on which files of a base folder are its weights.

A base is registered by `fingerprint_base` and merged later by `registry.merge.merge`; both must
read the same files, or a base registers with weights the merge then refuses (or ignores). The
folders are real tiny Llamas written by transformers' save_pretrained, then altered the way
people's folders really differ: shards whose index got lost, a second weights file beside
model.safetensors (Mistral repos ship consolidated.safetensors), pickles only.
"""

from __future__ import annotations

import shutil

import pytest

from registry.adapters.basemodel import fingerprint_base
from registry.errors import InvalidInput
from registry.merge import merge
from registry.testing.tiny import build_adapter, build_llama

INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(single-file base, sharded base, adapter that fits both), built once."""
    root = tmp_path_factory.mktemp("checkpoint-files")
    single = build_llama(root / "single")
    sharded = build_llama(root / "sharded", max_shard_size="60KB")
    adapter = build_adapter(single, root / "adapter", target_modules=["q_proj", "v_proj"])
    return single, sharded, adapter


def _registration_error(base):
    with pytest.raises(InvalidInput) as e:
        fingerprint_base(base)
    return e.value


def _merge_error(base, adapter, out):
    with pytest.raises(InvalidInput) as e:
        merge(base, adapter, out)
    return e.value


def _merged_param_count(out) -> int:
    from registry.adapters.safetensors import read_header

    return sum(t.numel for f in sorted(out.glob("*.safetensors")) for t in read_header(f).tensors.values())


def test_shards_without_their_index_are_refused_by_registration_and_merge_alike(tiny, tmp_path):
    _single, sharded, adapter = tiny
    base = shutil.copytree(sharded, tmp_path / "base")
    (base / INDEX).unlink()  # transformers cannot load these shards either
    assert len(list(base.glob("*.safetensors"))) > 1

    registered = _registration_error(base)
    merged = _merge_error(base, adapter, tmp_path / "out")

    assert type(registered) is type(merged) and str(registered) == str(merged)
    assert INDEX in str(registered)


def test_pickle_only_base_is_refused_by_registration_and_merge_alike(tiny, tmp_path):
    single, _sharded, adapter = tiny
    base = shutil.copytree(single, tmp_path / "base")
    (base / "model.safetensors").rename(base / "pytorch_model.bin")

    registered = _registration_error(base)
    merged = _merge_error(base, adapter, tmp_path / "out")

    assert type(registered) is type(merged) and str(registered) == str(merged)
    assert "pytorch_model.bin" in str(registered)


@pytest.mark.parametrize("layout", ["single", "sharded"])
def test_a_second_weights_file_beside_the_checkpoint_is_not_counted_by_either(tiny, tmp_path, layout):
    single, sharded, adapter = tiny
    base = shutil.copytree(single if layout == "single" else sharded, tmp_path / "base")
    # what transformers loads is model.safetensors (or the index); this copy is never read
    shutil.copyfile(next(base.glob("model*.safetensors")), base / "consolidated.safetensors")

    fp = fingerprint_base(base)
    res = merge(base, adapter, tmp_path / "out")

    assert "consolidated.safetensors" not in fp.files
    assert fp.param_count == _merged_param_count(res.out_dir)


def test_model_safetensors_is_read_over_an_index_beside_it_as_transformers_does(tiny, tmp_path):
    from registry.adapters.checkpoint import checkpoint_files

    single, sharded, _adapter = tiny
    base = shutil.copytree(sharded, tmp_path / "base")
    shutil.copyfile(single / "model.safetensors", base / "model.safetensors")
    assert checkpoint_files(base) == [base / "model.safetensors"]


def test_an_index_naming_files_outside_the_folder_is_refused(tmp_path):
    import json

    from registry.adapters.checkpoint import checkpoint_files
    from registry.errors import BaseValidationFailed

    (tmp_path / INDEX).write_text(json.dumps({"weight_map": {"w": "../elsewhere.safetensors"}}))
    with pytest.raises(BaseValidationFailed, match="outside the folder") as e:
        checkpoint_files(tmp_path)
    assert e.value.codes == ["BASE_INDEX_PATH"]
