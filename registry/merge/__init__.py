"""Merge a LoRA adapter into its base model: merged checkpoints bit-identical to peft's.

`merge()` is the one entry point. The default engine streams the base shard by shard
(engine.py) and reproduces peft's arithmetic exactly; the peft engine (peft_engine.py) is the
reference and the fallback for what streaming cannot do exactly. Importing this package does not
import torch: lookups elsewhere in the registry stay light.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import dtypes
from registry.enums import Engine
from registry.errors import InvalidAdapter, InvalidInput, MergeError, UnsafeFormat, Unsupported
from registry.versions import library_versions

if TYPE_CHECKING:
    from registry.adapters.safetensors import TensorInfo
    from registry.merge.plan import Plan

STREAMING_VERSION = "streaming/1"
ENGINES = tuple(Engine)  # registry/enums.py says what each does
# The libraries manifest.json records, fixed on purpose: the manifest is one of the merged files,
# which are byte-identical from run to run; another library here would change every merge's bytes.
MANIFEST_LIBRARIES = ("torch", "transformers", "peft", "safetensors")


@dataclass(frozen=True)
class MergeResult:
    """A merged model folder, complete and in place."""

    out_dir: Path
    engine: str  # "streaming" | "peft": the engine that actually ran
    engine_version: str
    dtype: str  # "bfloat16", "float16", "float32"
    device: str
    files: dict[str, str]  # relative path -> sha256, every file including manifest.json
    size_bytes: int
    validation: dict = field(default_factory=dict)
    fallback_reason: str | None = None  # why "auto" ran peft instead of streaming
    seconds: float = 0.0


def merge(
    base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    *,
    engine: str = "auto",
    dtype: str | None = None,
    device: str = "cpu",
    max_shard_size: str | int = "5GB",
    card: dict | None = None,
    validate: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    on_shard: Callable[[Path, str, int], None] | None = None,
    tee: Path | None = None,
) -> MergeResult:
    """Merge the PEFT LoRA adapter in `adapter_dir` into the base in `base_dir`, writing `out_dir`.

    Args:
        engine: "streaming", "peft", or "auto" (streaming; peft only where streaming is Unsupported).
        dtype: output dtype ("bfloat16", "float16", "float32"); default: the base's.
        device: "cpu", "cuda[:n]", or "auto" (cuda when available).
        max_shard_size: shard size limit, e.g. "5GB" or a byte count.
        card: what the model card and recipe say: {"adapter": {name, version, digest, peft_type},
            "base": {name, fingerprint, hub_id, card}, "tags": [...], "evals": [...]} (card.py).
        validate: also compare logits against base + unmerged adapter (slow: loads both).
        progress: called as progress(done, total, what) while tensors are written.
        on_shard: called as on_shard(path, sha256, size) from the writer thread as each weight
            shard is complete, while the next is merged (the streaming engine only; the path is in a
            staging folder that is renamed to out_dir at the end, so open it at once).
        tee: an existing folder that also receives every weight shard, written by the same writes
            as out_dir's (the streaming engine only; the peft engine leaves it empty). The caller
            owns it: nothing else is put there, and it is not removed when the merge fails.

    Returns:
        MergeResult; out_dir holds shards, index, config, generation config, tokenizer, README.md
        and manifest.json.

    Raises:
        AlreadyExists: out_dir exists. InvalidAdapter / InvalidModel / CorruptFile: bad inputs.
        Incompatible: the adapter does not fit the base. Unsupported: engine="streaming" cannot do
        it exactly. DiskFull: no space left. MergeError: the merge or its validation failed.
        Nothing is left at out_dir (nor beside it) when it raises.
    """
    from registry.merge import checkpoint
    from registry.merge.card import write_card
    from registry.merge.st import parse_size

    t0 = time.monotonic()
    if engine not in ENGINES:
        raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    card = card or {}
    shard_bytes = parse_size(max_shard_size)
    inputs = _read_inputs(Path(base_dir), Path(adapter_dir), dtype=dtype, device=device)
    plan, fallback_reason = _plan(inputs, engine)

    with checkpoint.staging(Path(out_dir)) as tmp:
        if plan is not None:
            used, version, known, validation = _write_streamed(plan, inputs, tmp, shard_bytes, progress, on_shard, tee)
        else:
            used, version, known, validation = _write_with_peft(inputs, tmp, max_shard_size)
        tok_source = checkpoint.copy_tokenizer(inputs.adapter_dir, inputs.base_dir, tmp)
        write_card(tmp, card, engine=used, dtype=inputs.dtype)
        if validate:
            from registry.merge.validate import check_logits

            validation["logits"] = check_logits(tmp, inputs.base_dir, inputs.adapter_dir,
                                               dtype=dtypes.TO_SAFETENSORS[inputs.dtype], device=inputs.device)
        recipe = _recipe(card, inputs, engine=used, engine_version=version, max_shard_size=shard_bytes,
                         tokenizer_from=tok_source)
        files = checkpoint.write_manifest(tmp, known=known, recipe=recipe, validation=validation)
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())

    return MergeResult(out_dir=Path(out_dir), engine=used, engine_version=version, dtype=inputs.dtype,
                       device=inputs.device, files=files, size_bytes=size, validation=validation,
                       fallback_reason=fallback_reason, seconds=time.monotonic() - t0)


@dataclass(frozen=True)
class _Inputs:
    """What a merge reads before it writes anything: configs, headers, the output dtype and device."""

    base_dir: Path
    adapter_dir: Path
    adapter_cfg: dict
    adapter_file: Path
    adapter_hdr: dict[str, TensorInfo]
    base_cfg: dict
    base_hdr: dict[str, TensorInfo]
    dtype: str  # canonical: "bfloat16", "float16", "float32"
    device: str


def _read_inputs(base_dir: Path, adapter_dir: Path, *, dtype: str | None, device: str) -> _Inputs:
    """Cheap checks first, without torch: bad inputs fail in milliseconds and leave nothing behind."""
    from registry.adapters.checkpoint import read_checkpoint
    from registry.adapters.safetensors import read_header
    from registry.merge import checkpoint
    from registry.merge.structure import read_config

    adapter_cfg, adapter_file = _read_adapter(adapter_dir)
    adapter_hdr = read_header(adapter_file).tensors
    base_cfg = read_config(base_dir)
    base_hdr = read_checkpoint(base_dir)
    checkpoint.tokenizer_source(adapter_dir, base_dir)
    out_dtype = dtypes.or_default(dtype, _base_dtype(base_cfg, base_hdr))
    return _Inputs(base_dir, adapter_dir, adapter_cfg, adapter_file, adapter_hdr, base_cfg, base_hdr, out_dtype,
                   _resolve_device(device))


def _plan(inputs: _Inputs, engine: str) -> tuple[Plan | None, str | None]:
    """(the streaming plan, or None when peft merges; why "auto" fell back to peft, or None).

    The plan runs for every engine: it is what refuses adapters whose tensors peft would silently
    ignore or leave randomly initialised, so engine="peft" refuses them too.
    """
    from registry.merge.plan import check_config, make_plan
    from registry.merge.structure import load_structure

    cfg, base_hdr = inputs.adapter_cfg, inputs.base_hdr
    try:
        check_config(cfg)
        structure = load_structure(inputs.base_dir, {k: v.shape for k, v in base_hdr.items()}, cfg)
        plan = make_plan(cfg, {k: (v.dtype, v.shape) for k, v in inputs.adapter_hdr.items()},
                         {k: (v.dtype, v.shape) for k, v in base_hdr.items()}, structure,
                         dtypes.TO_SAFETENSORS[inputs.dtype])
    except Unsupported as e:
        if engine == "streaming":
            raise
        return None, e.message if engine == "auto" else None
    return (None if engine == "peft" else plan), None


def _write_streamed(plan: Plan, inputs: _Inputs, tmp: Path, shard_bytes: int,
                    progress: Callable[[int, int, str], None] | None,
                    on_shard: Callable[[Path, str, int], None] | None,
                    tee: Path | None = None) -> tuple[str, str, dict[str, str], dict]:
    """The streaming engine's shards, index, config and generation config: (engine, version, digests, validation)."""
    from registry.merge import checkpoint
    from registry.merge.card import prefetch
    from registry.merge.engine import stream_merge  # torch

    prefetch()  # the model card's imports, while the merge computes
    weight_map, known, probes = stream_merge(plan, inputs.base_hdr, inputs.adapter_hdr, tmp, device=inputs.device,
                                             max_shard_size=shard_bytes, progress=progress, on_shard=on_shard,
                                             mirror_dir=tee)
    checkpoint.write_index(tmp, weight_map)
    config = checkpoint.write_config(inputs.base_dir, tmp, dtype=inputs.dtype, updates=plan.config_updates)
    checkpoint.write_generation_config(inputs.base_dir, tmp, config)
    validation: dict[str, Any] = {"probes": probes}
    return "streaming", STREAMING_VERSION, known, validation


