"""Bad inputs fail with a clear error, and leave nothing at (or beside) out_dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from registry.errors import CorruptFile, DiskFull, Incompatible, InvalidAdapter, InvalidModel, Unsupported
from registry.merge import merge
from registry.testing.tiny import build_llama
from tests.factories import leftovers


@pytest.mark.parametrize("engine", ["streaming", "peft"])
def test_adapter_for_another_architecture_is_incompatible(engine, bases, adapter, tmp_path):
    gpt2_adapter = adapter(bases("gpt2", "float32"))
    out = tmp_path / "m"
    with pytest.raises(Incompatible):
        merge(bases("llama", "float32"), gpt2_adapter, out, engine=engine)
    assert leftovers(out) == []


def test_adapter_for_a_base_of_another_size_names_the_tensor(bases, adapter, tmp_path):
    wide = build_llama(tmp_path / "wide", hidden_size=96, with_tokenizer=False)
    out = tmp_path / "m"
    with pytest.raises(Incompatible, match=r"lora_[AB]\.weight has shape \[\d+, \d+\], the base needs"):
        merge(bases("llama", "float32"), adapter(wide), out)
    assert leftovers(out) == []


def test_tensors_peft_would_silently_ignore_are_refused_with_their_names(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    ad = adapter(base)  # all 7 projections
    cfg = json.loads((ad / "adapter_config.json").read_text())
    cfg["target_modules"] = ["q_proj"]
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    for engine in ("auto", "peft"):
        with pytest.raises(Incompatible, match="silently ignore") as e:
            merge(base, ad, tmp_path / engine, engine=engine)
        assert "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight" in e.value.names
        assert not any("q_proj" in n for n in e.value.names)
        assert leftovers(tmp_path / engine) == []


def test_missing_tensors_peft_would_randomly_initialise_are_refused_with_their_names(bases, adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    base = bases("llama", "float32")
    ad = adapter(base, init_lora_weights=False)
    f = ad / "adapter_model.safetensors"
    sd = {k: v for k, v in load_file(f).items() if "layers.1.mlp.up_proj" not in k}
    save_file(sd, f, metadata={"format": "pt"})
    with pytest.raises(Incompatible, match="lacks") as e:
        merge(base, ad, tmp_path / "s", engine="streaming")
    assert e.value.names == ["base_model.model.model.layers.1.mlp.up_proj.lora_A.weight",
                             "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"]
    with pytest.raises(Incompatible, match="lacks"):
        merge(base, ad, tmp_path / "p", engine="peft")
    assert leftovers(tmp_path / "s") == [] and leftovers(tmp_path / "p") == []


def test_truncated_base_shard_is_a_corrupt_file(bases, adapter, tmp_path):
    src = bases("llama", "float32", sharded=True)
    base = tmp_path / "base"
    shutil.copytree(src, base)
    shard = sorted(base.glob("model-*.safetensors"))[-1]
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 100)
    out = tmp_path / "m"
    for engine in ("streaming", "peft"):
        with pytest.raises(CorruptFile, match="truncated"):
            merge(base, adapter(src), out, engine=engine)
        assert leftovers(out) == []


def test_missing_tokenizer_is_refused_before_any_work(bases, adapter, tmp_path):
    base = build_llama(tmp_path / "base", with_tokenizer=False)
    out = tmp_path / "m"
    with pytest.raises(InvalidModel, match="no tokenizer"):
        merge(base, adapter(base), out)
    assert leftovers(out) == []


def test_adapter_without_config_or_weights_is_invalid(bases, adapter, tmp_path):
    base = bases("llama", "float32")
    ad = adapter(base)
    (ad / "adapter_model.safetensors").unlink()
    with pytest.raises(InvalidAdapter):
        merge(base, ad, tmp_path / "m")
    (ad / "adapter_config.json").unlink()
    with pytest.raises(InvalidAdapter):
        merge(base, ad, tmp_path / "m")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (we are root in CI); skipped where mounting is not permitted."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", str(d)], check=False)


@pytest.mark.parametrize("engine", ["streaming", "peft"])
def test_full_disk_is_disk_full_and_leaves_no_partial_output(engine, tiny_disk, bases, adapter):
    base = bases("llama", "float32")  # ~440 KB of weights: does not fit in 256 KiB
    out = tiny_disk / "m"
    with pytest.raises(DiskFull):
        merge(base, adapter(base), out, engine=engine)
    assert list(tiny_disk.iterdir()) == []


def test_auto_falls_back_to_peft_for_what_streaming_cannot_do_exactly(bases, adapter, tmp_path):
    base = bases("llama", "float32", tied=True)
    ad = adapter(base, target_modules=["embed_tokens", "lm_head", "q_proj"], ensure_weight_tying=True)
    with pytest.raises(Unsupported, match="ensure_weight_tying"):
        merge(base, ad, tmp_path / "s", engine="streaming")
    assert leftovers(tmp_path / "s") == []
    res = merge(base, ad, tmp_path / "auto")
    assert res.engine == "peft" and "ensure_weight_tying" in res.fallback_reason
    assert (res.out_dir / "manifest.json").exists() and (res.out_dir / "tokenizer.json").exists()


def test_quantized_base_is_not_streamed(bases, adapter, tmp_path):
    src = bases("llama", "float32")
    base = tmp_path / "base"
    shutil.copytree(src, base)
    cfg = json.loads((base / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (base / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Unsupported, match="quantized"):
        merge(base, adapter(src), tmp_path / "m", engine="streaming")


def test_cuda_requested_without_cuda_fails_clearly_and_auto_uses_the_cpu(bases, adapter, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from registry.errors import MergeError

    base = bases("llama", "float32")
    ad = adapter(base)
    with pytest.raises(MergeError, match="CUDA is not available"):
        merge(base, ad, tmp_path / "m", device="cuda")
    assert leftovers(tmp_path / "m") == []
    assert merge(base, ad, tmp_path / "m", device="auto").device == "cpu"


def test_writer_hands_every_buffer_back_even_after_a_failed_write():
    """A failed write (a full disk) used to strand the ring buffers, and the merge then waited forever."""
    from registry.merge.engine import _Writer

    released = []
    w = _Writer(depth=8)
    w.start()

    def fail():
        raise OSError(28, "No space left on device")

    w.put(fail, release=lambda: released.append(0))
    for i in range(1, 4):
        try:
            w.put(lambda: None, release=lambda i=i: released.append(i))
        except OSError:
            pass
    with pytest.raises(OSError):
        w.finish()
    assert sorted(released) == [0, 1, 2, 3]


def test_merge_onto_a_full_block_disk_is_disk_full_and_leaves_nothing(mounted, bases, adapter):
    from registry.errors import DiskFull
    from registry.merge import merge

    mnt = mounted("ext4")
    (mnt / "lost+found").rmdir()
    base = bases("llama", "float32")
    filler = mnt / "filler"
    free = os.statvfs(mnt).f_bfree * os.statvfs(mnt).f_frsize  # root may use every free block
    with open(filler, "wb") as f:
        f.write(bytes(max(0, free - 200_000)))  # ~200 KB left: the ~440 KB of weights do not fit
    with pytest.raises(DiskFull):
        merge(base, adapter(base), mnt / "m", engine="streaming")
    assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("poison", ["nan", "overflow"])
def test_an_adapter_that_makes_non_finite_weights_is_refused_whichever_block_they_are_in(dtype, poison, adapter,
                                                                                        tmp_path):
    """The hot path checks every block of rows it merges (math.merge_linear_into): a NaN or an
    overflow in the last rows of a weight several blocks long is caught, and nothing is left."""
    import torch
    from safetensors.torch import load_file, save_file

    from registry.errors import MergeError

    base = build_llama(tmp_path / "base", dtype=dtype, hidden_size=384, intermediate_size=1000, num_layers=1)
    ad = adapter(base, target_modules=["up_proj"])
    f = ad / "adapter_model.safetensors"
    tensors = load_file(f)
    (key,) = [k for k in tensors if "lora_B" in k]  # up_proj: 1000 rows of 384, 3 blocks
    b = tensors[key].clone()
    if poison == "nan":
        b[-1, 0] = float("nan")
    else:
        b[-1, :] = 3e38
        a_key = key.replace("lora_B", "lora_A")
        tensors[a_key] = torch.full_like(tensors[a_key], 3e38)
    tensors[key] = b
    save_file(tensors, f)
    out = tmp_path / "m"
    with pytest.raises(MergeError, match="non-finite values in merged model.layers.0.mlp.up_proj.weight"):
        merge(base, ad, out, engine="streaming")
    assert leftovers(out) == []
