"""A registered base folder whose files changed after registration is not merged as if it were the
registered base (the merged cache is keyed by the old fingerprint): refused in one line, or the
stored copy is used when the weights were stored. Before: the changed folder was used silently."""

from __future__ import annotations

import shutil

import pytest

from registry.errors import IntegrityFailure


def _grow_weights(folder):
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes() + b" " * 8)  # another file at that path (safetensors pads headers with spaces)


def test_a_changed_base_folder_is_refused_in_one_line(sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    reg = sqlite_registry
    base = shutil.copytree(tiny_llama, tmp_path / "base")
    reg.add_base(base, name="llama")
    v = reg.push(tiny_adapter, name="bot", base="llama")
    _grow_weights(base)
    with pytest.raises(IntegrityFailure, match="changed since it was registered") as e:
        reg.merge(v.ref, dtype="fp32")
    assert "\n" not in str(e.value) and "model.safetensors" in str(e.value)


def test_with_stored_weights_the_stored_copy_is_merged(sqlite_registry, tiny_llama, tiny_adapter, tmp_path):
    reg = sqlite_registry
    base = shutil.copytree(tiny_llama, tmp_path / "base")
    reg.add_base(base, name="llama", store_weights=True)
    v = reg.push(tiny_adapter, name="bot", base="llama")
    _grow_weights(base)
    folder = reg.base_folder("llama")
    assert folder != base and (folder / "model.safetensors").stat().st_size == \
        (tiny_llama / "model.safetensors").stat().st_size
    assert reg.merge(v.ref, dtype="fp32").path.is_dir()
