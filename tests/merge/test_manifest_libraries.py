"""manifest.json names the same four libraries as ever: its bytes are part of every merged artifact."""

import json
from importlib import metadata

from registry.merge import merge


def test_manifest_records_torch_transformers_peft_and_safetensors_versions_only(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    res = merge(base, adapter(base, target_modules=["q_proj"]), tmp_path / "out")

    libraries = json.loads((res.out_dir / "manifest.json").read_text())["recipe"]["libraries"]

    assert libraries == {lib: metadata.version(lib) for lib in ("torch", "transformers", "peft", "safetensors")}