def _write_with_peft(inputs: _Inputs, tmp: Path, max_shard_size: str | int) -> tuple[str, str, dict[str, str], dict]:
    """peft's own merge into `tmp`: (engine, version, digests known so far (none), validation)."""
    from registry.merge.peft_engine import peft_merge

    peft_merge(inputs.base_dir, inputs.adapter_dir, tmp, dtype=inputs.dtype, device=inputs.device,
               max_shard_size=max_shard_size, resize_vocab=_vocab_resize(inputs.adapter_hdr, inputs.base_cfg))
    validation: dict[str, Any] = {"probes": None}
    return "peft", f"peft/{metadata.version('peft')}", {}, validation


def _recipe(card: dict, inputs: _Inputs, *, engine: str, engine_version: str, max_shard_size: int,
            tokenizer_from: str) -> dict[str, Any]:
    """manifest.json's recipe: what was merged into what, how, and with which libraries.

    The card's names and digests win; what it leaves out is computed from the inputs.
    """
    base, adapter = card.get("base") or {}, card.get("adapter") or {}
    return {
        "base": {"name": base.get("name"),
                 "fingerprint": base.get("fingerprint") or _base_fingerprint(inputs.base_dir, inputs.base_hdr)},
        "adapter": {"name": adapter.get("name"), "version": adapter.get("version"),
                    "digest": adapter.get("digest") or _adapter_digest(inputs.adapter_dir, inputs.adapter_file)},
        "engine": engine, "engine_version": engine_version, "dtype": inputs.dtype, "device": inputs.device,
        "max_shard_size": max_shard_size, "tokenizer_from": tokenizer_from,
        "libraries": library_versions(libraries=MANIFEST_LIBRARIES),
    }


