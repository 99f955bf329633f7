"""CUDA runs (skipped without a GPU): the streaming engine on the GPU against peft on the GPU."""

from __future__ import annotations

import pytest

from registry.merge import merge
from tests.factories import assert_same_checkpoint

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_streaming_on_cuda_matches_peft_on_cuda(dtype, bases, adapter, tmp_path):
    base = bases("llama", dtype)
    ad = adapter(base, target_modules=["q_proj", "up_proj", "embed_tokens"], use_dora=False)
    s = merge(base, ad, tmp_path / "s", engine="streaming", device="cuda")
    p = merge(base, ad, tmp_path / "p", engine="peft", device="cuda")
    assert s.device == "cuda"
    assert_same_checkpoint(s.out_dir, p.out_dir)


def test_auto_device_picks_cuda_when_available(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    assert merge(base, adapter(base), tmp_path / "m", device="auto").device == "cuda"
