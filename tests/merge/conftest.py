"""Tiny real models and adapters for the merge tests (built from configs, never downloaded)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from registry.testing.tiny import build_adapter, build_gpt2, build_llama

_count = itertools.count()


@pytest.fixture(scope="session")
def bases(tmp_path_factory):
    """bases(arch, dtype, tied=False) -> folder of a cached tiny base model (built once per session)."""
    root = tmp_path_factory.mktemp("bases")
    cache: dict[tuple, Path] = {}

    def get(arch: str = "llama", dtype: str = "float32", tied: bool = False, sharded: bool = False) -> Path:
        key = (arch, dtype, tied, sharded)
        if key not in cache:
            out = root / "-".join(map(str, key))
            if arch == "llama":
                build_llama(out, dtype=dtype, tie_word_embeddings=tied, max_shard_size="60KB" if sharded else None)
            else:
                build_gpt2(out, dtype=dtype)
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture
def adapter(tmp_path):
    """adapter(base, **lora_kwargs) -> folder of a fresh random adapter for `base`."""

    def make(base: Path, **kwargs) -> Path:
        return build_adapter(base, tmp_path / f"adapter-{next(_count)}", **kwargs)

    return make