def _read_adapter(adapter_dir: Path) -> tuple[dict, Path]:
    cfg_path = adapter_dir / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError as e:
        raise InvalidAdapter(f"{adapter_dir}: no adapter_config.json", path=str(adapter_dir)) from e
    except ValueError as e:
        raise InvalidAdapter(f"{cfg_path}: unreadable ({e})", path=str(cfg_path)) from e
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        if (adapter_dir / "adapter_model.bin").is_file():
            raise UnsafeFormat(f"{adapter_dir}: adapter_model.bin (pickle) only", path=str(adapter_dir))
        raise InvalidAdapter(f"{adapter_dir}: no adapter_model.safetensors", path=str(adapter_dir))
    return cfg, weights


def _base_dtype(base_cfg: dict, base_hdr) -> str | None:
    """The base's own dtype: what config.json says, else that of its first float tensor."""
    for k in ("dtype", "torch_dtype"):
        if base_cfg.get(k) in dtypes.CANONICAL:
            return base_cfg[k]
    return next((dtypes.FROM_SAFETENSORS[i.dtype] for i in base_hdr.values() if i.dtype in dtypes.FROM_SAFETENSORS),
                None)


def _resolve_device(device: str) -> str:
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MergeError(f"device {device!r} requested but CUDA is not available", hint="use device='auto'")
    return device


def _vocab_resize(adapter_hdr, base_cfg) -> int | None:
    """For the peft engine: the vocabulary size the adapter's saved embeddings were trained with."""
    vocab = base_cfg.get("vocab_size")
    for k, v in adapter_hdr.items():
        if k.endswith(("embed_tokens.base_layer.weight", "embed_tokens.weight", "wte.weight", "wte.base_layer.weight")):
            if vocab and v.shape and v.shape[0] != vocab:
                return v.shape[0]
    return None


def _base_fingerprint(base_dir: Path, base_hdr) -> str:
    """sha256 over config.json and every tensor's name, dtype, shape and size (not the bytes)."""
    h = hashlib.sha256((base_dir / "config.json").read_bytes())
    for name, t in base_hdr.items():
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|{t.nbytes}\n".encode())
    return "header-sha256:" + h.hexdigest()


def _adapter_digest(adapter_dir: Path, adapter_file: Path) -> str:
    from registry.merge.checkpoint import sha256_file

    h = hashlib.sha256()
    for p in (adapter_dir / "adapter_config.json", adapter_file):
        h.update(sha256_file(p).encode())
    return "sha256:" + h.hexdigest()


__all__ = ["MergeResult", "merge", "ENGINES"]
