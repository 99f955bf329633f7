"""The vLLM serving profile of a set of adapters: pure functions over plain data.

Facts about vLLM used here, from vllm/config/lora.py and vllm/lora/peft_helper.py:
- `--max-lora-rank` accepts only the values of `MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256,
  320, 512]`, and every adapter's rank must be <= it;
- `--lora-dtype` is one of auto, float16, bfloat16 (`LoRADType`);
- `--max-loras` is how many adapters can be active in one batch (>= 1);
- every adapter vLLM would refuse at start-up (`init_static_loras`: one refused adapter stops the
  server and so every other adapter on it) is left out of the profile with a warning naming the
  rule: the rules are registry/engines/preflight/vllm.py (DoRA, modules_to_save, bias, PiSSA-style
  inits, trainable tokens, architectures without LoRA support, ...), each citing vLLM's source.
  A candidate's adapter_config.json is read from its folder when the caller did not pass it, and
  the base's architecture from `base_path`/config.json when not given.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput
from registry.release import types as RT
from registry.types import BaseRef

VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_LORA_DTYPES = ("float16", "bfloat16")


@dataclass(frozen=True)
class Candidate:
    """One aliased adapter version, as the catalog knows it."""

    name: str
    ref: str
    rank: int | None
    path: str
    target_modules: Sequence[str] = ()
    rank_pattern: Mapping[str, int] = field(default_factory=dict)
    adapter_dtype: str | None = None
    peft_type: str = "LORA"
    use_dora: bool = False
    modules_to_save: Sequence[str] = ()
    deprecated: bool = False
    note: str | None = None  # e.g. "registered against llama@r1", shown as a warning
    config: Mapping[str, Any] | None = None  # adapter_config.json (None: read from `path` when it is there)


def vllm_rank(rank: int) -> int:
    """The smallest value vLLM accepts for --max-lora-rank that is >= `rank`.

    Raises:
        InvalidInput: rank < 1 or above vLLM's largest (512)
    """
    if rank < 1:
        raise InvalidInput(f"invalid LoRA rank {rank}")
    for allowed in VLLM_MAX_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise InvalidInput(f"LoRA rank {rank} is above the largest --max-lora-rank vLLM accepts "
                       f"({VLLM_MAX_LORA_RANKS[-1]})", hint="serve this adapter merged into its base instead")


def effective_rank(c: Candidate) -> int:
    """The largest rank any module of the adapter uses (rank_pattern can raise it above r)."""
    return max([c.rank or 0, *[int(v) for v in (c.rank_pattern or {}).values()]])


def lora_dtype(dtypes: Sequence[str | None]) -> str:
    """--lora-dtype: the adapters' own half dtype when they all share one, else auto (the model's)."""
    kinds = set(dtypes)
    only = next(iter(kinds)) if len(kinds) == 1 else None
    return only if only is not None and only in VLLM_LORA_DTYPES else "auto"


def _unservable(c: Candidate, architecture: str | None) -> str | None:
    if c.peft_type.upper() != "LORA":
        return f"{c.ref} is a {c.peft_type} adapter; vLLM serves LoRA only"
    if c.use_dora:
        return f"{c.ref} uses DoRA, which vLLM does not support"
    if c.modules_to_save:
        return f"{c.ref} has modules_to_save ({', '.join(c.modules_to_save)}), which vLLM refuses"
    if not c.rank:
        return f"{c.ref} has no LoRA rank recorded"
    from registry.engines.preflight import Facts, vllm

    conf = c.config if c.config is not None else _read_json(Path(c.path) / "adapter_config.json")
    if conf is None:
        return None
    verdict = vllm.check(Facts(conf, architecture=architecture))
    if not verdict.ok:
        return f"{c.ref}: vLLM {verdict.version} refuses it ({'; '.join(verdict.reasons)})"
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def base_architecture(base_path: str) -> str | None:
    conf = _read_json(Path(base_path) / "config.json") or {}
    archs = conf.get("architectures") or []
    return str(archs[0]) if archs else None


def build_profile(base: BaseRef, base_path: str, alias: str, candidates: Sequence[Candidate], *,
                  max_loras: int | None = None, architecture: str | None = None) -> RT.ServingProfile:
    """Flags and JSON for `vllm serve BASE` serving every servable candidate together.

    Args:
        architecture: the base's architecture (None: read from `base_path`/config.json)

    Raises:
        InvalidInput: nothing to serve, a base vLLM serves no LoRA on, or a rank above what vLLM accepts
    """
    from registry.engines.preflight import vllm

    arch = architecture or base_architecture(base_path)
    if arch and arch not in vllm.lora_architectures():
        raise InvalidInput(f"vLLM {vllm.PIN.version} has no LoRA support for {arch} (base {base.name}): "
                           f"every adapter would stop `vllm serve --enable-lora` ({vllm.ARCHITECTURE.source})",
                           hint=vllm.SERVE_MERGED)
    warnings, served = [], []
    for c in sorted(candidates, key=lambda c: c.name):
        why = _unservable(c, arch)
        if why:
            warnings.append(f"left out: {why}")
            continue
        if c.deprecated:
            warnings.append(f"{c.ref} (serving {c.name}@{alias}) is deprecated")
        if c.note:
            warnings.append(f"{c.ref}: {c.note}")
        served.append(c)
    if not served:
        raise InvalidInput(f"no servable adapter of base {base.name} has alias {alias!r}",
                           hint=f"set one with: adapter-registry alias set NAME {alias} VERSION")
    top = max(effective_rank(c) for c in served)
    rank = vllm_rank(top)
    n = max_loras if max_loras is not None else len(served)
    if n < 1:
        raise InvalidInput("--max-loras must be at least 1")
    dtypes = [c.adapter_dtype for c in served]
    ldtype = lora_dtype(dtypes)
    if ldtype == "auto" and len(set(dtypes)) > 1:
        warnings.append(f"adapters differ in dtype ({', '.join(sorted(str(d) for d in set(dtypes)))}); "
                        "vLLM loads them all in --lora-dtype (auto: the model's dtype)")
    modules = tuple(sorted({m for c in served for m in c.target_modules}))
    flags = ["--enable-lora", "--max-lora-rank", str(rank), "--max-loras", str(n), "--lora-dtype", ldtype,
             "--lora-modules", *[f"{c.name}={c.path}" for c in served]]
    command = shlex.join(["vllm", "serve", base_path, *flags])
    adapters = tuple(RT.ServedAdapter(c.name, c.ref, effective_rank(c), tuple(c.target_modules), c.adapter_dtype,
                                      c.path) for c in served)
    return RT.ServingProfile(base, base_path, alias, adapters, rank, n, ldtype, modules,
                             tuple(sorted({str(d) for d in dtypes})), tuple(flags), command, tuple(warnings))
