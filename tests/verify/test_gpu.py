"""On a CUDA device (`pytest -m gpu`): verify and merge jobs run on the GPU. Skipped without CUDA."""

from __future__ import annotations

import pytest

from tests.factories import push

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_verify_job_passes_on_cuda_and_records_the_gpu(sqlite_registry, tiny_llama, tiny_adapter, dtype):
    ref = push(sqlite_registry, tiny_llama, tiny_adapter)
    job = sqlite_registry.jobs.verify(ref, dtype=dtype, inline=True, device="cuda")
    assert job.state == "succeeded" and job.result["passed"], job.result
    [v] = sqlite_registry.show(ref).verifications
    assert v.device_kind.startswith("cuda/") and v.versions["cuda"] and v.versions["gpu"] and v.dtype == dtype


def test_worker_cache_keeps_the_base_on_the_gpu_across_adapters(tiny_llama, tiny_adapter, tiny_adapter2):
    from registry.verify import verify
    from registry.verify.cache import ModelCache

    cache = ModelCache(device="cuda")
    for a in (tiny_adapter, tiny_adapter2, tiny_adapter):
        assert verify(tiny_llama, a, cache=cache, base_key="fp", adapter_key=a.name, dtype="bfloat16").passed
    assert (cache.misses, cache.hits) == (1, 2)
    entry = next(iter(cache._entries.values()))
    assert next(entry.model.parameters()).is_cuda


def test_merge_job_on_cuda_produces_a_loadable_checkpoint(sqlite_registry, tiny_llama, tiny_adapter):
    from transformers import AutoModelForCausalLM

    ref = push(sqlite_registry, tiny_llama, tiny_adapter)
    job = sqlite_registry.jobs.merge_async(ref, dtype="bf16", device="cuda", inline=True)
    assert job.state == "succeeded", job.error
    assert "path" not in job.result  # a job result names no server folder; the registry hands it out
    folder = sqlite_registry.merge(ref, dtype="bf16", device="cuda").path  # the job's merge, cached
    model = AutoModelForCausalLM.from_pretrained(folder, device_map="cuda")
    assert next(model.parameters()).dtype == torch.bfloat16
